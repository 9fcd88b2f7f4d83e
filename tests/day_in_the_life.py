"""A day in the life of the sample community, through every real part of the live loop.

The simulator publishes a scripted day (the community's normal rhythm, plus
incidents in all five domains by day and by night) through Mosquitto; ingest
and the rules consume it with their own shared subscriptions; the rules run on
the data's clock (a :class:`twin.clock.Watermark`), raise alarms, command
devices (which the simulator obeys and acknowledges), open work orders and
dispatch them by walking distance; the notification worker delivers what the
rules wrote to a real SMTP server and a real signed-webhook receiver, and to
the speakers over MQTT. Then the day is judged:

- each incident gives exactly one alarm and at most one order;
- every order is assigned to an on-shift, qualified staff member within its
  SLA, or escalated;
- the normal rhythm raises no alarm (the false-positive budget is zero);
- every command is obeyed and acknowledged;
- every notification is delivered;
- the dashboard's KPI counts equal the same counts in SQL.

Used by ``tests/test_day_in_the_life.py`` (a shorter day in the suite) and by
``scripts/day_in_the_life.py`` (the whole day, which writes
``docs/day-in-the-life.md``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from ingest.consumer import open_session
from ingest.notify import build_transports, connect_broker
from ingest.rules import RULE_KINDS, RulesOptions, RulesService
from ingest.service import IngestOptions, IngestService
from ingest.simulator import run_simulation
from twin.clock import Watermark
from twin.notify.config import parse_config
from twin.notify.worker import Worker
from twin.rules import store
from twin.services.broker_accounts import INGEST, RULES, SIMULATOR
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.ports import free_port

LOCAL = timezone(timedelta(hours=8))
WEBHOOK_SECRET = "day-in-the-life"


@dataclass(frozen=True)
class Scripted:
    """One incident of the day: what the simulator injects, when, and which rules answer."""

    spec: str
    at: str  # local HH:MM
    rules: tuple[str, ...]
    domain: str
    #: False for an incident the rules answer with a device command, not an alarm
    #: (a full charger is cut off, dry soil is watered): it must raise none.
    alarm: bool = True
    #: How long after the incident its answer may come (a resident not back: hours).
    within_h: float = 2.0

    def moment(self, day: date) -> datetime:
        hour, minute = (int(x) for x in self.at.split(":"))
        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL)
        return local.astimezone(UTC)


#: The scripted day: incidents in the five domains, by night and by day. (A resident not
#: seen going out needs 36 hours or more before anyone may worry, so it is not in one day;
#: tests/test_rules_library.py lives through it.)
SCRIPT: tuple[Scripted, ...] = (
    Scripted("fire-lane-parking:东门", "01:15", ("camera-fire-lane-parking",), "safety"),
    Scripted("intrusion:wh-guanggu-b01-u0302", "02:20", ("smart-home-intrusion",), "service"),
    Scripted("co-leak:1号地库", "03:00", ("garage-co",), "safety"),
    Scripted("elderly-not-back:wh-guanggu-r000047", "06:40", ("special-care-not-back",),
             "activity", within_h=13.0),
    Scripted("trash-overflow:1号垃圾站", "07:30", ("trash-bin-full", "camera-garbage-overflow"),
             "environment"),
    Scripted("street-vending:南门(主入口)", "09:10", ("camera-street-vending",), "environment"),
    Scripted("high-altitude-throw:3栋", "10:20", ("camera-high-altitude-throw",), "safety"),
    Scripted("water-leak:1号泵房", "14:10", ("water-leak",), "safety"),
    Scripted("smoke:5栋", "16:30", ("smoke-detector-alarm", "camera-smoke-fire"), "safety"),
    Scripted("dry-soil:中心花园西", "17:05", ("irrigation-dry-soil",), "environment",
             alarm=False),
    Scripted("charger-full:2号充电棚", "19:45", ("ev-charger-full",), "service", alarm=False),
    Scripted("ebike-in-lift:1栋1号电梯", "21:40", ("camera-ebike-in-lift",), "safety"),
    Scripted("charger-overheat:1号充电棚", "23:10",
             ("ev-charger-overheat", "ev-charger-heating-fast"), "service"),
)


@dataclass
class Judged:
    """What the day produced, incident by incident, and the checks over the whole day."""

    start: datetime
    end: datetime
    published: dict[str, int]
    incidents: list[dict[str, Any]] = field(default_factory=list)
    false_alarms: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    commands: dict[str, int] = field(default_factory=dict)
    notifications: dict[str, int] = field(default_factory=dict)
    kpis: dict[str, tuple[int, int]] = field(default_factory=dict)
    dead_letters: int = 0
    wall_s: float = 0.0

    @property
    def problems(self) -> list[str]:
        out = []
        for i in self.incidents:
            want = 1 if i["alarm"] else 0
            if i["alarms"] != want:
                out.append(f"{i['spec']} at {i['at']}: {i['alarms']} alarms (want {want})")
            if not i["alarm"] and i["commands"] == 0:
                out.append(f"{i['spec']} at {i['at']}: the rules sent no command")
            if i["orders"] > 1:
                out.append(f"{i['spec']} at {i['at']}: {i['orders']} orders (want at most 1)")
        for a in self.false_alarms:
            out.append(f"alarm nobody scripted: {a['rule']} {a['type']} on {a['source']} "
                       f"at {a['at']}")
        for o in self.orders:
            if not o["ok"]:
                out.append(f"order {o['id']} ({o['kind']}): {o['why']}")
        if self.commands.get("unacknowledged"):
            out.append(f"{self.commands['unacknowledged']} commands never acknowledged")
        if self.commands.get("refused"):
            out.append(f"{self.commands['refused']} commands refused by the device")
        for state, n in self.notifications.items():
            if state != "delivered" and n:
                out.append(f"{n} notifications {state}")
        for name, (screen, sql) in self.kpis.items():
            if screen != sql:
                out.append(f"KPI {name}: the screen says {screen}, SQL says {sql}")
        return out


@contextmanager
def receivers() -> Iterator[tuple[str, list[dict[str, Any]], Any]]:
    """A real SMTP server (aiosmtpd) and a signed-webhook receiver on loopback."""
    from aiosmtpd.controller import Controller

    from twin.notify import webhook

    mails: list[Any] = []
    posts: list[dict[str, Any]] = []

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(envelope)
            return "250 OK"

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            good = webhook.verify(WEBHOOK_SECRET.encode(),
                                  self.headers[webhook.TIMESTAMP_HEADER], body,
                                  self.headers[webhook.SIGNATURE_HEADER])
            if good:
                posts.append(json.loads(body))
            self.send_response(200 if good else 401)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True).start()
    config = f"""
