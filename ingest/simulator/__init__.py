"""The device simulator: a community's devices, live on MQTT, with incidents and commands.

One module per domain of the device registry (:mod:`twin.device_types`):
:mod:`.access`, :mod:`.cameras`, :mod:`.safety`, :mod:`.environment`,
:mod:`.home`, :mod:`.charging`, :mod:`.equipment`, and :mod:`.people` for the
residents. A small core holds them together: :mod:`.clock` (the one simulated
clock every domain reads), :mod:`.world` (the devices as arrays and the shared
state), :mod:`.incidents`, :mod:`.commands`, :mod:`.gateways` (topics and
batches) and :mod:`.simulation` (the pure :class:`Simulation`). The adapters
are :mod:`.load` (the community from the database), :mod:`.publisher` (one
MQTT client that publishes and takes commands) and :mod:`.runner` (the
`twin simulate` command).
"""

from ingest.simulator.clock import LOCAL_OFFSET_S
from ingest.simulator.gateways import BATCH_WINDOW_S, RELAYED_TYPES, SITE_SENSOR_TYPES, Message
from ingest.simulator.incidents import INCIDENTS, Incident
from ingest.simulator.load import load_community
from ingest.simulator.runner import (
    SimulationReport,
    default_start,
    parse_start,
    run_simulation,
    simulate_command,
    tick_for,
)
from ingest.simulator.simulation import Simulation
from ingest.simulator.world import REPORT_INTERVAL_S, Community, Outcome

__all__ = [
    "BATCH_WINDOW_S", "INCIDENTS", "LOCAL_OFFSET_S", "RELAYED_TYPES", "REPORT_INTERVAL_S",
    "SITE_SENSOR_TYPES", "Community", "Incident", "Message", "Outcome", "Simulation",
    "SimulationReport", "default_start", "load_community", "parse_start", "run_simulation",
    "simulate_command", "tick_for",
]
