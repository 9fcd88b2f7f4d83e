"""The PostGIS/TimescaleDB adapter: the only place in the twin that talks SQL."""
