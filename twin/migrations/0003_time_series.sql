-- What the devices say over time. Hypertables carry no foreign keys to the
-- device table: ingest validates the device before it writes, and a key
-- check per row would cost more than the row.

CREATE TABLE reading (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    metric       text NOT NULL,
    value        double precision,
    value_text   text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (value IS NOT NULL OR value_text IS NOT NULL)
);
SELECT create_hypertable('reading', 'time', chunk_time_interval => interval '1 day');
-- The natural key makes a redelivered reading a no-op (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX reading_key ON reading (device_id, metric, time);

-- Discrete events: camera detections, access (door-open) events with their
-- method, charger session start/stop with the energy delivered, ...
CREATE TABLE event (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    event_id     text NOT NULL,
    kind         text NOT NULL,
    class        text,
    confidence   real CHECK (confidence IS NULL OR confidence BETWEEN 0 AND 1),
    method       text,
    direction    text CHECK (direction IS NULL OR direction IN ('in', 'out')),
    subject_id   text,
    value        double precision,
    attrs        jsonb NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('event', 'time', chunk_time_interval => interval '7 days');
CREATE UNIQUE INDEX event_key ON event (device_id, event_id, time);
CREATE INDEX event_kind_idx ON event (kind, time DESC);
CREATE INDEX event_subject_idx ON event (subject_id, time DESC) WHERE subject_id IS NOT NULL;

CREATE TABLE staff_position (
    time         timestamptz NOT NULL,
    staff_id     text NOT NULL,
    geom         geometry(Point, 4326) NOT NULL,
    accuracy_m   real,
    received_at  timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('staff_position', 'time', chunk_time_interval => interval '1 day');
CREATE UNIQUE INDEX staff_position_key ON staff_position (staff_id, time);

-- Latest state of each device: one row, one primary-key lookup. metrics maps
-- a metric name to {"t": time, "v": value}.
CREATE TABLE device_state (
    device_id   text PRIMARY KEY REFERENCES device ON DELETE CASCADE,
    online      boolean,
    status_at   timestamptz,
    last_seen   timestamptz,
    metrics     jsonb NOT NULL DEFAULT '{}'
);
