"""The resident and family apps' service functions: every read and write a resident's or
a family member's page makes, checked here (role, then the resident it acts for, then the
thing's community), whoever calls: a page, a forged request or a test.

A refusal is written to the audit log with the real login (`dashboard.audit.audited`)
and committed before the AccessDenied goes up, so call these outside a
``conn.transaction()`` block. A whole view of personal data (a household, a relative's
care status) is written to the audit log in the read's transaction. No log line here
names a resident or a phone number: ids only.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from shapely.geometry import Point

from dashboard import audit
from dashboard.scoped import audited, brief, whole_number
from twin import access
from twin.access import AccessDenied, User
from twin.alarms import AlarmSpec, Raised
from twin.charging_sessions import sheds_nearest_first, walking_metres
from twin.errors import TwinError
from twin.store import charging, inbox
from twin.store import operations as ops
from twin.store.reads import household as homes
from twin.store.reads.residents import ResidentHome, resident_home
from twin.store.reads.texts import wording
from twin.system_texts import Said
from twin.texts import DEFAULT_LANG, LANGS, Viewer
from twin.walkgraph import WalkGraph
from twin.work_orders import SYSTEM, WorkOrderSpec

if TYPE_CHECKING:  # the rule engine's module is heavy; the dispatcher is handed in
    from twin.rules.store import Dispatcher

#: An SOS is worked by the nearest security guard, urgently.
SOS_ROLE, SOS_DUE = "security", timedelta(minutes=5)
#: Not acknowledged within this long, an SOS climbs (`twin.rules.store.follow_up`).
SOS_ESCALATE_AFTER_S = 180.0
#: How far from the resident's building a phone's fix may be and still place an SOS (m).
SOS_FIX_MAX_M = 2000.0
#: How far back a family member's view of care alerts reaches.
CARE_ALERTS_DAYS = 7


# --- who asks -------------------------------------------------------------------------------

def own_home(conn: psycopg.Connection, user: User, resident_id: object, permission: str, *,
             what: str) -> ResidentHome:
    """The home of the resident the login acts for, if ``resident_id`` is it and the role may
    ``permission``; refused (and audited) otherwise."""
    with audited(conn, user, permission, subject_kind="resident", subject_id=resident_id):
        access.require(user, permission, what=what)
        access.require_own_resident(user, resident_id if isinstance(resident_id, str)
                                    else None, what=f"resident {brief(resident_id)}")
    assert isinstance(resident_id, str)
    home = resident_home(conn, resident_id)
    if home is None:
        raise TwinError(f"there is no resident {brief(resident_id)}")
    with audited(conn, user, permission, subject_kind="resident", subject_id=resident_id):
        access.require_community(user, home.community_id, what=f"resident {resident_id}")
    return home


# --- the household --------------------------------------------------------------------------

def household(conn: psycopg.Connection, user: User, resident_id: object) -> dict[str, Any]:
    """The resident's own household whole (unit, building, every member); the whole view
    is written to the audit log."""
    home = own_home(conn, user, resident_id, "household.view", what="see a household")
    with conn.transaction():
        found = homes.household(conn, home.resident_id)
        assert found is not None  # the home was just read
        audit.record(conn, user, "view_household", subject_kind="unit",
                     subject_id=home.unit_id,
                     detail={"residents": [m["id"] for m in found["members"]]})
    return found


# --- charging -------------------------------------------------------------------------------

def charging_piles(conn: psycopg.Connection, user: User, resident_id: object, *,
                   graph: WalkGraph) -> list[dict[str, Any]]:
    """The community's EV sheds nearest first by walking from the resident's building
    entrance (``graph``: the community's walkway graph, `twin.store.graph`), each with its
    piles' live state and how many are free."""
    home = own_home(conn, user, resident_id, "charging.use", what="look for charging piles")
    piles = homes.charging_piles(conn, home.community_id)
    origin = homes.entrance_point(conn, home.building_id)
    sheds = {p["shed_id"]: Point(p["lon"], p["lat"]) for p in piles}
    metres: dict[str, float] = {}
    if origin is not None and sheds:
        metres = dict(zip(sheds, walking_metres(graph, origin, list(sheds.values())).tolist(),
                          strict=True))
    return sheds_nearest_first(piles, metres)


def start_charging(conn: psycopg.Connection, user: User, resident_id: object,
                   device_id: object, *, at: datetime) -> dict[str, Any]:
    """Start a session at a free pile, as the resident's own: a ``start`` command to the
    pile (the resident has plugged their bike in), published by the rules service; the
    pile's charge_start makes it 'charging'."""
    home = own_home(conn, user, resident_id, "charging.use", what="start a charging session")
    if not isinstance(device_id, str) or not device_id:
        raise TwinError(f"not a charging pile: {brief(device_id)}")
    pile = homes.pile(conn, device_id)
    if pile is None or pile["type"] != "ev_charger":
        raise TwinError(f"not a charging pile: {brief(device_id)}")
    with audited(conn, user, "charging.use", subject_kind="device", subject_id=device_id):
        access.require_community(user, pile["community_id"], what=f"pile {device_id}")
        if pile["community_id"] != home.community_id:
            raise AccessDenied(f"pile {device_id} is not in the resident's community")
    if not pile["online"] or pile["status"] != "idle":
        raise TwinError(f"pile {device_id} is not free ({pile['status']})")
    sid = charging.start_session(conn, community_id=home.community_id, device_id=device_id,
                                 resident_id=home.resident_id, login=user.name, at=at)
    conn.commit()
    found = homes.session(conn, sid)
    assert found is not None
    return found


def stop_charging(conn: psycopg.Connection, user: User, resident_id: object,
                  session_id: object, *, at: datetime) -> dict[str, Any]:
    """Ask the pile of the resident's own session to stop."""
    home = own_home(conn, user, resident_id, "charging.use", what="stop a charging session")
    number = whole_number(session_id, "a charging session")
    found = homes.session(conn, number)
    with audited(conn, user, "charging.use", subject_kind="charging_session",
                 subject_id=number):
        if found is None or found["resident_id"] != home.resident_id:
            raise AccessDenied(f"charging session {number} is not {user.name}'s own")
    charging.request_stop(conn, number, resident_id=home.resident_id, at=at)
    conn.commit()
    again = homes.session(conn, number)
    assert again is not None
    return again


def my_sessions(conn: psycopg.Connection, user: User, resident_id: object, *, limit: int = 5
                ) -> list[dict[str, Any]]:
    """The resident's own charging sessions, newest first, with energy, power and state."""
    home = own_home(conn, user, resident_id, "charging.use", what="see charging sessions")
    return homes.sessions(conn, home.resident_id, limit=limit)


def charging_session(conn: psycopg.Connection, user: User, session_id: object
                     ) -> dict[str, Any]:
    """One session, only if it is the login's own resident's."""
    number = whole_number(session_id, "a charging session")
    found = homes.session(conn, number)
    with audited(conn, user, "charging.use", subject_kind="charging_session",
                 subject_id=number):
        access.require(user, "charging.use", what="see a charging session")
        access.require_own_resident(user, None if found is None else found["resident_id"],
                                    what=f"charging session {number}")
    assert found is not None
    return found


# --- SOS ------------------------------------------------------------------------------------

def raise_sos(conn: psycopg.Connection, user: User, resident_id: object, *, at: datetime,
              dispatcher: Dispatcher, fix: tuple[float, float] | None = None
              ) -> dict[str, Any]:
    """One-key SOS: a critical alarm about the resident at their building's entrance (or
    the phone's fix, if it gives one near home), through the alarm path the rules use, and
    an urgent order for the nearest security guard by walking distance, escalated like
    every alarm and order. A second press while it is open repeats it (its count), it
    opens nothing new."""
    from twin.rules.store import Outcome

    home = own_home(conn, user, resident_id, "sos.raise", what="raise an SOS")
    entrance = homes.entrance_point(conn, home.building_id)
    where = entrance
    if fix is not None:
        where = _fix_near(fix, entrance) or entrance
    if where is None:
        raise TwinError(f"building {home.building_id} has no place to send help to")
    params = {"resident": home.resident_id, "building": home.building_id,
              "unit": home.unit_id}
    said = Said(f"SOS from the resident app: {home.building_id} {home.unit_id}", "sys/sos",
                **params)
    spec = AlarmSpec(
        community_id=home.community_id, type="sos", domain="safety", severity="critical",
        source_kind="resident", source_id=home.resident_id, title=str(said), at=at,
        building_id=home.building_id, unit_id=home.unit_id, resident_id=home.resident_id,
        location=where, text_key=said.key, text_params=params,
        detail={"from": "resident_app", "escalate_after_s": SOS_ESCALATE_AFTER_S,
                "place": "phone" if where is not entrance else "entrance"})
    outcome = Outcome()
    with conn.transaction():
        raised: Raised = ops.raise_alarm(conn, spec, actor=f"app:{home.resident_id}",
                                         known_at=at)
        order = None
        if raised.fresh:
            order_said = Said(f"Respond to an SOS: {home.building_id} {home.unit_id}",
                              "sys/sos-order", **params)
            order = ops.open_work_order(conn, WorkOrderSpec(
                community_id=home.community_id, kind="sos", title=str(order_said),
                domain="safety", role=SOS_ROLE, location=where, at=at, priority="urgent",
                alarm_id=raised.alarm.id, grid_id=home.grid_id, building_id=home.building_id,
                unit_id=home.unit_id, resident_id=home.resident_id, due_in=SOS_DUE,
                text_key=order_said.key, text_params=params), actor=SYSTEM)
            order = dispatcher.assign(conn, order, now=at, outcome=outcome)
    conn.commit()
    return {"alarm_id": raised.alarm.id, "new": raised.new, "count": raised.alarm.count,
            "order_id": None if order is None else order.id,
            "assignee": None if order is None else order.assignee_id,
            "not_dispatched": bool(outcome.not_dispatched)}


# --- the inbox ------------------------------------------------------------------------------

def my_inbox(conn: psycopg.Connection, user: User, *, limit: int = 20) -> list[dict[str, Any]]:
    """The login's own in-app messages (a resident's or a family member's), newest first."""
    with audited(conn, user, "inbox", subject_kind="inbox", subject_id=""):
        if user.role not in access.PEOPLE:
            raise AccessDenied(f"{user.name} ({user.role}) has no in-app inbox")
    rows = inbox.messages(conn, user.name, limit=limit)
    # addressed to this login alone, about its own household or relative: shown whole,
    # in the login's language
    words = wording(conn, ((r["text_key"], r["text_params"]) for r in rows))
    me = Viewer(lang=user.lang if user.lang in LANGS else DEFAULT_LANG, whole=True)
    return [{**r, "text": words.render(r["text_key"], r["text_params"], viewer=me,
                                       fallback=r["text"])} for r in rows]


def read_inbox(conn: psycopg.Connection, user: User, *, at: datetime) -> int:
    """Mark the login's own messages read."""
    my_inbox(conn, user, limit=1)
    count = inbox.mark_read(conn, user.name, at=at)
    conn.commit()
    return count


# --- families -------------------------------------------------------------------------------

def care_status(conn: psycopg.Connection, user: User, resident_id: object, *, now: datetime
                ) -> dict[str, Any]:
    """A family member's relative: when they last went out and came in, and the care
    rules' alerts about them; nothing else. The view is audited."""
    home = own_home(conn, user, resident_id, "care.view", what="see a resident's care status")
    with conn.transaction():
        found = homes.care_status(conn, home.resident_id,
                                  since=now - timedelta(days=CARE_ALERTS_DAYS))
        audit.record(conn, user, "view_care_status", subject_kind="resident",
                     subject_id=home.resident_id)
    words = wording(conn, ((a["text_key"], a["text_params"]) for a in found["alarms"]))
    me = Viewer(lang=user.lang if user.lang in LANGS else DEFAULT_LANG, whole=True)
    found["alarms"] = [{**a, "title": words.render(a["text_key"], a["text_params"], viewer=me,
                                                   fallback=a["title"])}
                       for a in found["alarms"]]
    return {"resident_id": home.resident_id, "building_id": home.building_id,
            "unit_id": home.unit_id, **found}


# --- private --------------------------------------------------------------------------------



def _fix_near(fix: tuple[float, float], entrance: Point | None) -> Point | None:
    """The phone's fix as a point, if it is a position and near the resident's home (a fix
    across town says where the phone is, not where help is needed here)."""
    lon, lat = fix
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise TwinError(f"not a position: lon {lon}, lat {lat}")
    point = Point(lon, lat)
    if entrance is None:
        return point
    # metres near the equator or Wuhan alike, for a 2 km sanity bound
    dx = (lon - entrance.x) * 111_320 * abs(math.cos(math.radians(lat)))
    dy = (lat - entrance.y) * 110_540
    return point if (dx * dx + dy * dy) ** 0.5 <= SOS_FIX_MAX_M else None
