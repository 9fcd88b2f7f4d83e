-- Alarms that mean something (issue 12).
--
-- known_at        when the twin learnt of the alarm (the rule service's clock at
--                 raise), as against raised_at, the device's time of the event.
--                 Escalation counts from it: an event back-dated by a gateway's
--                 backlog or a replay is not overdue on arrival.
-- sources         every source (camera, sensor ...) that reported this incident:
--                 a rule that groups nearby sources in a time window
--                 (raise_alarm.group) counts the others on the first one's alarm.
-- active_sources  the sources still reporting it: the alarm clears when the last
--                 of them clears.
ALTER TABLE alarm
    ADD COLUMN known_at        timestamptz,
    ADD COLUMN sources         text[] NOT NULL DEFAULT '{}',
    ADD COLUMN active_sources  text[] NOT NULL DEFAULT '{}';
UPDATE alarm SET known_at = raised_at, sources = ARRAY[source_id],
                 active_sources = CASE WHEN state <> 'cleared' THEN ARRAY[source_id]
                                       ELSE '{}' END;
ALTER TABLE alarm ALTER COLUMN known_at SET NOT NULL;
CREATE INDEX alarm_active_sources_idx ON alarm USING gin (active_sources)
    WHERE state <> 'cleared';
