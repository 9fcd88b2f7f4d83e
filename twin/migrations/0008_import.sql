-- GIS import: a building's height may also come from its 3D model (CityJSON),
-- measured as the model's highest vertex minus its lowest.

ALTER TABLE building DROP CONSTRAINT building_height_source_check;
ALTER TABLE building ADD CONSTRAINT building_height_source_check
    CHECK (height_source IN ('attribute', 'levels', 'default', 'model'));
