-- Words per viewer: what a rule said is kept as a key and parameters, and
-- rendered when somebody reads it (twin/texts.py), in their language and
-- masked for their role. The parameters hold ids and values, never a name.
--
-- rule_text   the templates of every rule text, by key (rule/node), in every
--             language ({"zh-CN": ..., "en": ...}); written by `twin rules load`.
--             Kept when a rule is removed, so its old alarms still render.
-- text_key    on alarm, work_order and notification: the key; NULL for rows
--             kept before texts had keys, which render their old title or
--             message as it was written.
-- timezone    the community's IANA time zone: every time on a page is shown in it.
CREATE TABLE rule_text (
    key      text PRIMARY KEY,
    rule_id  text NOT NULL,
    texts    jsonb NOT NULL CHECK (jsonb_typeof(texts) = 'object')
);

ALTER TABLE alarm
    ADD COLUMN text_key     text,
    ADD COLUMN text_params  jsonb NOT NULL DEFAULT '{}';
ALTER TABLE work_order
    ADD COLUMN text_key     text,
    ADD COLUMN text_params  jsonb NOT NULL DEFAULT '{}';
ALTER TABLE notification
    ADD COLUMN text_key     text,
    ADD COLUMN text_params  jsonb NOT NULL DEFAULT '{}';

-- An alarm's detail carried the resident's name beside their id: keep the id only.
UPDATE alarm SET detail = detail - 'resident_name' WHERE detail ? 'resident_name';

ALTER TABLE community ADD COLUMN timezone text NOT NULL DEFAULT 'Asia/Shanghai';
