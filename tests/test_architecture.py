"""The direction of imports: the domain core (twin/) imports none of its adapters.

The contracts live in pyproject.toml ([tool.importlinter]); this test runs them,
so a stray import fails the suite and not only the CI lint step.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_a_broken_contract_is_caught(tmp_path: Path) -> None:
    """The check is real: a core module importing an adapter breaks it."""
    import shutil

    for package in ("twin", "ingest", "gis_data", "dashboard", "layers"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.min.js", "sample"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    model = tmp_path / "twin" / "model.py"
    model.write_text(model.read_text() + "\nimport ingest.contract  # noqa: E402,F401\n")
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False, env={"PYTHONPATH": str(tmp_path),
                                                       "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "twin.model -> ingest.contract" in done.stdout
