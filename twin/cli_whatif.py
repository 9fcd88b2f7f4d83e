"""`twin whatif ...`: save scenarios and compare them with the twin as it is.

Thin: each command loads what it needs from the store, calls one analysis of
`twin.whatif`, prints a table and, if asked, writes GeoJSON or CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import typer
import yaml
from pydantic import ValidationError
from rich.table import Table

from twin.console import command_connection, console
from twin.errors import TwinError

whatif_app = typer.Typer(help="What-if planning: scenarios compared with the twin as it is.",
                         no_args_is_help=True)

Community = Annotated[str | None, typer.Option(
    "--community", help="Community id; default: the only one in the twin.")]


@whatif_app.command("save")
def save(
    path: Annotated[Path, typer.Argument(help="A scenario file (YAML or JSON).")],
    community: Community = None,
    actor: Annotated[str, typer.Option(help="Who saves it, for the record.")] = "cli",
) -> None:
    """Save (or replace) a scenario from a file; the live twin is not touched."""
    from twin.store.scenarios import save_scenario
    from twin.whatif.scenario import Scenario

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise TwinError(f"cannot read scenario file {path}: {e}") from e
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "scenario"
        raise TwinError(f"{path}: {where}: {first['msg']}") from e
    with command_connection() as conn:
        cid = _community(conn, community)
        saved = save_scenario(conn, cid, scenario, actor=actor)
        conn.commit()
    console.print(f"saved scenario [bold]{saved.scenario.name}[/] for {cid}")


@whatif_app.command("list")
def list_(community: Community = None) -> None:
    """The community's saved scenarios."""
    from twin.store.scenarios import list_scenarios

    with command_connection() as conn:
        saved = list_scenarios(conn, _community(conn, community))
    table = Table("scenario", "changes", "saved by", "updated")
    for s in saved:
        table.add_row(s.scenario.name, _changes(s.scenario), s.created_by,
                      s.updated_at.isoformat(timespec="seconds"))
    console.print(table)


@whatif_app.command("delete")
def delete(name: str, community: Community = None) -> None:
    from twin.store.scenarios import delete_scenario

    with command_connection() as conn:
        delete_scenario(conn, _community(conn, community), name)
        conn.commit()
    console.print(f"deleted scenario {name}")


@whatif_app.command("edges")
def edges(
    lon: float, lat: float,
    radius: Annotated[float, typer.Option(help="Metres.")] = 30.0,
    community: Community = None,
) -> None:
    """Walkway edges near a point: the ids a scenario closes."""
    with command_connection() as conn:
        cid = _community(conn, community)
        rows = conn.execute(
            """SELECT id, kind, length_m,
                      ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography)
               FROM walk_edge WHERE community_id = %s
                 AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s)
               ORDER BY 4""", (lon, lat, cid, lon, lat, radius)).fetchall()
    table = Table("edge", "kind", "length (m)", "distance (m)")
    for eid, kind, length, dist in rows:
        table.add_row(eid, kind, f"{length:.1f}", f"{dist:.1f}")
    console.print(table)


