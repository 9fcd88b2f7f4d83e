-- The audit log is read back filtered (the control room's audit page and
-- `twin audit`, twin/store/reads/audit.py): by action or outcome (a refusal is
-- an action in REFUSALS), and by target (the subject id, or a resident id among
-- those seen whole). These indexes keep a rare action, one building or one
-- resident an index probe rather than a walk of the whole log, and list the
-- actions present with a skip scan. (The actor has audit_log_user_idx, the time
-- range audit_log_time_idx, both from 0007.)
CREATE INDEX audit_log_action_idx ON audit_log (action, time DESC);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, time DESC);
CREATE INDEX audit_log_residents_idx ON audit_log USING gin ((detail -> 'residents'));
