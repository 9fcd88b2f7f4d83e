"""Broker authentication at scale: hashing passwords, writing the ACL, Mosquitto loading them.

    .venv/bin/python -m bench.broker_auth --hash-users 500000 --acl-users 2000,10000,20000,40000

The figures of docs/broker-auth.md's "Scale" section and of the "Broker ACLs
at scale" table in docs/benchmarks.md, each against a baseline measured in
the same run:

- hashing: ``ingest.broker_auth.password_lines`` (PBKDF2-SHA512, 101
  iterations, threads) for N users, with its default threads and with one;
  baseline: ``mosquitto_passwd -U`` (the tool a user would reach for, C and
  OpenSSL) hashing a plain-text file of the same users and passwords;
- ACL text: ``acl_text`` for N devices; baseline: the same lines written by a
  bare f-string loop;
- password file load: time from starting a Mosquitto 2.0 with the password
  file of N users to its first CONNACK for a device login, and its resident
  memory; baseline: the same broker with no authentication at all;
- ACL load, for each user count: the same, with the per-user ACL file as
  well; baseline: that broker with the password file alone, so the ratio is
  what the ACL file adds;
- one login: connect and CONNACK for a device with a password, against an
  anonymous connect to a broker without authentication.

No database is needed: the accounts are synthetic ``DeviceAccount`` rows
named as the generator names them, one gateway in fifty.
"""

from __future__ import annotations

import getpass
import math
import os
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Annotated

import paho.mqtt.client as mqtt
import typer

from bench.common import ratio, scratch_dir, start_run
from ingest.broker_auth import (
    DEVICE_WRITES,
    GATEWAY_WRITES,
    DeviceAccount,
    acl_text,
    device_password,
)
from ingest.contract import TWIN_TO_DEVICE, topic
from twin.device_types import GATEWAY_TYPE
from twin.services.broker_accounts import RUNNING_SERVICES, password_lines
from twin.services.ports import free_port

MOSQUITTO = "/usr/sbin/mosquitto"
SECRET = b"bench-broker-auth-secret-32bytes"
COMMUNITY = "bench-community"


