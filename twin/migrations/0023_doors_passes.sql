-- Doors opened on someone's behalf, visitor passes, and cloud broadcasts (issue 13).
--
-- A visitor pass is a single-use, time-limited permission to pass the community's
-- gates once. Its QR code carries only an opaque random token; the twin keeps the
-- token's SHA-256, never the token, and consumes the pass with one conditional UPDATE
-- when a gate asks (twin.store.doors.check_pass), so two gates cannot both accept it.
CREATE TABLE visitor_pass (
    id            text PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    resident_id   text NOT NULL REFERENCES resident ON DELETE CASCADE,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    issued_at     timestamptz NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_until   timestamptz NOT NULL,
    -- the gate that let the visitor in, when, and the scan that asked (the same scan,
    -- redelivered, gets the same answer)
    used_at       timestamptz,
    used_device   text REFERENCES device ON DELETE SET NULL,
    used_scan     text,
    CHECK (valid_until > valid_from)
);
CREATE INDEX visitor_pass_resident_idx ON visitor_pass (resident_id, issued_at DESC);

-- Every command sent on someone's behalf names them in issued_by ('resident:<id>',
-- 'staff:<id>', 'user:<login>'), never by name; a broadcast's commands share the
-- broadcast's id in args, to count its acks.
CREATE INDEX device_command_broadcast_idx ON device_command ((args ->> 'broadcast'))
    WHERE command = 'broadcast' AND args ? 'broadcast';
-- A door's access history (event_subject_idx serves a resident's).
CREATE INDEX event_device_kind_idx ON event (device_id, time DESC)
    WHERE kind IN ('access', 'access_denied');
