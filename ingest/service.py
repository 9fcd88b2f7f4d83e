"""`twin ingest`: MQTT in, TimescaleDB out, nothing lost and nothing doubled.

A :class:`ingest.consumer.Consumer` whose commit writes each decoded flush
(readings, events, latest state, command acks and dead letters) in one
transaction with idempotent natural keys. While PostgreSQL commits one flush
(and the GIL is free) the next is decoded. If the database is down, the
flush is retried with back-off and nothing is acknowledged; the broker stops
sending once our receive window is full and redelivers whatever was not
acknowledged if we die. Redelivery adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from ingest.broker import Received
from ingest.consumer import Consumer, ConsumerOptions
from ingest.decode import Decoded
from ingest.metrics import IngestMetrics
from ingest.writer import Written, prepare, write


@dataclass(frozen=True, slots=True)
class IngestOptions(ConsumerOptions):
    group: str = "twin-ingest"
    client_id: str = "twin-ingest-1"


class IngestService(Consumer):
    service = "ingest"
    metrics: IngestMetrics

    def __init__(self, database_url: str, mqtt_url: str,
                 options: IngestOptions = IngestOptions()) -> None:
        super().__init__(database_url, mqtt_url, options, IngestMetrics())

    def connection_opened(self, conn: psycopg.Connection) -> None:
        prepare(conn)

    def commit(self, batch: list[Received], staged: Decoded) -> None:
        written = write(self.db(), staged)
        self._record(staged, written, datetime.now(UTC))

    def _record(self, rows: Decoded, written: Written, committed: datetime) -> None:
        for table, added, offered in (("reading", written.readings, len(rows.readings)),
                                      ("event", written.events, len(rows.events))):
            self.metrics.written.labels(table).inc(added)
            self.metrics.duplicates.labels(table).inc(offered - added)
        self.metrics.written.labels("device_state").inc(written.states)
        self.metrics.written.labels("device_command").inc(written.acks)
        self.metrics.written.labels("staff_position").inc(written.positions)
        for reason, n in written.dead.items():
            self.metrics.rejected.labels(reason).inc(n)
        for ts in rows.device_times:
            self.metrics.lag.observe(max(0.0, (committed - ts).total_seconds()))