@whatif_app.command("coverage")
def coverage_command(
    scenario: Annotated[str, typer.Argument(help="A saved scenario's name.")],
    role: Annotated[str, typer.Option(help="Staff role that responds.")] = "security",
    shift: Annotated[list[str] | None, typer.Option(help="Shift(s); default day and night.")] = None,
    sla_min: Annotated[float, typer.Option("--sla-min", help="Response-time target, minutes.")] = 5.0,
    community: Community = None,
    geojson: Annotated[Path | None, typer.Option(help="Write buildings with both times.")] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the per-building table.")] = None,
) -> None:
    """Walking time from the nearest staff member of a role to every building, against the baseline.

    Staff start from their last known position, or from their base when
    they have none (off shift): the security room for guards, the property
    office for everyone else.
    """
    from twin.store.scenarios import compare_coverage, load_scenario

    with command_connection() as conn:
        cid = _community(conn, community)
        chosen = load_scenario(conn, cid, scenario)
        names = _names(conn, cid)
        footprints = _footprints(conn, cid) if geojson else None
        results = compare_coverage(conn, cid, chosen, role=role, shifts=shift or ["day", "night"],
                                   sla_s=sla_min * 60)
    frames = []
    for name, result in results.items():
        before, after = result.baseline, result.scenario
        summary = result.summary()
        console.print(f"[bold]{role}, {name} shift[/]: {len(before.staff_ids)} on duty in the "
                      f"baseline, {len(after.staff_ids)} in '{chosen.name}'; target {sla_min:g} min")
        table = Table("", "baseline", chosen.name)
        table.add_row("buildings over the target", str(summary["over_target_baseline"]),
                      str(summary["over_target_scenario"]))
        table.add_row("median walk (min)", _minutes(summary["median_baseline_s"]),
                      _minutes(summary["median_scenario_s"]))
        table.add_row("slowest building (min)", _minutes(result.table()["baseline_s"].max()),
                      _minutes(result.table()["scenario_s"].max()))
        console.print(table)
        console.print("newly over the target: "
                      f"{', '.join(names[b] for b in result.newly_over) or 'none'}")
        if result.back_within:
            console.print("back within the target: "
                          f"{', '.join(names[b] for b in result.back_within)}")
        hist = after.histogram()
        console.print("scenario histogram: " + ", ".join(
            f"{k} {v}" for k, v in hist.items() if v))
        frame = result.table().reset_index().assign(role=role, shift=name, scenario=chosen.name)
        frames.append(frame)
    _write(frames, footprints, geojson=geojson, csv=csv)


@whatif_app.command("impact")
def impact_command(
    scenario: Annotated[str, typer.Argument(help="A saved scenario's name.")],
    close_gate: Annotated[list[str] | None, typer.Option(help="A gate facility id to close too.")] = None,
    detour_min: Annotated[float, typer.Option(help="Report longer walks than this, minutes.")] = 1.0,
    community: Community = None,
    geojson: Annotated[Path | None, typer.Option(help="Write the affected buildings.")] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the per-building table.")] = None,
) -> None:
    """Which households and devices are cut off from the gates, or walk further, in a scenario."""
    from twin.store.graph import walk_routing_graph
    from twin.store.scenarios import entrances, gates, households, load_scenario
    from twin.whatif.impact import gate_impact

    with command_connection() as conn:
        cid = _community(conn, community)
        chosen = load_scenario(conn, cid, scenario)
        graph = walk_routing_graph(conn, cid)
        result = gate_impact(graph, entrances(conn, cid), gates(conn, cid), chosen,
                             closed_gates=tuple(close_gate or ()), detour_s=detour_min * 60)
        touched = result.cut_off + result.detoured
        counts = households(conn, touched)
        names = _names(conn, cid)
        footprints = _footprints(conn, cid) if geojson else None
    table = Table("building", "effect", "to a gate, as is (min)", "what-if (min)",
                  "households", "residents", "devices")
    for bid in touched:
        row = result.table.loc[bid]
        units, residents, devices = counts.get(bid, (0, 0, 0))
        table.add_row(names[bid], "cut off" if bid in result.cut_off else "detour",
                      _minutes(row["baseline_s"]), _minutes(row["scenario_s"]),
                      str(units), str(residents), str(devices))
    console.print(table)
    total = [sum(c[k] for b, c in counts.items() if b in result.cut_off) for k in range(3)]
    console.print(f"cut off: {len(result.cut_off)} buildings, {total[0]} households, "
                  f"{total[1]} residents, {total[2]} devices; "
                  f"longer walk: {len(result.detoured)} buildings")
    frame = result.table.reset_index().assign(
        scenario=chosen.name,
        effect=lambda f: np.where(f["building_id"].isin(result.cut_off), "cut_off",
                                  np.where(f["building_id"].isin(result.detoured), "detour", "")))
    _write([frame], footprints, geojson=geojson, csv=csv)


