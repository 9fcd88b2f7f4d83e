"""What the twin answers when it is read, one module per concern, SQL beside each query.

Every function takes a psycopg connection and plain parameters and returns plain rows,
dicts, dataclasses or frames. Nothing here knows who is asking: a caller that serves
people (the control room, a REST API) checks the role and the grid first, and masks what
it must afterwards. Queries that take a community take a `scope.Scope` (one id, several,
or `scope.Everywhere`); every large-screen query is an aggregate or bounded.

- scope        which communities a view covers
- base_map     the static geometry the map is drawn from
- kpis         the large screen's counts
- alarms       open alarms: worst per building, the feed, cameras, counts by domain
- devices      devices that need attention, a building's devices, one device's grid
- telemetry    time-bucketed readings and events (history, trends, events per hour)
- work_orders  the board, routes, a worker's tasks, photo counts
- buildings    a building's summary and units, look-ups, footprints
- grids        grid ids, a grid's worker, per-grid aggregates
- staff        positions on shift, names, who may be assigned
- residents    a building's or unit's residents (whole: the caller masks), age bands
- users        logins of the control room
- audit        the audit log

Work orders and alarms one by one are read with `twin.store.operations`; buildings,
communities and device states as domain types with `twin.store.queries`.
"""
