-- Residents' reports (报事) and the community's notices (通知公告), issue 13.
--
-- report          a resident's report: a category of the service list
--                 (twin/service_catalogue.yaml), their own words, the place picked on the
--                 map or their unit's, where it meets the walkway, and the work order it
--                 became. Their words are personal: shown to the staff who handle it,
--                 never copied into an order's title, a notification or a log.
--                 The photo a resident attached (a checked JPEG, PNG or WebP image) is the
--                 order's first photo (work_order_photo, on its 'created' step): the staff
--                 see it with the order, served by the order's own checked photo route.
-- notice          a notice or an activity published to a community, a building or a grid,
--                 in the words the operator typed (zh-CN and/or en), with a time range
--                 for an activity.
-- notice_read     which resident read which notice, once.
CREATE TABLE report (
    id              bigserial PRIMARY KEY,
    community_id    text NOT NULL REFERENCES community ON DELETE CASCADE,
    resident_id     text NOT NULL REFERENCES resident ON DELETE CASCADE,
    category        text NOT NULL,
    text            text NOT NULL CHECK (char_length(text) BETWEEN 1 AND 1000),
    place_source    text NOT NULL CHECK (place_source IN ('unit', 'map')),
    geom            geometry(Point, 4326) NOT NULL,
    snapped         geometry(Point, 4326) NOT NULL,
    snap_m          real NOT NULL CHECK (snap_m >= 0),
    walk_edge_id    text,
    building_id     text REFERENCES building ON DELETE SET NULL,
    unit_id         text REFERENCES unit ON DELETE SET NULL,
    grid_id         text REFERENCES grid ON DELETE SET NULL,
    work_order_id   bigint REFERENCES work_order ON DELETE SET NULL,
    created_at      timestamptz NOT NULL,
    rating          smallint CHECK (rating BETWEEN 1 AND 5),
    rating_comment  text NOT NULL DEFAULT '' CHECK (char_length(rating_comment) <= 500),
    rated_at        timestamptz,
    CHECK ((rating IS NULL) = (rated_at IS NULL))
);
CREATE INDEX report_resident_idx ON report (resident_id, created_at DESC);
CREATE INDEX report_community_idx ON report (community_id, created_at DESC);
CREATE UNIQUE INDEX report_order_idx ON report (work_order_id) WHERE work_order_id IS NOT NULL;

CREATE TABLE notice (
    id            bigserial PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('notice', 'activity')),
    scope_kind    text NOT NULL CHECK (scope_kind IN ('community', 'building', 'grid')),
    scope_id      text NOT NULL,
    title         jsonb NOT NULL CHECK (jsonb_typeof(title) = 'object'),
    body          jsonb NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    starts_at     timestamptz,
    ends_at       timestamptz,
    published_at  timestamptz NOT NULL,
    published_by  text NOT NULL,
    CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at)
);
CREATE INDEX notice_community_idx ON notice (community_id, published_at DESC);

CREATE TABLE notice_read (
    notice_id    bigint NOT NULL REFERENCES notice ON DELETE CASCADE,
    resident_id  text NOT NULL REFERENCES resident ON DELETE CASCADE,
    read_at      timestamptz NOT NULL,
    PRIMARY KEY (notice_id, resident_id)
);