transports:
  mail: {{kind: smtp, host: 127.0.0.1, port: {smtp.port}, sender: twin@community.invalid}}
  sms: {{kind: webhook, url: "http://127.0.0.1:{http.server_address[1]}/send",
         secret_env: TWIN_DAY_WEBHOOK_SECRET, to: phone}}
  speakers: {{kind: mqtt}}
retry: {{max_attempts: 5, base_s: 1, max_s: 5, max_age_s: 172800}}
default:
  family:        {{via: [sms]}}
  grid_worker:   {{via: [sms]}}
  staff:         {{via: [sms, mail], duty: {{email: office@community.invalid}}}}
  security_desk: {{via: [mail], duty: {{email: desk@community.invalid}}}}
  broadcast:     {{via: [speakers]}}
"""
    try:
        yield config, posts, mails
    finally:
        http.shutdown()
        http.server_close()
        smtp.stop()


@dataclass
class LiveLoop:
    """The running consumers of the live loop, on the data's clock."""

    db_url: str
    mqtt_url: str
    ingest: IngestService
    rules: RulesService
    clock: Watermark

    def live_through(self, begin: datetime, end: datetime, *, speed: float,
                     inject: list[str], seed: int = 11) -> Any:
        """Simulate ``begin``..``end`` through the broker, then let everything settle.

        The simulator keeps obeying commands while the consumers settle and the rules
        tick for the last time, so the last commands are carried out too. Returns the
        simulator's report.
        """
        done, quit_sim = threading.Event(), threading.Event()
        result: list[Any] = []
        simulating = threading.Thread(target=lambda: result.append(run_simulation(
            self.db_url, self.mqtt_url, start=begin, until=end, speed=speed, batch_size=50,
            seed=seed, inject=inject, linger_s=600.0, stop=quit_sim, published_all=done)),
            daemon=True)
        simulating.start()
        while not done.wait(1.0):
            if not simulating.is_alive():
                break
        _settle(self.rules, self.ingest)
        time.sleep(2.0)  # the acks of the last commands
        quit_sim.set()
        simulating.join(timeout=60)
        if not result:
            raise RuntimeError("the simulator ended without a report (see its log)")
        return result[0]


