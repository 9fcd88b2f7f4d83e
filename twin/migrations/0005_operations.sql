-- Operations: alarms, work orders and notifications, with their full
-- history. Rules write them, the dispatcher assigns the orders, the control
-- room and the grid workers' phones read and move them.

-- One active alarm per (community, source, type): a repeat increments count
-- instead of opening a second alarm (the partial unique index below).
CREATE TABLE alarm (
    id                bigserial PRIMARY KEY,
    community_id      text NOT NULL REFERENCES community ON DELETE CASCADE,
    type              text NOT NULL,
    rule_id           text,
    domain            text NOT NULL CHECK (domain IN (
                          'safety', 'environment', 'service', 'activity', 'equipment')),
    severity          text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'info')),
    source_kind       text NOT NULL CHECK (source_kind IN (
                          'device', 'resident', 'building', 'facility', 'staff', 'community')),
    source_id         text NOT NULL,
    building_id       text REFERENCES building ON DELETE SET NULL,
    floor             smallint,
    unit_id           text REFERENCES unit ON DELETE SET NULL,
    device_id         text REFERENCES device ON DELETE SET NULL,
    resident_id       text REFERENCES resident ON DELETE SET NULL,
    geom              geometry(Point, 4326),
    title             text NOT NULL,
    detail            jsonb NOT NULL DEFAULT '{}',
    state             text NOT NULL DEFAULT 'active'
                      CHECK (state IN ('active', 'acknowledged', 'cleared')),
    count             integer NOT NULL DEFAULT 1 CHECK (count > 0),
    raised_at         timestamptz NOT NULL,
    last_at           timestamptz NOT NULL,
    -- any change at all (repeat, acknowledge, escalate, clear): what the
    -- control room polls for deltas
    updated_at        timestamptz NOT NULL,
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    cleared_at        timestamptz,
    cleared_by        text,
    escalation_level  smallint NOT NULL DEFAULT 0,
    escalated_at      timestamptz
);
CREATE UNIQUE INDEX alarm_one_open ON alarm (community_id, source_id, type)
    WHERE state <> 'cleared';
CREATE INDEX alarm_open_idx ON alarm (community_id, severity) WHERE state <> 'cleared';
CREATE INDEX alarm_building_idx ON alarm (building_id) WHERE state <> 'cleared';
CREATE INDEX alarm_time_idx ON alarm (community_id, raised_at DESC);
CREATE INDEX alarm_updated_idx ON alarm (community_id, updated_at);

CREATE TABLE alarm_log (
    id        bigserial PRIMARY KEY,
    alarm_id  bigint NOT NULL REFERENCES alarm ON DELETE CASCADE,
    time      timestamptz NOT NULL,
    action    text NOT NULL CHECK (action IN (
                  'raised', 'repeated', 'acknowledged', 'escalated', 'cleared', 'note')),
    actor     text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alarm_log_alarm_idx ON alarm_log (alarm_id, time);

-- A task for one staff member at a time. The lifecycle and who may move it
-- live in twin/work_orders.py; this table only keeps where each order is.
CREATE TABLE work_order (
    id                bigserial PRIMARY KEY,
    community_id      text NOT NULL REFERENCES community ON DELETE CASCADE,
    alarm_id          bigint REFERENCES alarm ON DELETE SET NULL,
    rule_id           text,
    kind              text NOT NULL,
    title             text NOT NULL,
    description       text NOT NULL DEFAULT '',
    domain            text NOT NULL CHECK (domain IN (
                          'safety', 'environment', 'service', 'activity', 'equipment')),
    priority          text NOT NULL DEFAULT 'normal'
                      CHECK (priority IN ('urgent', 'high', 'normal', 'low')),
    role              text NOT NULL CHECK (role IN (
                          'grid_worker', 'security', 'cleaning', 'engineer', 'manager')),
    skill             text,
    state             text NOT NULL DEFAULT 'created' CHECK (state IN (
                          'created', 'assigned', 'accepted', 'arrived', 'resolved',
                          'escalated', 'closed', 'cancelled')),
    assignee_id       text REFERENCES staff ON DELETE SET NULL,
    grid_id           text REFERENCES grid ON DELETE SET NULL,
    building_id       text REFERENCES building ON DELETE SET NULL,
    unit_id           text REFERENCES unit ON DELETE SET NULL,
    resident_id       text REFERENCES resident ON DELETE SET NULL,
    device_id         text REFERENCES device ON DELETE SET NULL,
    geom              geometry(Point, 4326) NOT NULL,
    route             geometry(LineString, 4326),
    route_m           real,
    eta_s             real,
    declined_by       text[] NOT NULL DEFAULT '{}',
    escalation_level  smallint NOT NULL DEFAULT 0,
    due_at            timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    assigned_at       timestamptz,
    accepted_at       timestamptz,
    arrived_at        timestamptz,
    resolved_at       timestamptz,
    closed_at         timestamptz
);
CREATE INDEX work_order_open_idx ON work_order (community_id, state)
    WHERE state NOT IN ('closed', 'cancelled');
CREATE INDEX work_order_assignee_idx ON work_order (assignee_id, state);
CREATE INDEX work_order_alarm_idx ON work_order (alarm_id);
CREATE INDEX work_order_building_idx ON work_order (building_id);
CREATE INDEX work_order_time_idx ON work_order (community_id, created_at DESC);
CREATE INDEX work_order_updated_idx ON work_order (community_id, updated_at);

CREATE TABLE work_order_event (
    id             bigserial PRIMARY KEY,
    work_order_id  bigint NOT NULL REFERENCES work_order ON DELETE CASCADE,
    time           timestamptz NOT NULL,
    action         text NOT NULL,
    actor          text NOT NULL,
    from_state     text,
    to_state       text NOT NULL,
    staff_id       text,
    note           text NOT NULL DEFAULT '',
    detail         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX work_order_event_order_idx ON work_order_event (work_order_id, time);

-- Photos a worker attaches when arriving or resolving; kept out of the event
-- rows so that listing a history never drags the images along.
CREATE TABLE work_order_photo (
    id             bigserial PRIMARY KEY,
    work_order_id  bigint NOT NULL REFERENCES work_order ON DELETE CASCADE,
    event_id       bigint REFERENCES work_order_event ON DELETE SET NULL,
    content_type   text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    data           bytea NOT NULL CHECK (octet_length(data) <= 10485760),
    taken_at       timestamptz NOT NULL
);
CREATE INDEX work_order_photo_order_idx ON work_order_photo (work_order_id);

-- What the twin told people: family contacts, grid workers, the security
-- desk. An outbox: a delivery adapter (SMS, app push) marks sent_at.
CREATE TABLE notification (
    id              bigserial PRIMARY KEY,
    community_id    text NOT NULL REFERENCES community ON DELETE CASCADE,
    time            timestamptz NOT NULL,
    channel         text NOT NULL CHECK (channel IN (
                        'family', 'grid_worker', 'security_desk', 'staff', 'broadcast')),
    recipient       text NOT NULL,
    message         text NOT NULL,
    alarm_id        bigint REFERENCES alarm ON DELETE SET NULL,
    work_order_id   bigint REFERENCES work_order ON DELETE SET NULL,
    rule_id         text,
    sent_at         timestamptz
);
CREATE INDEX notification_time_idx ON notification (community_id, time DESC);
CREATE INDEX notification_alarm_idx ON notification (alarm_id);
