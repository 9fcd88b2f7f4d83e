-- The twin needs PostGIS for geometry and TimescaleDB for the time series.
-- The migration runner checks both are installed before it gets here, so a
-- missing one is reported in one sentence rather than as a SQL error.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS timescaledb;