@contextmanager
def live_loop(db_url: str, broker: EmbeddedMosquitto) -> Iterator[LiveLoop]:
    """Ingest, the rules (on a :class:`Watermark`) and the notification worker, delivering to
    a real SMTP server, a signed-webhook receiver and the speakers over MQTT.

    Each logs in to the broker with its own account, as `twin demo` runs them; the
    simulator (`LiveLoop.live_through`) with ``twin-simulator``'s."""
    import os

    os.environ.setdefault("TWIN_DAY_WEBHOOK_SECRET", WEBHOOK_SECRET)
    with psycopg.connect(db_url) as conn:
        store.store_library_if_empty(conn, at=datetime.now(UTC))
    tag = uuid.uuid4().hex[:6]
    ingest_opts = IngestOptions(group=f"day-ingest-{tag}", client_id=f"day-ingest-{tag}")
    rules_opts = RulesOptions(group=f"day-rules-{tag}", client_id=f"day-rules-{tag}",
                              tick_s=30.0)
    ingest_url, rules_url = broker.service_url(INGEST), broker.service_url(RULES)
    open_session(ingest_url, ingest_opts)
    open_session(rules_url, rules_opts, RULE_KINDS)
    clock = Watermark()
    stop = threading.Event()
    with ExitStack() as stack, receivers() as (config_text, _posts, _mails):
        # Registered first, so it runs last: once nobody consumes any more.
        stack.callback(_clear_statuses, db_url, broker.admin_url)
        ingest = IngestService(db_url, ingest_url, ingest_opts)
        ingest.start()
        stack.callback(ingest.stop)
        rules = RulesService(db_url, rules_url, rules_opts, clock=clock)
        rules.start()
        stack.callback(rules.stop)
        config = parse_config(config_text, origin="day-in-the-life")
        # the notification worker speaks with the rules' account, as `twin notify run` does
        client = connect_broker(rules_url, f"day-notify-{tag}")
        stack.callback(client.loop_stop)
        stack.callback(client.disconnect)
        notify_conn = psycopg.connect(db_url, autocommit=True)
        stack.callback(notify_conn.close)
        worker = Worker(notify_conn, config, build_transports(
            config, origin="day-in-the-life", conn=notify_conn, mqtt_client=client),
            clock=clock)
        delivering = threading.Thread(
            target=worker.run_forever, kwargs={"batch": 50, "interval_s": 0.2, "stop": stop},
            daemon=True)
        delivering.start()
        stack.callback(delivering.join)
        stack.callback(stop.set)
        yield LiveLoop(db_url, broker.service_url(SIMULATOR), ingest, rules, clock)


def _clear_statuses(db_url: str, mqtt_url: str) -> None:
    """The simulator's retained statuses would greet whoever subscribes next (other tests)."""
    from ingest.contract import topic
    from tests.mqtt_helpers import clear_retained

    with psycopg.connect(db_url) as conn:
        devices = conn.execute("SELECT community_id, id FROM device").fetchall()
    clear_retained(mqtt_url, [topic(c, d, "status") for c, d in devices])


def run_day(db_url: str, broker: EmbeddedMosquitto, *, day: date, start: str = "00:00",
            hours: float = 24.0, speed: float = 1800.0,
            script: tuple[Scripted, ...] = SCRIPT, seed: int = 11) -> Judged:
    """Live through ``hours`` of ``day`` (local) from ``start`` and judge what happened."""
    hh, mm = (int(x) for x in start.split(":"))
    begin = datetime(day.year, day.month, day.day, hh, mm, tzinfo=LOCAL).astimezone(UTC)
    end = begin + timedelta(hours=hours)
    if end > datetime.now(UTC) - timedelta(minutes=1):
        raise ValueError("a scripted day must lie in the past (devices may not report the "
                         "future)")
    todo = tuple(s for s in script if begin < s.moment(day) < end)
    began = time.monotonic()
    with live_loop(db_url, broker) as loop:
        report = loop.live_through(begin, end, speed=speed, seed=seed,
                                   inject=[f"{s.spec}@{s.at}" for s in todo])
    judged = judge(db_url, begin=begin, end=end, script=todo, day=day,
                   published=report.published)
    judged.wall_s = time.monotonic() - began
    return judged


