"""Live through a whole scripted day of the sample community and write docs/day-in-the-life.md.

    .venv/bin/python scripts/day_in_the_life.py [--speed 1800] [--out docs/day-in-the-life.md]

It starts its own private PostgreSQL (PostGIS + TimescaleDB) and Mosquitto in a
temporary directory, loads the sample community, and runs yesterday (local time)
through the real broker, ingest, rules, dispatch and notification worker
(tests/day_in_the_life.py). It exits non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gis_data import SAMPLE_DIR
from gis_data.dataset import read_dataset
from tests.day_in_the_life import LOCAL, markdown, run_day
from twin.services.broker_accounts import SERVICES
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.postgres import EmbeddedPostgres
from twin.store import migrations
from twin.store.connection import connect
from twin.store.loader import load_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=1800.0,
                        help="simulated seconds per real second")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "day-in-the-life.md")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="twin-day-"))
    root.chmod(0o755)
    pg, broker = EmbeddedPostgres(root / "pg", durable=False), EmbeddedMosquitto(root / "mqtt",
                                                                          services=SERVICES)
    try:
        pg.start()
        broker.start()
        with connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "day"')
        url = pg.url("day")
        with connect(url) as conn:
            migrations.upgrade(conn)
            load_dataset(conn, read_dataset(SAMPLE_DIR))
        yesterday = (datetime.now(UTC).astimezone(LOCAL) - timedelta(days=1)).date()
        judged = run_day(url, broker, day=yesterday, hours=args.hours, speed=args.speed)
        text = markdown(judged, command="python scripts/day_in_the_life.py")
        args.out.write_text(text, encoding="utf-8")
        print(text)
        return 1 if judged.problems else 0
    finally:
        broker.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
