"""deploy/ as far as this machine can check it without a Docker daemon (docs/deploy.md):
the compose file against the Compose Specification (Debian's docker-compose), the
Prometheus configuration and alert rules (promtool, with unit tests of the alerts), the
systemd units (systemd-analyze), every `twin` command they run, and the one table of
settings. docker-compose and promtool come from scripts/install-system.sh; a missing one
fails (a missing install step), it is not skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ingest.metrics import IngestMetrics, RulesMetrics
from ingest.notify import NotifyMetrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
TWIN = Path(sys.executable).with_name("twin")
_ENV = {"TWIN_DB_PASSWORD": "x" * 24, "TWIN_DASHBOARD_SECRET": "y" * 32}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"no {name}: scripts/install-system.sh installs it")
    return found


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    return subprocess.run([_tool("docker-compose"), "-f", str(DEPLOY / "compose.yaml"), *args],
                          env={**environ, **env}, capture_output=True, text=True, cwd=DEPLOY,
                          check=False)


def test_the_compose_file_is_valid_and_needs_its_secrets() -> None:
    checked = _compose("config", env=_ENV)
    assert checked.returncode == 0, checked.stderr
    resolved = yaml.safe_load(checked.stdout)
    services = resolved["services"]
    assert {"db", "init", "mosquitto", "ingest-1", "ingest-2", "rules", "notify", "dashboard",
            "prometheus", "postgres-exporter"} <= set(services)
    assert services["db"]["image"].startswith("timescale/timescaledb-ha:")
    for name in ("ingest-1", "ingest-2", "rules", "notify", "dashboard"):
        env = services[name]["environment"]
        assert env["TWIN_MQTT_URL"].startswith("mqtts://"), name  # TLS to the broker
        assert env["TWIN_MQTT_CA"] == "/etc/twin/tls/ca.crt"
        assert "healthz" in " ".join(services[name]["healthcheck"]["test"]), name
    assert services["mosquitto"]["ports"][0]["target"] == 8883
    client_ids = [services[n]["command"][services[n]["command"].index("--client-id") + 1]
                  for n in ("ingest-1", "ingest-2")]
    assert len(set(client_ids)) == 2  # each keeps its own broker session
    # without the database password it refuses, naming it
    refused = _compose("config", env={"TWIN_DASHBOARD_SECRET": "y" * 32})
    assert refused.returncode != 0 and "TWIN_DB_PASSWORD" in refused.stderr


def test_the_broker_listens_with_tls_only_and_the_generated_acls() -> None:
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    listeners = re.findall(r"^listener\s+(\d+)", conf, re.MULTILINE)
    assert listeners == ["8883"]
    assert re.search(r"^certfile ", conf, re.MULTILINE) and "allow_anonymous true" not in conf
    assert "include_dir /mosquitto/config/conf.d" in conf


def _twin_commands() -> list[list[str]]:
    """Every `twin ...` command line that compose and the systemd units run."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands = [s["command"] for s in compose["services"].values()
                if s.get("image", "").startswith("community-twin") and "entrypoint" not in s]
    init = compose["services"]["init"]["command"][0]
    commands += [line.split()[1:] for line in init.splitlines() if line.startswith("twin ")]
    for unit in (DEPLOY / "systemd").glob("*.service"):
        line = re.search(r"^ExecStart=(.*)$", unit.read_text(), re.MULTILINE).group(1)
        words = line.replace("'", " ").split()
        at = next(i for i, w in enumerate(words) if w.endswith("/twin"))
        commands.append([w for w in words[at + 1:]
                         if not w.startswith("$((") and w not in ("+", "%i))")])
    return commands


def test_every_twin_command_deploy_runs_exists_with_its_options() -> None:
    commands = _twin_commands()
    assert len(commands) >= 10
    wanted: dict[tuple[str, ...], set[str]] = {}  # one `--help` per command (each ~2 s)
    for command in commands:
        words = [w.replace("%i", "1") for w in command]
        verbs = [w for w in words if not w.startswith("-")][:2]
        name = tuple(verbs[:_depth(verbs)])
        wanted.setdefault(name, set()).update(w for w in words if w.startswith("--"))
    assert ("dashboard",) in wanted and ("rules", "run") in wanted
    for name, options in wanted.items():
        run = subprocess.run([str(TWIN), *name, "--help"], capture_output=True, text=True,
                             check=False, env={**os.environ, "COLUMNS": "200"})
        assert run.returncode == 0, (name, run.stderr)
        for option in options:
            assert option in run.stdout, (name, option)


