"""The registry of device types: what each kind of device measures, reports and obeys.

One description per type, in one place (as Home Assistant describes each
integration the same way): ingest validates readings against the physical
ranges here, the rules refer to these metric and event names, and the loader
writes the registry to the ``device_type`` table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Domain = Literal["safety", "environment", "service", "activity", "equipment"]
DOMAINS: tuple[Domain, ...] = ("safety", "environment", "service", "activity", "equipment")

#: The device type that may relay other devices' readings in a batch.
GATEWAY_TYPE = "iot_gateway"
#: The device type a staff member wears: it publishes ``position`` fixes for its wearer.
BADGE_TYPE = "staff_badge"

#: How an access gate or door was opened, as access controllers report it (Hikvision's and
#: Dahua's event types name the same credentials): a face, a card (IC/ID), an NFC phone or
#: card, a resident's own QR code, a visitor pass's QR code (checked by the twin), a
#: fingerprint, a password (PIN), a phone over Bluetooth, a remote opening by the twin
#: (app or control room), a video intercom (answered by a resident, also from a
#: mini-program), voice, a "super SIM" (the carrier's NFC SIM) and the exit button inside.
#: The first seven are version 1's first list; a payload that uses them is unchanged.
AccessMethod = Literal["face", "card", "qr", "remote", "voice", "intercom", "password",
                       "nfc", "visitor_qr", "fingerprint", "bluetooth", "super_sim",
                       "exit_button"]
ACCESS_METHODS: tuple[AccessMethod, ...] = get_args(AccessMethod)
#: Methods the twin itself grants (a command), never a reader on its own.
GRANTED_BY_TWIN: frozenset[str] = frozenset({"remote", "visitor_qr"})

#: What the community's AI cameras are trained to detect.
CAMERA_CLASSES: tuple[str, ...] = (
    "high_altitude_throw",
    "ebike_in_lift",
    "fire_lane_parking",
    "garbage_overflow",
    "unleashed_dog",
    "street_vending",
    "smoke_fire",
    "no_helmet",
    "tailgating",
    "person_fall",
)


@dataclass(frozen=True, slots=True)
class Metric:
    """A quantity a device reports, with the range that is physically possible."""

    unit: str
    min: float | None = None
    max: float | None = None
    #: For text metrics: the values the device may send.
    choices: tuple[str, ...] = ()

    @property
    def is_text(self) -> bool:
        return bool(self.choices)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"unit": self.unit}
        if self.is_text:
            out["choices"] = list(self.choices)
        else:
            out["min"], out["max"] = self.min, self.max
        return out


@dataclass(frozen=True, slots=True)
class DeviceType:
    code: str
    domain: Domain
    name: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    #: Publishes position fixes of the staff member it is issued to (``position`` kind).
    positions: bool = False

    @property
    def capabilities(self) -> tuple[str, ...]:
        caps = []
        if self.metrics:
            caps.append("telemetry")
        if self.positions:
            caps.append("positions")
        if self.events:
            caps.append("events")
        if self.commands:
            caps.append("commands")
        return tuple(caps)


_ON_OFF = ("on", "off")

DEVICE_TYPES: dict[str, DeviceType] = {
    t.code: t
    for t in (
        # --- safety
        DeviceType(
            "access_gate", "safety", "Pedestrian/vehicle access gate (人行/车行道闸)",
            metrics={"door_state": Metric("", choices=("open", "closed", "held_open", "forced"))},
            # pass_scan: a visitor pass shown at the reader (the twin answers open or deny);
            # access_denied: a credential refused, by the reader or the twin
            events=("access", "door_forced", "door_held_open", "tailgating", "pass_scan",
                    "access_denied"),
            commands=("open", "lock", "unlock", "deny"),
        ),
        DeviceType(
            "access_door", "safety", "Building entrance door with face/card reader (单元门禁)",
            metrics={"door_state": Metric("", choices=("open", "closed", "held_open", "forced"))},
            events=("access", "door_forced", "door_held_open", "tailgating", "access_denied"),
            commands=("open", "lock", "unlock"),
        ),
        DeviceType(
            "ai_camera", "safety", "AI camera with on-edge detection (AI 摄像头)",
            metrics={"fps": Metric("1/s", 0, 60)},
            events=("detection",),
            commands=("snapshot",),
        ),
        DeviceType(
            "smoke_detector", "safety", "Smoke detector (烟感)",
            metrics={"smoke_obscuration": Metric("%/m", 0, 100), "battery": Metric("%", 0, 100)},
            events=("smoke_alarm",),
        ),
        DeviceType(
            "co_sensor", "safety", "Carbon monoxide sensor for garages (一氧化碳)",
            metrics={"co": Metric("ppm", 0, 1000), "temperature": Metric("°C", -40, 85)},
        ),
        DeviceType(
            "exhaust_fan", "safety", "Garage exhaust fan (排风机)",
            metrics={"running": Metric("", choices=_ON_OFF), "power": Metric("kW", 0, 30)},
            commands=("start", "stop"),
        ),
        DeviceType(
            "speaker", "safety", "IP speaker for cloud broadcast (云广播)",
            metrics={"volume": Metric("%", 0, 100)},
            commands=("broadcast", "stop_broadcast", "set_volume"),
        ),
        DeviceType(
            "water_leak_sensor", "safety", "Water leak sensor (水浸)",
            metrics={"leak": Metric("", choices=("dry", "wet")), "battery": Metric("%", 0, 100)},
        ),
        # --- environment
        DeviceType(
            "trash_bin_sensor", "environment", "Trash bin fill-level sensor (垃圾满溢)",
            metrics={"fill": Metric("%", 0, 100), "temperature": Metric("°C", -40, 85)},
        ),
        DeviceType(
            "soil_sensor", "environment", "Soil moisture and temperature probe (土壤墒情)",
            metrics={"soil_moisture": Metric("%", 0, 100),
                     "soil_temperature": Metric("°C", -30, 70)},
        ),
        DeviceType(
            "irrigation_valve", "environment", "Irrigation valve (智能灌溉阀)",
            metrics={"valve": Metric("", choices=("open", "closed")),
                     "flow": Metric("m³/h", 0, 20)},
            commands=("open", "close"),
        ),
        DeviceType(
            "air_quality_sensor", "environment", "Outdoor air quality station (空气质量)",
            metrics={
                "pm25": Metric("µg/m³", 0, 1000),
                "temperature": Metric("°C", -40, 60),
                "humidity": Metric("%", 0, 100),
                "noise": Metric("dB(A)", 20, 140),
            },
        ),
        # --- service
        DeviceType(
            "ev_charger", "service", "E-bike/EV charging pile (充电桩)",
            metrics={
                "status": Metric("", choices=("idle", "charging", "full", "fault")),
                "power": Metric("kW", 0, 22),
                "temperature": Metric("°C", -30, 120),
            },
            events=("charge_start", "charge_stop"),
            commands=("start", "stop", "cut_off"),
        ),
        DeviceType(
            "water_meter", "service", "Smart water meter (智能水表)",
            metrics={"flow": Metric("m³/h", 0, 50), "total": Metric("m³", 0, 1e9)},
        ),
        DeviceType(
            "power_meter", "service", "Smart power meter (智能电表)",
            metrics={"power": Metric("kW", 0, 200), "energy": Metric("kWh", 0, 1e9)},
        ),
        DeviceType(
            "smart_home_hub", "service", "Smart-home hub with away mode (智能家居)",
            metrics={"away_mode": Metric("", choices=_ON_OFF)},
            events=("door_contact", "motion", "intrusion"),
            commands=("arm_away", "disarm"),
        ),
        # --- equipment health
        DeviceType(
            "elevator_monitor", "equipment", "Elevator monitor (电梯卫士)",
            metrics={
                "floor": Metric("", -5, 80),
                "door_state": Metric("", choices=("open", "closed")),
                "running": Metric("", choices=_ON_OFF),
            },
            events=("trapped", "fault"),
        ),
        DeviceType(
            "iot_gateway", "equipment", "IoT gateway relaying meters and sensors (物联网网关)",
            metrics={"connected_devices": Metric("", 0, 100_000), "rssi": Metric("dBm", -140, 0)},
        ),
        DeviceType(
            "pump_monitor", "equipment", "Water pump room monitor (泵房)",
            metrics={
                "pressure": Metric("bar", 0, 25),
                "running": Metric("", choices=_ON_OFF),
                "water_level": Metric("m", 0, 10),
            },
            events=("fault",),
            commands=("start", "stop"),
        ),
        DeviceType(
            BADGE_TYPE, "activity", "Staff badge or tracker with GNSS/UWB positioning (工牌定位)",
            metrics={"battery": Metric("%", 0, 100)},
            positions=True,
        ),
    )
}
