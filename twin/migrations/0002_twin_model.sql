-- The static twin: places, people and things. Geometry is stored in
-- EPSG:4326; metric work is done in the community's local_srid (a UTM zone),
-- or on geography for distances.

CREATE TABLE community (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    city        text NOT NULL,
    local_srid  integer NOT NULL,
    boundary    geometry(Polygon, 4326) NOT NULL
);

-- 网格: the unit of responsibility of one grid worker.
CREATE TABLE grid (
    id              text PRIMARY KEY,
    community_id    text NOT NULL REFERENCES community ON DELETE CASCADE,
    name            text NOT NULL,
    grid_worker_id  text,
    area            geometry(Polygon, 4326) NOT NULL
);

CREATE TABLE building (
    id               text PRIMARY KEY,
    community_id     text NOT NULL REFERENCES community ON DELETE CASCADE,
    grid_id          text REFERENCES grid ON DELETE SET NULL,
    name             text NOT NULL,
    usage            text NOT NULL DEFAULT 'residential',
    floors           smallint NOT NULL CHECK (floors > 0),
    units_per_floor  smallint NOT NULL CHECK (units_per_floor >= 0),
    height_m         real NOT NULL CHECK (height_m > 0),
    -- where the height came from: 'attribute', 'levels' or 'default'
    height_source    text NOT NULL DEFAULT 'attribute'
                     CHECK (height_source IN ('attribute', 'levels', 'default')),
    footprint        geometry(Polygon, 4326) NOT NULL
);

CREATE TABLE entrance (
    id           text PRIMARY KEY,
    building_id  text NOT NULL REFERENCES building ON DELETE CASCADE,
    name         text NOT NULL,
    geom         geometry(Point, 4326) NOT NULL
);

-- A unit is one household's flat (户), numbered as residents say it: '1203'.
CREATE TABLE unit (
    id           text PRIMARY KEY,
    building_id  text NOT NULL REFERENCES building ON DELETE CASCADE,
    floor        smallint NOT NULL,
    number       text NOT NULL,
    occupancy    text NOT NULL CHECK (occupancy IN ('owner', 'tenant', 'vacant')),
    UNIQUE (building_id, number)
);

-- Personal data (synthetic in every shipped file, treated as real anyway).
CREATE TABLE resident (
    id               text PRIMARY KEY,
    unit_id          text NOT NULL REFERENCES unit ON DELETE CASCADE,
    name             text NOT NULL,
    phone            text NOT NULL,
    gender           text NOT NULL CHECK (gender IN ('F', 'M')),
    age_band         text NOT NULL CHECK (age_band IN ('0-6', '7-17', '18-59', '60-79', '80+')),
    care_flags       text[] NOT NULL DEFAULT '{}',
    family_contacts  jsonb NOT NULL DEFAULT '[]'
);

CREATE TABLE facility (
    id            text PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN (
                      'gate', 'ev_shed', 'trash_station', 'pump_room', 'garage',
                      'garage_ramp', 'elevator', 'green_area', 'security_room',
                      'property_office', 'playground')),
    name          text NOT NULL,
    building_id   text REFERENCES building ON DELETE CASCADE,
    floor         smallint,
    geom          geometry(Point, 4326) NOT NULL,
    area          geometry(Polygon, 4326)
);

-- One row per device type, written from twin.device_types (the single
-- source of truth) whenever a community is loaded.
CREATE TABLE device_type (
    code          text PRIMARY KEY,
    domain        text NOT NULL,
    name          text NOT NULL,
    capabilities  text[] NOT NULL,
    metrics       jsonb NOT NULL,
    events        text[] NOT NULL,
    commands      text[] NOT NULL
);

CREATE TABLE device (
    id              text PRIMARY KEY,
    community_id    text NOT NULL REFERENCES community ON DELETE CASCADE,
    type            text NOT NULL REFERENCES device_type,
    name            text NOT NULL,
    building_id     text REFERENCES building ON DELETE SET NULL,
    floor           smallint,
    unit_id         text REFERENCES unit ON DELETE SET NULL,
    facility_id     text REFERENCES facility ON DELETE SET NULL,
    credentials_id  text NOT NULL UNIQUE,
    geom            geometry(Point, 4326) NOT NULL
);

CREATE TABLE staff (
    id            text PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    name          text NOT NULL,
    phone         text NOT NULL,
    role          text NOT NULL CHECK (role IN (
                      'grid_worker', 'security', 'cleaning', 'engineer', 'manager')),
    skills        text[] NOT NULL DEFAULT '{}',
    grid_id       text REFERENCES grid ON DELETE SET NULL,
    shift         text NOT NULL CHECK (shift IN ('day', 'night', 'office')),
    position      geometry(Point, 4326),
    position_at   timestamptz
);

ALTER TABLE grid ADD CONSTRAINT grid_worker_fk FOREIGN KEY (grid_worker_id)
    REFERENCES staff ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;

-- The walkway network the dispatcher routes over. Nodes that stand for a
-- place (an entrance, a gate, a facility, a device) name it in ref_id.
CREATE TABLE walk_node (
    id            text PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('junction', 'entrance', 'facility', 'device')),
    ref_id        text,
    geom          geometry(Point, 4326) NOT NULL
);

CREATE TABLE walk_edge (
    id            text PRIMARY KEY,
    community_id  text NOT NULL REFERENCES community ON DELETE CASCADE,
    source        text NOT NULL REFERENCES walk_node ON DELETE CASCADE,
    target        text NOT NULL REFERENCES walk_node ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('road', 'footway', 'ramp', 'steps', 'link')),
    length_m      real NOT NULL CHECK (length_m >= 0),
    geom          geometry(LineString, 4326) NOT NULL
);

CREATE INDEX grid_community_idx       ON grid (community_id);
CREATE INDEX grid_area_idx            ON grid USING gist (area);
CREATE INDEX building_community_idx   ON building (community_id);
CREATE INDEX building_grid_idx        ON building (grid_id);
CREATE INDEX building_footprint_idx   ON building USING gist (footprint);
CREATE INDEX entrance_building_idx    ON entrance (building_id);
CREATE INDEX unit_building_idx        ON unit (building_id, floor);
CREATE INDEX resident_unit_idx        ON resident (unit_id);
CREATE INDEX resident_care_idx        ON resident USING gin (care_flags);
CREATE INDEX facility_community_idx   ON facility (community_id, kind);
CREATE INDEX facility_building_idx    ON facility (building_id);
CREATE INDEX facility_geom_idx        ON facility USING gist (geom);
CREATE INDEX device_community_idx     ON device (community_id, type);
CREATE INDEX device_building_idx      ON device (building_id, floor);
CREATE INDEX device_unit_idx          ON device (unit_id);
CREATE INDEX device_facility_idx      ON device (facility_id);
CREATE INDEX device_geom_idx          ON device USING gist (geom);
CREATE INDEX device_geog_idx          ON device USING gist ((geom::geography));
CREATE INDEX staff_community_idx      ON staff (community_id, role);
CREATE INDEX walk_node_community_idx  ON walk_node (community_id);
CREATE INDEX walk_node_ref_idx        ON walk_node (ref_id);
CREATE INDEX walk_node_geom_idx       ON walk_node USING gist (geom);
CREATE INDEX walk_edge_community_idx  ON walk_edge (community_id);
CREATE INDEX walk_edge_source_idx     ON walk_edge (source);
CREATE INDEX walk_edge_target_idx     ON walk_edge (target);