Since = Annotated[str | None, typer.Option(
    "--from", help="Start: ISO date or time, community local time; default: --days ago.")]
Until = Annotated[str | None, typer.Option(
    "--to", help="End: ISO time (exclusive), or a date, which takes that day in; default: now.")]
Days = Annotated[int, typer.Option(help="Without --from: this many days before --to.")]


@whatif_app.command("charging")
def charging_command(
    scenario: Annotated[str, typer.Argument(help="A saved scenario's name (its piles_added).")],
    since: Since = None,
    until: Until = None,
    days: Days = 7,
    by_day: Annotated[bool, typer.Option(help="Also one row per shed and day.")] = False,
    community: Community = None,
    csv: Annotated[Path | None, typer.Option(help="Write every row, per shed and day.")] = None,
) -> None:
    """How long residents would have queued at the EV sheds over a past period, with the
    scenario's piles against the real ones."""
    from twin.store.scenarios import load_scenario
    from twin.store.whatif_queries import shed_demand
    from twin.whatif.charging import charging_capacity

    with command_connection() as conn:
        cid = _community(conn, community)
        start, end = _period(conn, cid, since, until, days)
        chosen = load_scenario(conn, cid, scenario)
        demands = shed_demand(conn, start=start, end=end, community_id=cid)
    try:
        report = charging_capacity(demands, start=start, end=end, piles_added=chosen.piles_added)
    except ValueError as e:
        raise TwinError(str(e)) from e
    console.print(f"EV sheds from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} (local), "
                  f"as they are and in '{chosen.name}'")
    table = Table("shed", "", "day", "piles", "sessions", "waited", "mean wait", "p90 wait",
                  "longest", "busy", "peak queue")
    for b, sc in zip(report.baseline, report.scenario, strict=True):
        if b.day is not None and not by_day:
            continue
        for label, q in (("as is", b), ("what-if", sc)):
            table.add_row(b.name, label, b.day.isoformat() if b.day else "all",
                          str(q.piles), str(q.sessions), f"{q.share_waited:.0%}",
                          _duration(q.mean_wait_s), _duration(q.p90_wait_s),
                          _duration(q.max_wait_s), f"{q.utilisation:.0%}", str(q.peak_queue))
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    if csv is not None:
        import pandas as pd

        pd.DataFrame(report.rows()).to_csv(csv, index=False)
        console.print(f"wrote {csv}")


@whatif_app.command("replay")
def replay_command(
    scenario: Annotated[str, typer.Argument(help="A saved scenario's name (its rule_params).")],
    since: Since = None,
    until: Until = None,
    days: Days = 30,
    community: Community = None,
    csv: Annotated[Path | None, typer.Option(help="Write every rule's rows per day.")] = None,
) -> None:
    """How many alarms and work orders the scenario's changed rules would have raised over a
    past period, replayed from the stored readings, beside what the live system did."""
    from twin.store.scenarios import load_scenario
    from twin.store.whatif_queries import replay_rule, stored_rule
    from twin.whatif.replay import NotReplayable

    rows: list[dict] = []
    with command_connection() as conn:
        cid = _community(conn, community)
        start, end = _period(conn, cid, since, until, days)
        chosen = load_scenario(conn, cid, scenario)
        if not chosen.rule_params:
            raise TwinError(f"scenario {chosen.name!r} changes no rule parameters (rule_params)")
        for rule_id, params in chosen.rule_params.items():
            try:
                result = replay_rule(conn, stored_rule(conn, rule_id), start=start, end=end,
                                     params=params, community_id=cid)
            except ValueError as e:
                raise TwinError(str(e)) from e
            if isinstance(result, NotReplayable):
                console.print(f"[yellow]{result}[/]")
                continue
            console.print(f"[bold]{rule_id}[/]: {_spec(result.baseline)} → "
                          f"{_spec(result.scenario)}, {start:%Y-%m-%d} to {end:%Y-%m-%d}")
            table = Table("day", "alarms as is", f"alarms in '{chosen.name}'", "alarms live",
                          "orders as is", f"orders in '{chosen.name}'", "orders live")
            for row in result.rows():
                if row["day"] != "all" and not any(row[k] for k in row if k not in ("rule_id", "day")):
                    continue
                table.add_row(row["day"], str(row["baseline_alarms"]), str(row["scenario_alarms"]),
                              str(row["did_opened"]), str(row["baseline_work_orders"]),
                              str(row["scenario_work_orders"]), str(row["did_work_orders"]))
            console.print(table)
            rows += result.rows()
    if csv is not None and rows:
        import pandas as pd

        pd.DataFrame(rows).to_csv(csv, index=False)
        console.print(f"wrote {csv}")


