-- Two consumers now share one MQTT consumer base: ingest and the rules.
-- A dead letter says which of them could not handle the message ('ingest'
-- refuses what breaks the contract; 'rules' records a rule that raised).
ALTER TABLE dead_letter ADD COLUMN consumer text NOT NULL DEFAULT 'ingest';

-- The rules' command outbox no longer stores an MQTT topic and payload: the
-- domain core knows nothing of the wire. The publisher builds both from the
-- command (device_command) when it sends it.
ALTER TABLE rule_outbox DROP COLUMN topic, DROP COLUMN payload;