def main(
    hash_users: int = typer.Option(500_000, help="Users whose passwords are hashed and loaded."),
    acl_users: str = typer.Option("2000,10000,20000,40000",
                                  help="User counts of the ACL-load series."),
    logins: int = typer.Option(200, help="Logins timed one after another."),
    out: Annotated[Path | None, typer.Option(
        help="Default: bench/results/broker_auth.json.")] = None,
) -> None:
    run = start_run("broker_auth", hash_users=hash_users, acl_users=acl_users, logins=logins)
    figures: dict[str, object] = {}
    baselines: dict[str, object] = {}
    ratios: dict[str, object] = {}
    accounts = _accounts(hash_users)
    users = [(a.credentials_id, device_password(SECRET, a.credentials_id)) for a in accounts]

    with scratch_dir() as root:
        # --- hashing ------------------------------------------------------------------
        began = time.perf_counter()
        lines = password_lines(users)
        threads_s = time.perf_counter() - began
        began = time.perf_counter()
        password_lines(users, workers=1)
        one_s = time.perf_counter() - began
        plain = root / "plain"
        plain.write_text("".join(f"{u}:{p}\n" for u, p in users))
        began = time.perf_counter()
        subprocess.run(["mosquitto_passwd", "-U", str(plain)], check=True)
        tool_s = time.perf_counter() - began
        figures |= {"hash_users": hash_users, "hash_default_threads_s": round(threads_s, 2),
                    "hash_one_thread_s": round(one_s, 2)}
        baselines["mosquitto_passwd_U_s"] = round(tool_s, 2)
        ratios |= {"mosquitto_passwd_over_hash_default_threads": ratio(tool_s, threads_s),
                   "mosquitto_passwd_over_hash_one_thread": ratio(tool_s, one_s)}
        _print(figures, baselines, ratios)

        # --- the ACL text ---------------------------------------------------------------
        began = time.perf_counter()
        acl = acl_text(accounts)
        acl_s = time.perf_counter() - began
        began = time.perf_counter()
        bare = _bare_acl(accounts)
        bare_s = time.perf_counter() - began
        if bare != acl:
            raise AssertionError("the bare ACL loop does not write the same file")
        passwords = "\n".join(lines) + "\n"
        figures |= {"acl_text_s": round(acl_s, 2), "acl_mb": round(len(acl) / 1e6, 1),
                    "password_file_mb": round(len(passwords) / 1e6, 1)}
        baselines["bare_fstring_acl_s"] = round(bare_s, 2)
        ratios["bare_acl_over_acl_text"] = ratio(bare_s, acl_s)
        _print(figures, baselines, ratios)

        # --- Mosquitto loading the password file ----------------------------------------
        who, secret_word = users[len(users) // 2]
        (root / "passwords").write_text(passwords)
        del acl, bare, passwords, lines
        load = _start(root / "pw", password_file=root / "passwords", acl_file=None,
                      login=(who, secret_word))
        bare_load = _start(root / "open", password_file=None, acl_file=None, login=None)
        figures |= {"password_file_load_s": load["first_connack_s"],
                    "password_file_load_cpu_s": load["cpu_s_at_first_connack"],
                    "password_file_rss_mb": load["rss_mb"],
                    "login_ms_median": load["login_ms_median"],
                    "login_ms_p95": load["login_ms_p95"]}
        baselines |= {"no_auth_start_s": bare_load["first_connack_s"],
                      "no_auth_rss_mb": bare_load["rss_mb"],
                      "anonymous_login_ms_median": bare_load["login_ms_median"]}
        ratios |= {"password_file_load_over_no_auth": ratio(load["first_connack_s"],
                                                             bare_load["first_connack_s"]),
                   "login_over_anonymous_login": ratio(load["login_ms_median"],
                                                       bare_load["login_ms_median"])}
        _print(figures, baselines, ratios)

        # --- Mosquitto loading the per-user ACL file ------------------------------------
        series = []
        for n in (int(part) for part in acl_users.split(",")):
            some = _accounts(n)
            some_users = [(a.credentials_id, device_password(SECRET, a.credentials_id))
                          for a in some]
            case = root / f"acl-{n}"
            case.mkdir()
            (case / "passwords").write_text("\n".join(password_lines(some_users)) + "\n")
            (case / "acl").write_text(acl_text(some))
            who, secret_word = some_users[-1]
            with_acl = _start(case / "with", password_file=case / "passwords",
                              acl_file=case / "acl", login=(who, secret_word), logins=20)
            without = _start(case / "without", password_file=case / "passwords",
                             acl_file=None, login=(who, secret_word), logins=20)
            row = {"users": n, "with_acl_s": with_acl["first_connack_s"],
                   "password_file_only_s": without["first_connack_s"],
                   "with_acl_cpu_s": with_acl["cpu_s_at_first_connack"],
                   "password_file_only_cpu_s": without["cpu_s_at_first_connack"],
                   "acl_adds_s": round(with_acl["first_connack_s"]
                                       - without["first_connack_s"], 2),
                   "with_acl_over_password_only": ratio(with_acl["first_connack_s"],
                                                        without["first_connack_s"], 1),
                   "login_with_acl_ms_median": with_acl["login_ms_median"]}
            series.append(row)
            print(row, flush=True)
        figures["acl_load"] = series
        baselines["acl_load_baseline"] = "the same broker and password file without the ACL"
        ratios["acl_load_with_over_without"] = {str(r["users"]): r["with_acl_over_password_only"]
                                                for r in series}
        if len(series) >= 2:
            first, last = series[0], series[-1]
            figures["acl_growth_exponent"] = round(_exponent(
                first["users"], first["acl_adds_s"], last["users"], last["acl_adds_s"]), 2)
            figures["acl_growth_exponent_cpu"] = round(_exponent(
                first["users"], first["with_acl_cpu_s"] - first["password_file_only_cpu_s"],
                last["users"], last["with_acl_cpu_s"] - last["password_file_only_cpu_s"]), 2)
    run.write(figures, baselines=baselines, ratios=ratios, out=out, notes=[
        ("Load times are from starting mosquitto to the first CONNACK of a device login, "
         "so they include the process start; the baselines start the same way."),
        ("acl_growth_exponent: log(ACL time ratio) / log(user ratio) between the smallest "
         "and largest ACL case; 2 is quadratic. The _cpu one uses the broker's CPU seconds, "
         "which a busy machine inflates less than the wall time."),
    ])


def _accounts(n: int) -> list[DeviceAccount]:
    """``n`` devices of one community, one gateway in fifty, ordered by username."""
    return [DeviceAccount(credentials_id=f"cred-{COMMUNITY}-d{i:06d}", community_id=COMMUNITY,
                          device_id=f"d{i:06d}",
                          type=GATEWAY_TYPE if i % 50 == 0 else "water_meter")
            for i in range(n)]


def _bare_acl(accounts: list[DeviceAccount]) -> str:
    """The same ACL file by the plainest loop a user would write."""
    from twin.services.broker_accounts import SERVICE_ACL

    out = ["# Written by `twin broker-config` from the device registry; edits are overwritten.",
           "# No topic line comes before the first user, so anonymous clients get nothing."]
    for name in RUNNING_SERVICES:
        out.append(f"\nuser {name}")
        out += [f"topic {access} {pattern}" for access, pattern in SERVICE_ACL[name]]
    device_writes, gateway_writes = DEVICE_WRITES, GATEWAY_WRITES
    for a in accounts:
        root = topic(a.community_id, a.device_id, "")
        out.append(f"\nuser {a.credentials_id}")
        out += [f"topic write {root}{k}"
                for k in (gateway_writes if a.type == GATEWAY_TYPE else device_writes)]
        out += [f"topic read {root}{k}" for k in TWIN_TO_DEVICE]
    return "\n".join(out) + "\n"


class _BrokerExited(RuntimeError):
    """The broker stopped before answering: most often its port was taken meanwhile."""


def _start(directory: Path, *, password_file: Path | None, acl_file: Path | None,
           login: tuple[str, str] | None, logins: int = 200) -> dict[str, float]:
    """Start a broker, time its first CONNACK and then ``logins`` logins one after another.

    Connections are refused while Mosquitto loads the password and ACL files
    (it binds its listener after them), so on a shared machine another process
    can take the free port meanwhile; the broker then exits, and the
    measurement is made again on a new port.
    """
    for attempt in range(3):
        try:
            return _start_once(directory / f"try-{attempt}", password_file=password_file,
                               acl_file=acl_file, login=login, logins=logins)
        except _BrokerExited as exc:
            print(f"{exc}; again on another port", flush=True)
    raise RuntimeError(f"the broker in {directory} exited three times")


def _start_once(directory: Path, *, password_file: Path | None, acl_file: Path | None,
                login: tuple[str, str] | None, logins: int) -> dict[str, float]:
    directory.mkdir(parents=True)
    port = free_port()
    conf = [f"listener {port} 127.0.0.1", "per_listener_settings false",
            f"user {getpass.getuser()}", "persistence false", "log_dest none"]
    if password_file is None:
        conf.append("allow_anonymous true")
    else:
        conf += [f"password_file {password_file}", "allow_anonymous false"]
    if acl_file is not None:
        conf.append(f"acl_file {acl_file}")
    (directory / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    began = time.perf_counter()
    proc = subprocess.Popen([MOSQUITTO, "-c", str(directory / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _connack(port, login, deadline=began + 3600, broker=proc)
        first = time.perf_counter() - began
        cpu = _cpu_s(proc.pid)
        rss = _rss_mb(proc.pid)
        times = []
        for _ in range(logins):
            t = time.perf_counter()
            _connack(port, login, deadline=t + 60, broker=proc)
            times.append(time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    times.sort()
    return {"first_connack_s": round(first, 3), "cpu_s_at_first_connack": cpu, "rss_mb": rss,
            "login_ms_median": round(statistics.median(times) * 1000, 2),
            "login_ms_p95": round(times[int(len(times) * 0.95)] * 1000, 2)}


def _connack(port: int, login: tuple[str, str] | None, *, deadline: float,
             broker: subprocess.Popen) -> None:
    """Connect (retrying while the broker is not listening yet) until a successful CONNACK."""
    while True:
        if broker.poll() is not None:
            raise _BrokerExited(f"the broker on port {port} exited with {broker.returncode}")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"bench-{uuid.uuid4().hex[:8]}")
        if login is not None:
            client.username_pw_set(*login)
        answer: list[object] = []
        client.on_connect = _answer_into(answer)
        try:
            client.connect("127.0.0.1", port, keepalive=3600)
        except ConnectionRefusedError:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.005)
            continue
        lost = False
        while not answer and time.perf_counter() < deadline:
            if client.loop(timeout=0.01) != mqtt.MQTT_ERR_SUCCESS:
                lost = True  # closed before its CONNACK (a broker still loading): again
                break
        if lost and time.perf_counter() < deadline:
            time.sleep(0.005)
            continue
        client.disconnect()
        if not answer:
            raise TimeoutError(f"no CONNACK from the broker on port {port}")
        if getattr(answer[0], "is_failure", False):
            raise RuntimeError(f"the broker refused the login: {answer[0]}")
        return


def _answer_into(answer: list[object]):
    """An on_connect callback that keeps the CONNACK's reason code."""
    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        answer.append(reason_code)
    return on_connect


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used: its load time, minus the waiting
    for a core that a busy machine adds to the wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _exponent(n1: int, t1: float, n2: int, t2: float) -> float:
    """The power p in t ~ n**p through two points (nan when a time is not positive)."""
    if t1 <= 0 or t2 <= 0:
        return float("nan")
    return math.log(t2 / t1) / math.log(n2 / n1)


def _print(figures: dict, baselines: dict, ratios: dict) -> None:
    print({"figures": figures, "baselines": baselines, "ratios": ratios}, flush=True)


if __name__ == "__main__":
    typer.run(main)