def _settle(rules: RulesService, ingest: IngestService) -> None:
    """Wait until both consumers have handled everything and the last ticks have run."""
    quiet_since, last = time.monotonic(), (-1, -1.0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = (rules.processed, ingest.metrics.received._value.get())
        if now != last:
            quiet_since, last = time.monotonic(), now
        elif time.monotonic() - quiet_since > 2.0:
            break
        time.sleep(0.2)
    for _ in range(3):
        rules.tick_now(timeout=60)
    time.sleep(2.0)  # the notification worker's last rounds


def judge(db_url: str, *, begin: datetime, end: datetime, script: tuple[Scripted, ...],
          day: date, published: dict[str, int]) -> Judged:
    judged = Judged(start=begin, end=end, published=published)
    with psycopg.connect(db_url) as conn:
        alarms = conn.execute(
            """SELECT id, rule_id, type, source_id, raised_at FROM alarm
               WHERE raised_at >= %s AND raised_at < %s + interval '6 hours' ORDER BY raised_at""",
            (begin, end)).fetchall()
        claimed: set[int] = set()
        for s in script:
            at = s.moment(day)
            mine = [a for a in alarms if a[1] in s.rules and at - timedelta(minutes=1)
                    <= a[4] <= at + timedelta(hours=s.within_h)]
            claimed.update(a[0] for a in mine)
            orders = conn.execute(
                "SELECT count(*) FROM work_order WHERE alarm_id = ANY(%s)",
                ([a[0] for a in mine],)).fetchone()
            commands = conn.execute(
                """SELECT count(*) FROM device_command WHERE issued_by = ANY(%s)
                   AND sent_at BETWEEN %s AND %s + interval '2 hours'""",
                ([f"rule:{r}" for r in s.rules], at - timedelta(minutes=1), at)).fetchone()
            judged.incidents.append({
                "spec": s.spec, "at": s.at, "domain": s.domain, "rules": ", ".join(s.rules),
                "alarm": s.alarm, "commands": int(commands[0]) if commands else 0,
                "alarms": len(mine), "orders": int(orders[0]) if orders else 0,
                "raised": ", ".join(f"{a[2]}@{a[4].astimezone(LOCAL):%H:%M}" for a in mine),
            })
        judged.false_alarms = [
            {"rule": a[1], "type": a[2], "source": a[3],
             "at": f"{a[4].astimezone(LOCAL):%H:%M}"}
            for a in alarms if a[0] not in claimed]
        from twin.escalation import config_for

        for oid, kind, state, assignee, role, escalated, told, path, why, waited_s, community \
                in conn.execute(
                """SELECT o.id, o.kind, o.state, o.assignee_id, o.role,
                          o.escalation_level > 0,
                          EXISTS (SELECT 1 FROM notification n WHERE n.work_order_id = o.id
                                  AND n.state = 'delivered'),
                          (SELECT string_agg(e.action || coalesce(' ' || e.staff_id, ''),
                                             ' → ' ORDER BY e.time, e.id)
                           FROM work_order_event e WHERE e.work_order_id = o.id
                             AND e.action <> 'note'),
                          (SELECT e.detail->>'reason' FROM work_order_event e
                           WHERE e.work_order_id = o.id AND e.action = 'escalate'
                           ORDER BY e.time, e.id LIMIT 1),
                          (SELECT extract(epoch FROM min(e.time) - o.created_at)
                           FROM work_order_event e WHERE e.work_order_id = o.id
                             AND e.action IN ('assign', 'escalate')),
                          o.community_id
                   FROM work_order o JOIN alarm a ON a.id = o.alarm_id
                   WHERE a.raised_at >= %s AND a.raised_at < %s ORDER BY o.id""",
                (begin, end)).fetchall():
            # Answered within the front line's response time (someone sent, or the order
            # climbed), and then taken by someone or escalated to a tier that was told.
            limit_s = config_for(community).policy(0, kind).unassigned.total_seconds()
            answered = waited_s is not None and float(waited_s) <= limit_s + 60
            ok = answered and (assignee is not None or (escalated and told))
            judged.orders.append({"id": oid, "kind": kind, "state": state,
                                  "assignee": assignee, "role": role, "ok": ok,
                                  "why": "" if ok else (
                                      "not answered within its response time" if not answered
                                      else "escalated, but no tier was reached" if escalated
                                      else "nobody assigned and not escalated"),
                                  "answered_s": None if waited_s is None else float(waited_s),
                                  "path": path or "", "escalated_for": why or ""})
        row = conn.execute(
            """SELECT count(*), count(*) FILTER (WHERE acked_at IS NULL),
                      count(*) FILTER (WHERE ok IS FALSE)
               FROM device_command WHERE sent_at >= %s""", (begin,)).fetchone()
        assert row is not None
        judged.commands = {"sent": row[0], "unacknowledged": row[1], "refused": row[2]}
        judged.notifications = dict(conn.execute(
            "SELECT state, count(*) FROM notification WHERE time >= %s GROUP BY state",
            (begin,)).fetchall())
        dead = conn.execute("SELECT count(*) FROM dead_letter").fetchone()
        judged.dead_letters = int(dead[0]) if dead else 0
        judged.kpis = _kpis(conn)
    return judged


def _kpis(conn: psycopg.Connection) -> dict[str, tuple[int, int]]:
    """The large screen's KPI tiles against the same counts asked of SQL directly."""
    from twin.store.reads import kpis
    from twin.work_orders import OPEN_STATES

    communities = [r[0] for r in conn.execute("SELECT id FROM community ORDER BY id")]
    screen = kpis.kpis(conn, communities, now=datetime.now(UTC))
    sql = conn.execute(
        """SELECT count(*) FILTER (WHERE state <> 'cleared' AND severity = 'critical'),
                  count(*) FILTER (WHERE state <> 'cleared' AND severity = 'major')
           FROM alarm""").fetchone()
    orders = conn.execute("SELECT count(*) FROM work_order WHERE state = ANY(%s)",
                          (sorted(OPEN_STATES),)).fetchone()
    assert sql is not None and orders is not None
    return {"critical alarms": (screen["alarms"]["critical"], int(sql[0])),
            "major alarms": (screen["alarms"]["major"], int(sql[1])),
            "open orders": (screen["orders_open"], int(orders[0]))}


def markdown(judged: Judged, *, command: str) -> str:
    """The day as docs/day-in-the-life.md tabulates it."""
    local = f"{judged.start.astimezone(LOCAL):%Y-%m-%d %H:%M} – " \
            f"{judged.end.astimezone(LOCAL):%Y-%m-%d %H:%M} (UTC+8)"
    lines = [
        "# A day in the life of the sample community",
        "",
        (f"Produced by `{command}` through the real broker, ingest, rules, dispatch and "
         "notification worker; nothing below is staged."),
        "",
        f"- simulated: {local}, in {judged.wall_s:.0f} s of wall time",
        (f"- messages published: {sum(judged.published.values()):,} "
         f"({', '.join(f'{k} {v:,}' for k, v in sorted(judged.published.items()))})"),
        f"- dead letters: {judged.dead_letters}",
        "",
        "## Incidents",
        "",
        "| local time | incident | domain | answering rules | alarms | orders | commands | raised |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i in judged.incidents:
        lines.append(f"| {i['at']} | `{i['spec']}` | {i['domain']} | {i['rules']} | "
                     f"{i['alarms']} | {i['orders']} | {i['commands']} | {i['raised']} |")
    lines += ["", "## Alarms nobody scripted (the false-positive budget is zero)", ""]
    lines += [f"- {a['at']} `{a['rule']}` {a['type']} on {a['source']}"
              for a in judged.false_alarms] or ["none"]
    lines += ["", "## Work orders", "",
              ("Each order's steps (staff ids), how long until it was answered (someone sent, "
              "or the order climbed a tier; the front line's response time is 2 minutes), "
              "and why it first climbed, if it did."), "",
              ("| order | kind | state | assignee | role | steps | answered after | "
              "first escalated for | ok |"),
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {o['id']} | {o['kind']} | {o['state']} | {o['assignee'] or '—'} | "
              f"{o['role']} | {o['path']} | "
              f"{'—' if o['answered_s'] is None else format(o['answered_s'], '.0f') + ' s'} | "
              f"{o['escalated_for'] or '—'} | {'yes' if o['ok'] else 'no: ' + o['why']} |"
              for o in judged.orders]
    lines += ["", "## Commands and notifications", "",
              (f"- commands sent {judged.commands.get('sent', 0)}, unacknowledged "
               f"{judged.commands.get('unacknowledged', 0)}, refused "
               f"{judged.commands.get('refused', 0)}"),
              "- notifications: " + (", ".join(f"{k} {v}" for k, v in
                                              sorted(judged.notifications.items())) or "none"),
              "", "## The screen against SQL", "", "| KPI | screen | SQL |", "| --- | --- | --- |"]
    lines += [f"| {k} | {s} | {q} |" for k, (s, q) in judged.kpis.items()]
    problems = judged.problems
    lines += ["", "## Verdict", ""]
    lines += [f"- {p}" for p in problems] or ["Every check holds."]
    return "\n".join(lines) + "\n"
