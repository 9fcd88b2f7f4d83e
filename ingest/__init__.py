"""MQTT to the twin: the ingest service that writes readings and events to TimescaleDB.

Built under its own issue; the hypertables it writes to are in
twin/migrations/0003_time_series.sql.
"""
