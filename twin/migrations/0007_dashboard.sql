-- The control room's logins, sessions and audit log.

-- People who log in to the dashboard (not the staff table: an operator in
-- the control room need not be a member of the field staff). A grid worker's
-- login names their grid and, to act on their orders, their staff record.
CREATE TABLE app_user (
    name           text PRIMARY KEY,
    display_name   text NOT NULL DEFAULT '',
    -- werkzeug's "scrypt:N:r:p$salt$hash" (hashlib.scrypt underneath)
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'grid_worker', 'planner')),
    community_id   text REFERENCES community ON DELETE CASCADE,
    grid_id        text REFERENCES grid ON DELETE SET NULL,
    staff_id       text REFERENCES staff ON DELETE SET NULL,
    lang           text NOT NULL DEFAULT 'zh-CN' CHECK (lang IN ('zh-CN', 'en')),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'grid_worker' OR grid_id IS NOT NULL)
);

-- Server-side sessions: the browser holds only a random token whose SHA-256
-- is stored here, so a session can be ended (logout, expiry, disabling a user).
CREATE TABLE app_session (
    token_hash  text PRIMARY KEY,
    user_name   text NOT NULL REFERENCES app_user ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX app_session_user_idx ON app_session (user_name);
CREATE INDEX app_session_expiry_idx ON app_session (expires_at);

-- Who saw whom: every view of residents' unmasked names or phone numbers,
-- and every login, logout and refusal.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    time          timestamptz NOT NULL DEFAULT now(),
    user_name     text NOT NULL,
    role          text NOT NULL,
    action        text NOT NULL,
    subject_kind  text NOT NULL DEFAULT '',
    subject_id    text NOT NULL DEFAULT '',
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_time_idx ON audit_log (time DESC);
CREATE INDEX audit_log_user_idx ON audit_log (user_name, time DESC);

-- The large screen asks every second which devices are offline: a partial
-- index keeps that a short scan at 500,000 devices.
CREATE INDEX device_state_offline_idx ON device_state (device_id) WHERE online IS NOT TRUE;
