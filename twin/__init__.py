"""The community twin: domain model, store and the queries the rest of the system needs."""

__version__ = "0.1.0"
