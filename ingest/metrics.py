"""Prometheus metrics of one MQTT consumer (ingest or rules), served at /metrics beside its
/healthz (ingest.health)."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingest import health

_BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000)
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class ConsumerMetrics:
    """What every consumer reports, named ``twin_<service>_…``.

    Each service has its own registry, so several can run in one process (tests).
    """

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r, p = self.registry, f"twin_{self.service}"
        self.received = Counter(f"{p}_messages_received", "MQTT messages received", registry=r)
        self.rejected = Counter(f"{p}_rejected", "Messages or batch items dead-lettered",
                                ["reason"], registry=r)
        self.batch_size = Histogram(f"{p}_batch_messages", "Messages per flush",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.flush_seconds = Histogram(f"{p}_flush_seconds",
                                       "Time to decode and commit one flush", registry=r)
        self.lag = Histogram(f"{p}_lag_seconds", "Device timestamp to committed work",
                             buckets=_LAG_BUCKETS, registry=r)
        self.database_up = Gauge(f"{p}_database_up",
                                 "1 when the last commit reached the database", registry=r)
        self.pending = Gauge(f"{p}_pending_messages",
                             "Messages taken for a flush and not yet committed (nor acknowledged)",
                             registry=r)
        self.broker_up = Gauge(f"{p}_broker_up", "1 while the MQTT session is connected",
                               registry=r)
        self.database_up.set(1)

    def serve(self, port: int, checks: health.Checks, host: str | None = None
              ) -> ThreadingHTTPServer:
        """Serve /metrics and /healthz on ``port`` (0 picks a free one)."""
        return health.serve(self.registry, checks, port, host)


@dataclass
class IngestMetrics(ConsumerMetrics):
    service: str = "ingest"

    def __post_init__(self) -> None:
        super().__post_init__()
        r = self.registry
        self.written = Counter("twin_ingest_rows_written", "Rows added, by table", ["table"],
                               registry=r)
        self.duplicates = Counter("twin_ingest_duplicates",
                                  "Rows already stored (redelivered messages), by table",
                                  ["table"], registry=r)


@dataclass
class RulesMetrics(ConsumerMetrics):
    service: str = "rules"

    def __post_init__(self) -> None:
        super().__post_init__()
        r = self.registry
        self.firings = Counter("twin_rules_firings", "Rule firings acted on", registry=r)
        self.rule_errors = Counter("twin_rules_errors",
                                   "Observations or firings a rule could not handle (a bug)",
                                   registry=r)
