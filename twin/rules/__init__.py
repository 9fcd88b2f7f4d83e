"""The rule engine: rules as small graphs of source, conditions, enrichment and actions.

Pure core: `schema` (the YAML format), `compile` (checks and the networkx
graph), `snapshot` (the twin in memory), `engine` (evaluation with explicit
state and an injected clock), `actions` (intents). Adapters at the edge:
`store` (PostgreSQL) and `service` (MQTT, `twin rules run`); `cli` holds the
`twin rules` commands. Shipped rules live in `library/<domain>/*.yaml`.
"""
