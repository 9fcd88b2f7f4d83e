-- The resident app: charging sessions a resident starts at a pile, and an in-app inbox
-- for resident and family logins, filled by the notification worker.
--
-- charging_session   one resident's session at one pile, started from the app (a
--                    'start' command to the pile, published by the rules service's
--                    outbox). The pile's own events move it on, in ingest's transaction:
--                      requested -> charging   the pile's charge_start
--                      requested -> refused    the pile acknowledged the start with ok=false
--                      charging  -> ended      the pile's charge_stop (its energy_kwh)
--                    and its end queues an 'app' notification to the login that started it,
--                    at the pile's own time (as the rules stamp theirs with their clock: the
--                    wall clock live, the data's clock in a simulation or a replay).
-- inbox_message      a notification of channel 'app' delivered to a login: what the
--                    resident's or family member's app lists (rendered for them when read).
-- notification       gains the channel 'app' (recipient: an app_user name): a session's
--                    end to its resident, a care alert to the relative's family logins.

ALTER TABLE notification DROP CONSTRAINT IF EXISTS notification_channel_check;
ALTER TABLE notification ADD CONSTRAINT notification_channel_check CHECK (channel IN (
    'family', 'grid_worker', 'security_desk', 'staff', 'broadcast', 'department', 'app'));

CREATE TABLE charging_session (
    id            bigserial PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    device_id     text NOT NULL REFERENCES device ON DELETE CASCADE,
    resident_id   text NOT NULL REFERENCES resident ON DELETE CASCADE,
    -- the login that started it: whose inbox hears of its end
    login         text REFERENCES app_user (name) ON DELETE SET NULL,
    command_id    text REFERENCES device_command ON DELETE SET NULL,
    state         text NOT NULL DEFAULT 'requested'
                  CHECK (state IN ('requested', 'charging', 'ended', 'refused')),
    requested_at  timestamptz NOT NULL,
    started_at    timestamptz,
    -- the pile's own session id (its charge_start and charge_stop carry it)
    pile_session  text,
    stop_requested_at timestamptz,
    ended_at      timestamptz,
    energy_kwh    double precision CHECK (energy_kwh IS NULL OR energy_kwh >= 0),
    end_reason    text CHECK (end_reason IN ('full', 'stopped', 'cut_off', 'refused')),
    CHECK ((state IN ('ended', 'refused')) = (ended_at IS NOT NULL))
);
-- one open session per pile and per resident
CREATE UNIQUE INDEX charging_session_pile_open ON charging_session (device_id)
    WHERE state IN ('requested', 'charging');
CREATE UNIQUE INDEX charging_session_resident_open ON charging_session (resident_id)
    WHERE state IN ('requested', 'charging');
CREATE INDEX charging_session_resident_idx ON charging_session (resident_id, requested_at DESC);

CREATE TABLE inbox_message (
    notification_id  bigint PRIMARY KEY REFERENCES notification ON DELETE CASCADE,
    login            text NOT NULL REFERENCES app_user (name) ON DELETE CASCADE,
    delivered_at     timestamptz NOT NULL,
    read_at          timestamptz
);
CREATE INDEX inbox_message_login_idx ON inbox_message (login, delivered_at DESC);

-- The pile's events move its open session on (ingest's COPY fires this per new row;
-- a repeated event is not inserted again, so nothing happens twice).
CREATE FUNCTION charging_session_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s charging_session;
BEGIN
    IF NEW.kind = 'charge_start' THEN
        UPDATE charging_session
           SET state = 'charging', started_at = NEW.time, pile_session = NEW.attrs->>'session'
         WHERE device_id = NEW.device_id AND state = 'requested'
           AND (NEW.subject_id IS NULL OR NEW.subject_id = resident_id);
        RETURN NULL;
    END IF;
    UPDATE charging_session c
       SET state = 'ended', ended_at = NEW.time, energy_kwh = NEW.value,
           end_reason = CASE
               WHEN c.stop_requested_at IS NOT NULL THEN 'stopped'
               WHEN EXISTS (SELECT 1 FROM device_command d
                             WHERE d.device_id = c.device_id AND d.command IN ('cut_off', 'stop')
                               AND d.sent_at >= c.requested_at) THEN 'cut_off'
               ELSE 'full' END
     WHERE c.device_id = NEW.device_id AND c.state = 'charging'
       AND (c.pile_session IS NULL OR c.pile_session = NEW.attrs->>'session')
    RETURNING c.* INTO s;
    IF FOUND AND s.login IS NOT NULL THEN
        INSERT INTO notification (community_id, time, channel, recipient, message, text_key,
                                  text_params)
        VALUES (s.community_id, NEW.time, 'app', s.login,
                format('charging at %s ended (%s): %s kWh', s.device_id, s.end_reason,
                       round(coalesce(s.energy_kwh, 0)::numeric, 2)),
                'sys/charging-ended/' || s.end_reason,
                jsonb_build_object(
                    'device', s.device_id, 'session', s.id,
                    'kwh', round(coalesce(s.energy_kwh, 0)::numeric, 2),
                    'minutes', round(extract(epoch FROM s.ended_at - s.started_at) / 60)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER charging_session_event AFTER INSERT ON event
    FOR EACH ROW WHEN (NEW.kind IN ('charge_start', 'charge_stop'))
    EXECUTE FUNCTION charging_session_event();

-- The pile refused the start (nothing plugged in, battery full): the session ends there.
CREATE FUNCTION charging_session_refused() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s charging_session;
BEGIN
    UPDATE charging_session
       SET state = 'refused', ended_at = NEW.acked_at, end_reason = 'refused'
     WHERE command_id = NEW.id AND state = 'requested'
    RETURNING * INTO s;
    IF FOUND AND s.login IS NOT NULL THEN
        INSERT INTO notification (community_id, time, channel, recipient, message, text_key,
                                  text_params)
        VALUES (s.community_id, NEW.acked_at, 'app', s.login,
                format('the pile %s did not start', s.device_id),
                'sys/charging-refused', jsonb_build_object('device', s.device_id,
                                                           'session', s.id));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER charging_session_refused AFTER UPDATE OF ok ON device_command
    FOR EACH ROW WHEN (NEW.ok IS FALSE AND OLD.ok IS DISTINCT FROM FALSE)
    EXECUTE FUNCTION charging_session_refused();

-- A care alert about a special-care resident (the special-care rules' alarms, and an SOS
-- the resident raised) tells the family logins bound to that resident, in their app, when
-- it is raised (a repeat counted on the open alarm is not raised again). Rendered from the
-- alarm's own key and parameters, at the alarm's time.
CREATE FUNCTION family_login_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notification (community_id, time, channel, recipient, message, alarm_id,
                              rule_id, text_key, text_params)
    SELECT NEW.community_id, NEW.raised_at, 'app', u.name, NEW.title, NEW.id, NEW.rule_id,
           NEW.text_key, NEW.text_params
      FROM app_user u
     WHERE u.resident_id = NEW.resident_id AND u.role = 'family' AND NOT u.disabled;
    RETURN NULL;
END $$;
CREATE TRIGGER family_login_alert AFTER INSERT ON alarm
    FOR EACH ROW WHEN (NEW.resident_id IS NOT NULL
                       AND NEW.type IN ('care_not_out', 'care_not_back', 'sos'))
    EXECUTE FUNCTION family_login_alert();
