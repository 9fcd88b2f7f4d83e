-- Notifications are delivered, not only written: a worker (`twin notify run`)
-- drains the outbox through e-mail, a signed webhook (SMS gateway, WeChat Work
-- or DingTalk bot) and MQTT (speakers, screens), with retries and back-off.
--
-- state       pending (waiting, or claimed by a worker until next_attempt_at),
--             delivered (every routed transport took it; sent_at says when),
--             failed (out of attempts, too old, or undeliverable; last_error says why)
-- attempts    how many times a worker claimed it. A claim with no attempt row
--             is a worker that died before trying: the claim's lease
--             (next_attempt_at) runs out and another worker retries it.
-- claim_token who holds the current claim: a worker whose lease ran out cannot
--             record over the one that took the notification after it.
ALTER TABLE notification
    ADD COLUMN state            text NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'delivered', 'failed')),
    ADD COLUMN attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN next_attempt_at  timestamptz,
    ADD COLUMN claim_token      uuid,
    ADD COLUMN last_error       text;

-- Rows written before delivery existed: those an adapter marked sent are
-- delivered; the others wait, due from when they were written (the worker
-- fails the ones older than its max age instead of waking a family late).
UPDATE notification SET state = 'delivered' WHERE sent_at IS NOT NULL;
UPDATE notification SET next_attempt_at = time WHERE state = 'pending';

-- A new row is due from its own time (the rules' clock, not the server's).
CREATE FUNCTION notification_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'pending' AND NEW.next_attempt_at IS NULL THEN
        NEW.next_attempt_at := NEW.time;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER notification_due BEFORE INSERT ON notification
    FOR EACH ROW EXECUTE FUNCTION notification_due();

-- sent_at stays the delivery time, set together with the state.
ALTER TABLE notification
    ADD CONSTRAINT notification_sent_when_delivered
        CHECK ((state = 'delivered') = (sent_at IS NOT NULL)),
    ADD CONSTRAINT notification_pending_is_due
        CHECK (state <> 'pending' OR next_attempt_at IS NOT NULL);

-- What the workers look for: due, pending notifications, oldest first.
CREATE INDEX notification_due_idx ON notification (next_attempt_at, id)
    WHERE state = 'pending';
CREATE INDEX notification_failed_idx ON notification (community_id, time DESC)
    WHERE state = 'failed';

-- One row per transport tried: when, how long it took, and what went wrong.
CREATE TABLE notification_attempt (
    id               bigserial PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notification ON DELETE CASCADE,
    attempt          integer NOT NULL CHECK (attempt > 0),
    transport        text NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      real NOT NULL CHECK (duration_ms >= 0),
    ok               boolean NOT NULL,
    -- never an address or a name: what the server or the routing said
    error            text
);
CREATE INDEX notification_attempt_idx ON notification_attempt (notification_id, started_at);

-- Staff e-mail, for the transports that send mail. Nothing fills it yet: set
-- it per staff member; without it, mail goes to the channel's duty address.
ALTER TABLE staff ADD COLUMN email text;
