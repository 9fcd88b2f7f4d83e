-- Staff positions as live data (issue 12). Three writers fill staff_position:
-- a badge or tracker over MQTT (kind `position`), the grid worker's phone page,
-- and the simulator (through the broker, as a badge). `staff.position` and
-- `staff.position_at` keep the newest fix of each staff member.
--
-- badge_id  the `staff_badge` device a staff member wears: its topic and its
--           broker credentials say who the fix is for, never the payload
-- post_id   where the staff member waits when nobody knows where they are (the
--           security room, the property office): dispatch falls back to it
--           when their newest fix is older than the configured age
ALTER TABLE staff
    ADD COLUMN badge_id text UNIQUE REFERENCES device ON DELETE SET NULL,
    ADD COLUMN post_id  text REFERENCES facility ON DELETE SET NULL;

-- source   badge (MQTT) or phone (the worker page's geolocation)
-- device_id the badge that sent it (NULL from a phone)
ALTER TABLE staff_position
    ADD COLUMN floor     smallint,
    ADD COLUMN source    text NOT NULL DEFAULT 'badge' CHECK (source IN ('badge', 'phone')),
    ADD COLUMN device_id text;