# --- internals -------------------------------------------------------------------------

def _community(conn, community: str | None) -> str:
    from twin.store.reads.scope import one_community

    return one_community(conn, community)


def _names(conn, cid: str) -> dict[str, str]:
    """Building id -> "name (id)", as people say it and as the files hold it."""
    from twin.store.scenarios import building_names

    return {bid: f"{name} ({bid})" for bid, name in building_names(conn, cid).items()}


def _footprints(conn, cid: str) -> gpd.GeoDataFrame:
    from shapely import from_wkb

    rows = conn.execute("SELECT id, name, ST_AsBinary(footprint) FROM building WHERE community_id = %s",
                        (cid,)).fetchall()
    return gpd.GeoDataFrame({"building_id": [r[0] for r in rows], "name": [r[1] for r in rows]},
                            geometry=[from_wkb(bytes(r[2])) for r in rows], crs=4326)


def _write(frames, footprints, *, geojson: Path | None, csv: Path | None) -> None:
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    frame = frame.replace([np.inf, -np.inf], np.nan)
    if csv is not None:
        frame.to_csv(csv, index=False)
        console.print(f"wrote {csv}")
    if geojson is not None:
        out = footprints.merge(frame, on="building_id")
        out.to_file(geojson, driver="GeoJSON")
        console.print(f"wrote {geojson}")


def _period(conn, cid: str, since: str | None, until: str | None, days: int):
    """(start, end), aware: text without an offset is on the community's clock, and a date
    alone as ``until`` takes that whole day in (as `twin audit` reads it)."""
    from datetime import datetime, timedelta

    from twin.calendars import local_moment
    from twin.store.reads.texts import community_timezone

    tz = community_timezone(conn, cid)
    try:
        end = local_moment(until, tz, end_of_day=True) if until else \
            datetime.now(ZoneInfo(tz))
        start = local_moment(since, tz) if since else end - timedelta(days=days)
    except ValueError as e:
        raise TwinError(str(e)) from None
    if end <= start:
        raise TwinError(f"the period ends ({end:%Y-%m-%d %H:%M}) before it starts "
                        f"({start:%Y-%m-%d %H:%M})")
    return start, end


def _spec(spec) -> str:
    parts = [f"{spec.metric}"]
    if spec.above is not None:
        parts.append(f"> {spec.above:g}")
    if spec.below is not None:
        parts.append(f"< {spec.below:g}")
    if spec.for_s:
        parts.append(f"for {spec.for_s:g} s")
    return " ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return "0" if seconds <= 0 else "<1 min"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _minutes(seconds: float) -> str:
    return "unreachable" if not np.isfinite(seconds) else f"{seconds / 60:.1f}"


def _changes(s) -> str:
    parts = []
    for label, value in (("closed edges", s.closed_edges), ("added paths", s.added_paths),
                         ("staff away", s.staff_removed), ("staff added", s.staff_added),
                         ("staff moved", s.staff_moved), ("shift changes", s.shift_changes),
                         ("piles added", s.piles_added), ("rule changes", s.rule_params)):
        if value:
            parts.append(f"{len(value)} {label}")
    return ", ".join(parts) or "none"