def _depth(verbs: list[str]) -> int:
    """How many words name the command (`rules run`, `db upgrade`; `ingest` alone)."""
    return 2 if verbs and verbs[0] in ("rules", "notify", "db", "users") else 1


def test_prometheus_config_and_alert_rules_pass_promtool(tmp_path) -> None:
    promtool = _tool("promtool")
    rules = DEPLOY / "prometheus" / "alerts.yml"
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the config names the rules where the container mounts them: check a copy beside them
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text().replace(
        "/etc/prometheus/alerts.yml", str(rules))
    (tmp_path / "prometheus.yml").write_text(config)
    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], capture_output=True,
                            text=True, check=False, cwd=DEPLOY / "prometheus")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load(rules.read_text())["groups"]
              for r in g["rules"]}
    assert {"TwinIngestLagHigh", "TwinDeadLetterRateHigh", "TwinDatabaseDown",
            "TwinBrokerUnreachable"} <= alerts


def test_the_alerts_name_only_metrics_the_services_export() -> None:
    exported: set[str] = {"up", "pg_up", "pg_stat_activity_count", "pg_settings_max_connections"}
    registries: list[CollectorRegistry] = [IngestMetrics().registry, RulesMetrics().registry,
                                           NotifyMetrics().registry]
    for registry in registries:
        for family in registry.collect():
            suffixes = {"counter": ("_total",), "gauge": ("",),
                        "histogram": ("_bucket", "_sum", "_count")}[family.type]
            exported |= {family.name + s for s in suffixes}
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    named = set(re.findall(r"\b(twin_[a-z_]+|pg_[a-z_]+)\b", text))
    # the {__name__=~"twin_(ingest|rules)_database_up"} selectors, spelled out
    for pattern in re.findall(r'__name__=~"([^"]+)"', text):
        named |= {n for n in exported if re.fullmatch(pattern, n)}
        assert any(re.fullmatch(pattern, n) for n in exported), pattern
    named = {n for n in named if not n.endswith("_")}
    assert named <= exported, named - exported


def test_the_systemd_units_verify(tmp_path) -> None:
    analyze = _tool("systemd-analyze")
    for unit in (DEPLOY / "systemd").iterdir():
        if unit.suffix in (".service", ".timer"):
            # the units name /opt/twin's venv; point them at this one to check the rest
            text = unit.read_text().replace("/opt/twin/.venv/bin/twin", str(TWIN))
            (tmp_path / unit.name).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir())
    checked = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True,
                             text=True, check=False)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "Unknown" not in output and "bad-setting" not in output, output


def test_the_table_names_every_setting_in_the_code() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    table = doc[doc.index("## Every setting"):]
    code = "\n".join(p.read_text() for d in ("twin", "ingest", "dashboard", "gis_data", "layers",
                                             "scripts", "tests", "deploy")
                     for p in (ROOT / d).rglob("*")
                     if p.suffix in (".py", ".sh", ".yaml", ".example", ".service"))
    names = set(re.findall(r"\b(TWIN_[A-Z_]*[A-Z])\b", code))
    constants = {"TWIN_TABLES", "TWIN_TO_DEVICE"}  # Python names, not settings
    missing = sorted(n for n in names - constants if f"`{n}`" not in table)
    assert not missing, f"docs/deploy.md's table lacks {missing}"
    # and the dashboard's Settings fields
    from dataclasses import fields

    from dashboard.context import Settings

    lacking = [f.name for f in fields(Settings)
               if f"Settings.{f.name}" not in table and f"TWIN_DASHBOARD_{f.name.upper()}"
               not in table and f.name not in ("secure_cookies", "trusted_proxies",
                                               "ratelimit_storage", "community_id", "tile_url")]
    assert not lacking, lacking
