"""What a rule asks for when it fires: intents, executed by an adapter (`twin.rules.store`).

Pure data. Targets are already resolved (device ids, staff ids, phone numbers);
texts travel as a key and parameters (ids, never names) beside a zh-CN
rendering with residents masked, so the adapter only writes and publishes,
and a test can check every action of a rule without a database.

``after_alarm`` names the raise_alarm node an intent follows in the rule's
graph: the adapter runs such an intent only when that alarm is new, so a
repeated detection counts on the open alarm instead of opening a second work
order or waking the family twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twin.alarms import AlarmGroup, AlarmSpec
from twin.work_orders import WorkOrderSpec


@dataclass(frozen=True, slots=True)
class RaiseAlarm:
    node: str
    spec: AlarmSpec
    #: Escalate when nobody acknowledged it within this many seconds (None: policy default).
    escalate_after_s: float | None = None
    after_alarm: str | None = None
    #: Nearby sources within a time window are one incident (None: one alarm per source).
    group: AlarmGroup | None = None


@dataclass(frozen=True, slots=True)
class ClearAlarm:
    node: str
    community_id: str
    source_id: str
    type: str
    at: datetime
    reason: str = ""
    after_alarm: str | None = None
    #: The work orders the alarm opened, when it clears: keep, close or cancel.
    orders: str = "keep"
    #: The severity this rule itself raises the type at: an alarm another rule made
    #: worse (an early warning grown into the real thing) is not this rule's to clear.
    up_to: str | None = None
    #: The reason as a text key and parameters (`reason` is its English rendering, for logs).
    text_key: str | None = None
    text_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendCommand:
    node: str
    community_id: str
    device_ids: tuple[str, ...]
    command: str
    at: datetime
    args: dict[str, Any] = field(default_factory=dict)
    after_alarm: str | None = None


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Cloud broadcast: a ``broadcast`` command to each speaker, and one outbox entry."""

    node: str
    community_id: str
    speaker_ids: tuple[str, ...]
    #: What the speakers say: the zh-CN text (a speaker plays one language).
    message: str
    at: datetime
    after_alarm: str | None = None
    text_key: str | None = None
    text_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notify:
    node: str
    community_id: str
    #: family, grid_worker, security_desk or staff (twin.store.operations channels)
    channel: str
    recipients: tuple[str, ...]
    #: The zh-CN text with residents masked; the worker renders it per recipient.
    message: str
    at: datetime
    after_alarm: str | None = None
    #: The rule text and its parameters (ids, never names), rendered for each recipient.
    text_key: str | None = None
    text_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OpenWorkOrder:
    node: str
    spec: WorkOrderSpec
    after_alarm: str | None = None


Intent = RaiseAlarm | ClearAlarm | SendCommand | Broadcast | Notify | OpenWorkOrder


@dataclass(frozen=True, slots=True)
class Firing:
    """One rule firing for one key (a device, a garage, a resident ...) at one time."""

    rule_id: str
    community_id: str
    key: str
    at: datetime
    #: 'raised' (a condition became true, or an event passed) or 'cleared'
    edge: str
    intents: tuple[Intent, ...]
    #: The names and values the texts were written from, kept in the alarm's detail.
    context: dict[str, Any] = field(default_factory=dict)
