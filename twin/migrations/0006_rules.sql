-- The rule engine: rules as stored YAML, their counters and their state, the
-- commands waiting to be published, and per-resident special-care hours.

-- One rule, as the YAML text it was loaded from (validated before it gets
-- here). The running service compiles these; `twin rules load` writes them
-- and bumps rule_set.revision, which the service polls to reload.
CREATE TABLE rule (
    id         text PRIMARY KEY,
    title      text NOT NULL,
    domain     text NOT NULL CHECK (domain IN (
                   'safety', 'environment', 'service', 'activity', 'equipment')),
    source     text NOT NULL,
    checksum   text NOT NULL,
    enabled    boolean NOT NULL DEFAULT true,
    origin     text,
    loaded_at  timestamptz NOT NULL
);

CREATE TABLE rule_set (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    revision   bigint NOT NULL,
    changed_at timestamptz NOT NULL
);
INSERT INTO rule_set VALUES (true, 0, now());

-- What the dashboard shows per rule: how often it was evaluated and fired.
CREATE TABLE rule_counter (
    rule_id     text PRIMARY KEY REFERENCES rule ON DELETE CASCADE,
    evaluated   bigint NOT NULL DEFAULT 0,
    fired       bigint NOT NULL DEFAULT 0,
    last_fired  timestamptz
);

-- A condition's memory for one key (a device, a garage, a resident ...):
-- durations, windows, absence timers. JSON written by twin.rules.engine.
CREATE TABLE rule_state (
    rule_id     text NOT NULL REFERENCES rule ON DELETE CASCADE,
    node_id     text NOT NULL,
    key         text NOT NULL,
    state       jsonb NOT NULL,
    -- the checksum of the rule text the state belongs to: a changed rule starts afresh
    checksum    text NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (rule_id, node_id, key)
);

-- Device commands written in the same transaction as the firing that asked
-- for them, published to the broker after the commit and marked then: a
-- crash in between republishes (devices see the command id twice at most).
CREATE TABLE rule_outbox (
    id            bigserial PRIMARY KEY,
    command_id    text NOT NULL REFERENCES device_command ON DELETE CASCADE,
    topic         text NOT NULL,
    payload       bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    published_at  timestamptz
);
CREATE INDEX rule_outbox_pending_idx ON rule_outbox (id) WHERE published_at IS NULL;

-- A resident's own hours for special care (久未出 not_out_h / 久未归 not_back_h),
-- set by the grid worker who knows them; they win over the rule's defaults.
CREATE TABLE care_override (
    resident_id  text PRIMARY KEY REFERENCES resident ON DELETE CASCADE,
    not_out_h    real CHECK (not_out_h > 0),
    not_back_h   real CHECK (not_back_h > 0),
    note         text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now()
);
