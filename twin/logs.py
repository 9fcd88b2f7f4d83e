"""How every service logs: one JSON object per line for machines, plain text for a terminal.

    logs.configure()                      # TWIN_LOG_FORMAT=json|text; default: text on a tty
    with logs.bound(request_id="..."):    # fields on every line logged inside
        log.info("answered")
    log.info("dead letter", extra={"topic": t, "mqtt_mid": 17})   # fields of one line

A line carries the time, level, logger, message, the fields bound for the request or the
message being handled (request id, MQTT topic and message id) and an exception's trace.
Never personal data: callers log ids, not names or phone numbers, and a mobile number that
slips into a message anyway is masked here.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

FORMATS = ("json", "text")
#: Fields a line may carry from `extra=` or `bound()`; anything else passed is dropped.
FIELDS = ("request_id", "method", "path", "status", "ms", "worker", "service", "topic",
          "mqtt_mid", "reason", "role", "count", "port")
_bound: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "twin_log_fields", default=None)
#: A mainland mobile number (11 digits, 13x-19x) standing alone.
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def log_format(environ: dict[str, str] | None = None) -> str:
    """TWIN_LOG_FORMAT, else json when stderr is not a terminal (a service), text when it is."""
    env = os.environ if environ is None else environ
    value = (env.get("TWIN_LOG_FORMAT") or "").strip().lower()
    if not value:
        return "text" if sys.stderr.isatty() else "json"
    if value not in FORMATS:
        raise ValueError(f"TWIN_LOG_FORMAT must be json or text, not {value!r}")
    return value


def configure(level: int | str | None = None, *, fmt: str | None = None) -> None:
    """Route the root logger to stderr in the chosen format (idempotent: replaces handlers).

    `level` defaults to TWIN_LOG_LEVEL, else INFO."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("TWIN_LOG_LEVEL", "INFO").upper())


def formatter(fmt: str | None = None) -> logging.Formatter:
    return JsonFormatter() if (fmt or log_format()) == "json" else TextFormatter()


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add `fields` to every line logged in this block (this thread or task only)."""
    token = _bound.set({**(_bound.get() or {}), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """`bound` for code that opens and closes in two callbacks (a request's before and
    teardown); give the token back to `unbind`."""
    return _bound.set({**(_bound.get() or {}), **fields})


def unbind(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _bound.reset(token)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The bound fields, then the line's own (`extra=`), known names only."""
    out = dict(_bound.get() or {})
    for name in FIELDS:
        if name in record.__dict__:
            out[name] = record.__dict__[name]
    return out


def mask(text: str) -> str:
    return _MOBILE.sub(lambda m: m.group(0)[:3] + "********", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (orjson: a service logging per request does not notice)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask(record.getMessage()),
            **fields_of(record),
        }
        if record.exc_info:
            line["exc"] = mask(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """For a person at a terminal: time, level, message, then the fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = mask(super().format(record))
        extra = " ".join(f"{k}={v}" for k, v in fields_of(record).items())
        return f"{text}  [{extra}]" if extra else text
