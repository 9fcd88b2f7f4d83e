-- An early warning that grows into the real thing (a charger heating fast, then
-- over 70 °C) stays one alarm: the worse raise takes it over, and its log says so.
ALTER TABLE alarm_log DROP CONSTRAINT alarm_log_action_check;
ALTER TABLE alarm_log ADD CONSTRAINT alarm_log_action_check CHECK (action IN (
    'raised', 'repeated', 'upgraded', 'acknowledged', 'escalated', 'cleared', 'note'));
