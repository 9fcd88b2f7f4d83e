"""Where the twin's servers and files are, from the environment.

``TWIN_DATABASE_URL`` and ``TWIN_MQTT_URL`` point at servers run elsewhere
(production, the timescaledb-ha image); without them the twin runs its own
private PostgreSQL and Mosquitto under ``TWIN_HOME``. ``TWIN_MQTT_TLS=1`` gives the
embedded broker a TLS listener (with the installation's own CA) and points the services
at it; a ``mqtts://`` URL in ``TWIN_MQTT_URL`` does the same for a broker run elsewhere
(the CA in ``?ca=FILE`` or ``TWIN_MQTT_CA``). docs/deploy.md lists every setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    mqtt_url: str | None
    home: Path
    #: The embedded broker listens with TLS too, and the services use that listener.
    mqtt_tls: bool = False

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_broker(self) -> bool:
        return self.mqtt_url is None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings(
        database_url=env.get("TWIN_DATABASE_URL") or None,
        mqtt_url=env.get("TWIN_MQTT_URL") or None,
        home=Path(env["TWIN_HOME"]) if env.get("TWIN_HOME") else default_home(),
        mqtt_tls=(env.get("TWIN_MQTT_TLS") or "0").strip().lower() in ("1", "true", "yes", "on"),
    )


def default_home() -> Path:
    """``.twin/`` in a source checkout, else the user's data directory."""
    if (_PACKAGE_ROOT / "pyproject.toml").exists():
        return _PACKAGE_ROOT / ".twin"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "twin"
