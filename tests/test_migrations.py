"""Versioned migrations: applied once, recorded, idempotent, and guarded against edits."""

from __future__ import annotations

import psycopg
import pytest

from twin.errors import TwinError
from twin.store import migrations


def _schema(conn: psycopg.Connection) -> list[tuple]:
    columns = conn.execute(
        """
        SELECT table_name, column_name, data_type, is_nullable
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY table_name, ordinal_position
        """
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    ).fetchall()
    return columns + indexes


def test_fresh_database_gets_every_migration_once(pg) -> None:
    url = pg.create_database("fresh_migrations")
    try:
        with psycopg.connect(url) as conn:
            applied = migrations.upgrade(conn)
            assert [m.version for m in applied] == [m.version for m in migrations.discover()]
            rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
            assert [r[0] for r in rows] == [m.version for m in applied]
    finally:
        pg.drop_database("fresh_migrations")


def test_upgrade_twice_changes_nothing(conn: psycopg.Connection) -> None:
    before = _schema(conn)
    assert migrations.upgrade(conn) == []
    assert migrations.upgrade(conn) == []
    assert _schema(conn) == before
    assert all(s.applied_at is not None for s in migrations.status(conn))


def test_twin_tables_and_hypertables_exist(conn: psycopg.Connection) -> None:
    tables = {r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"community", "grid", "building", "entrance", "unit", "resident", "facility",
            "device_type", "device", "staff", "walk_node", "walk_edge", "reading", "event",
            "staff_position", "device_state", "schema_version", "reading_hourly",
            "lifecycle_state"} <= tables
    hypertables = {r[0] for r in conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables")}
    # reading_hourly: a hypertable on the apache edition (a continuous aggregate on the
    # timescale edition), so that the lifecycle job drops its old chunks too.
    assert hypertables == {"reading", "event", "staff_position", "reading_hourly"}
    srids = dict(conn.execute(
        "SELECT f_table_name || '.' || f_geometry_column, srid FROM geometry_columns"
    ).fetchall())
    assert set(srids.values()) == {4326}
    assert srids["building.footprint"] == 4326


def test_edited_migration_is_refused(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE schema_version SET checksum = 'edited' WHERE version = 2")
    with pytest.raises(TwinError, match="0002_twin_model was changed after it was applied"):
        migrations.upgrade(conn)


def test_pending_migration_is_reported(conn: psycopg.Connection) -> None:
    migrations.require_current(conn)
    conn.execute("DELETE FROM schema_version WHERE version = 3")
    with pytest.raises(TwinError, match=r"pending: 0003_time_series.*twin db upgrade"):
        migrations.require_current(conn)


def test_duplicate_reading_is_a_no_op(conn: psycopg.Connection) -> None:
    """The natural key of readings makes a redelivered message harmless."""
    row = ("2026-11-24T07:00:00Z", "dev-1", "co", 12.5)
    for _ in range(2):
        conn.execute(
            "INSERT INTO reading (time, device_id, metric, value) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            row,
        )
    assert conn.execute("SELECT count(*) FROM reading").fetchone()[0] == 1
