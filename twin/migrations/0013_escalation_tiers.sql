-- Escalation tiers (twin/escalation.py): an order climbs from the front line to the
-- property's duty officer, the community office, and the street office and city
-- departments by category.
--
-- staff.role, work_order.role  gain 'duty_officer' (the property's duty officer, 24 h)
-- work_order.tier              the tier holding the order (twin.escalation tier id)
-- work_order.tier_since        when that tier got it: its resolution SLA counts from here
-- work_order.department        the department outside the twin it was handed to, if any
-- notification.channel         gains 'department': a department's duty line or desk,
--                              the recipient written as 'name <phone or e-mail>'
ALTER TABLE staff DROP CONSTRAINT IF EXISTS staff_role_check;
ALTER TABLE staff ADD CONSTRAINT staff_role_check CHECK (role IN (
    'grid_worker', 'security', 'cleaning', 'engineer', 'manager', 'duty_officer'));
ALTER TABLE work_order DROP CONSTRAINT IF EXISTS work_order_role_check;
ALTER TABLE work_order ADD CONSTRAINT work_order_role_check CHECK (role IN (
    'grid_worker', 'security', 'cleaning', 'engineer', 'manager', 'duty_officer'));

ALTER TABLE work_order
    ADD COLUMN tier        text NOT NULL DEFAULT 'front_line',
    ADD COLUMN tier_since  timestamptz,
    ADD COLUMN department  text;
UPDATE work_order SET tier_since = created_at;

ALTER TABLE notification DROP CONSTRAINT IF EXISTS notification_channel_check;
ALTER TABLE notification ADD CONSTRAINT notification_channel_check CHECK (channel IN (
    'family', 'grid_worker', 'security_desk', 'staff', 'broadcast', 'department'));
