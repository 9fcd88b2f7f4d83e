-- What ingest needs beyond the hypertables: dead letters, device commands,
-- and a merge of latest state that keeps, per metric, the newer value.

-- Every message (or batch item) ingest refused, with why. Nothing a device
-- sends is dropped silently.
CREATE TABLE dead_letter (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    topic        text NOT NULL,
    payload      bytea NOT NULL,
    -- one of: bad_topic, oversized, not_json, schema, unknown_device,
    -- wrong_community, not_a_gateway, unknown_metric, unknown_event,
    -- out_of_range, future_timestamp, unknown_command
    reason       text NOT NULL,
    detail       text NOT NULL,
    -- position of the refused item inside a gateway batch
    item         integer
);
CREATE INDEX dead_letter_time_idx ON dead_letter (received_at DESC);
CREATE INDEX dead_letter_reason_idx ON dead_letter (reason, received_at DESC);

-- Commands sent down to devices and what the devices answered.
CREATE TABLE device_command (
    id          text PRIMARY KEY,
    device_id   text NOT NULL REFERENCES device ON DELETE CASCADE,
    command     text NOT NULL,
    args        jsonb NOT NULL DEFAULT '{}',
    issued_by   text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    acked_at    timestamptz,
    ok          boolean,
    detail      text
);
CREATE INDEX device_command_device_idx ON device_command (device_id, sent_at DESC);

-- metrics maps metric -> {"t": fixed-width UTC text, "v": value}; a late,
-- older reading must not overwrite a newer one.
CREATE FUNCTION merge_latest(old jsonb, new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(old, '{}'::jsonb) || coalesce(
        (SELECT jsonb_object_agg(k, v)
           FROM jsonb_each(new) AS e(k, v)
          WHERE old IS NULL OR old -> k IS NULL OR (old -> k ->> 't') <= (v ->> 't')),
        '{}'::jsonb)
$$;
