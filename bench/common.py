"""What every benchmark needs: scratch servers, the raw COPY baseline, and one result format.

Every benchmark writes ``bench/results/<name>.json`` through :func:`start_run`
and :meth:`Run.write`, so that each figure in docs/benchmarks.md can be traced
to the command that measured it, the baseline measured in the same run, the
ratio between them, and the machine and its load at the time (the machine is
shared: a figure without its load and baseline cannot be compared).
"""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import sql

from twin.services.postgres import EmbeddedPostgres
from twin.store import migrations
from twin.store.connection import connect

#: The narrowest row worth measuring: (time, device, value).
NARROW_COLUMNS = (("t", "timestamptz"), ("d", "text"), ("v", "float8"))
#: Where results are written and committed.
RESULTS_DIR = Path(__file__).with_name("results")
#: Python packages whose versions bear on the figures.
PACKAGES = ("numpy", "scipy", "networkx", "pandas", "shapely", "pyproj", "psycopg",
            "paho-mqtt", "orjson", "pydantic", "dash", "pyogrio")


@dataclass
class Run:
    """One run of one benchmark: its command, when it began, and the load then."""

    name: str
    parameters: dict[str, Any]
    command: str
    started: datetime
    load_at_start: tuple[float, float, float]
    _began: float = field(default_factory=time.perf_counter, repr=False)

    def write(self, figures: Mapping[str, Any], *, baselines: Mapping[str, Any],
              ratios: Mapping[str, Any], notes: Sequence[str] = (),
              out: Path | None = None) -> Path:
        """Write the result JSON (figures, same-run baselines, ratios, machine) and return its path.

        ``ratios`` are the figures to compare across runs; each key should say
        which figure is divided by which baseline.
        """
        path = Path(out) if out is not None else RESULTS_DIR / f"{self.name}.json"
        document = {
            "benchmark": self.name,
            "command": self.command,
            "date": self.started.isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - self._began, 1),
            "parameters": self.parameters,
            "figures": dict(figures),
            "baselines": dict(baselines),
            "ratios": dict(ratios),
            "notes": list(notes),
            "machine": machine_info() | {
                "load_at_start": self.load_at_start,
                "load_at_end": _load(),
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
        print(f"wrote {path}", flush=True)
        return path


def start_run(name: str, **parameters: Any) -> Run:
    """Begin a run of benchmark ``name`` (its JSON will be ``bench/results/<name>.json``)."""
    python = sys.executable
    if python.startswith(os.getcwd() + os.sep):
        python = os.path.relpath(python)  # .venv/bin/python, as the docs write it
    argv = [python, "-m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]]
    return Run(name=name, parameters=parameters, command=shlex.join(argv),
               started=datetime.now(UTC).replace(microsecond=0),
               load_at_start=_load())


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, Python, package and server versions of this machine."""
    versions: dict[str, str] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "cores": os.cpu_count(),
        "cpu": _first(Path("/proc/cpuinfo"), r"^model name\s*:\s*(.+)$"),
        "memory_gib": _meminfo_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "servers": _server_versions(),
    }


def ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    """``numerator / denominator`` rounded, or None when the baseline is missing or zero."""
    if not denominator:
        return None
    return round(numerator / denominator, digits)


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary directory the ``postgres`` user can reach, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="twin-bench-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def bench_database() -> Iterator[str]:
    """``TWIN_BENCH_DATABASE_URL`` if set (a scratch database: benchmarks write to it),
    else a fresh embedded cluster with durable settings; migrated either way."""
    if os.environ.get("TWIN_BENCH_DATABASE_URL"):
        url = os.environ["TWIN_BENCH_DATABASE_URL"]
        with connect(url) as conn:
            migrations.upgrade(conn)
        yield url
        return
    with scratch_dir() as root:
        server = EmbeddedPostgres(root / "pg")
        try:
            url = server.start()
            with connect(url) as conn:
                migrations.upgrade(conn)
            yield url
        finally:
            server.stop()


def narrow_rows(n: int) -> list[tuple]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [(start + timedelta(seconds=i), f"dev-{i % 1000}", float(i)) for i in range(n)]


def raw_copy_rate(url: str, rows: Sequence[tuple], columns: Sequence[tuple[str, str]]) -> float:
    """Rows/s of a bare psycopg binary COPY of ``rows`` into a plain table of ``columns``.

    An ordinary table (WAL-logged, no keys, no indexes, not a hypertable), as the
    twin's own tables are logged: a TEMP table skips the WAL and would overstate
    the baseline.
    """
    table = sql.Identifier("bench_raw_copy")
    with connect(url) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in columns)))
        rate = _timed_copy(conn, table, rows, columns)
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
        conn.commit()
        return rate


def copy_rate_into(url: str, table: str, rows: Sequence[tuple],
                   columns: Sequence[tuple[str, str]]) -> float:
    """Rows/s of a bare binary COPY of ``rows`` into the twin's own ``table``, emptied after.

    The same rows into the same hypertable with its keys: what the database
    itself can absorb, so that a ratio to it measures only what the service
    adds on top (broker, decoding, batching).
    """
    with connect(url) as conn:
        rate = _timed_copy(conn, sql.Identifier(table), rows, columns)
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        conn.commit()
        return rate


def _timed_copy(conn, table: sql.Identifier, rows: Sequence[tuple],
                columns: Sequence[tuple[str, str]]) -> float:
    """Rows/s of one binary COPY of ``rows`` into ``table``, committed."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    began = time.perf_counter()
    with conn.cursor() as cur, cur.copy(
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(table, names)
    ) as copy:
        copy.set_types([kind for _, kind in columns])
        for row in rows:
            copy.write_row(row)
    conn.commit()
    return len(rows) / (time.perf_counter() - began)


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def _first(path: Path, pattern: str) -> str | None:
    try:
        match = re.search(pattern, path.read_text(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1).strip() if match else None


def _meminfo_gib() -> float | None:
    kib = _first(Path("/proc/meminfo"), r"^MemTotal:\s*(\d+) kB")
    return round(int(kib) / 2**20, 1) if kib else None


def _server_versions() -> dict[str, str | None]:
    """The PostgreSQL, extension and Mosquitto versions the embedded servers run."""
    found: dict[str, str | None] = {}
    postgres = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    found["postgresql"] = _output([postgres[-1], "--version"]) if postgres else None
    for extension in ("timescaledb", "postgis"):
        controls = sorted(glob.glob(f"/usr/share/postgresql/*/extension/{extension}.control"))
        found[extension] = (_first(Path(controls[-1]), r"^default_version\s*=\s*'([^']+)'")
                            if controls else None)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    found["mosquitto"] = _output([mosquitto, "-h"]) if Path(mosquitto).exists() else None
    return found


def _output(argv: list[str]) -> str | None:
    """The first line a version command prints (Mosquitto's ``-h`` exits non-zero)."""
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else None
