"""``immos departures``: the departure stream (replay, NATS), review, monitor, overstays."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from immigrationos.cli import overstays
from immigrationos.cli.common import (
    JSON_OUT,
    PASSWORD,
    console,
    friendly_errors,
    kv_table,
    print_json,
    progress_bar,
    run_as,
    runtime,
    signed_in,
)
from immigrationos.core.errors import ValidationFailed
from immigrationos.departures import monitor, service
from immigrationos.departures.events import json_schema, write_schema
from immigrationos.departures.models import Departure
from immigrationos.departures.replay import ReplayReport, lines_of, replay
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose

app = typer.Typer(
    help="Departure events: replay or consume the stream, review uncertain matches, monitor, "
    "overstays.",
    no_args_is_help=True,
)
review_app = typer.Typer(help="Departures the matcher left for a person.", no_args_is_help=True)
app.add_typer(review_app, name="review")
app.add_typer(overstays.app, name="overstays")

AS = typer.Option("analyst", "--as", help="Who is working (username).")
WHY = typer.Option("departure review", "--why", help="Why you need this (audited).")
NATS_URL = typer.Option(None, "--url", help="NATS server (default: IMMOS_NATS_URL).")


def _system(why: str) -> Any:
    return system_context(Purpose.DEPARTURE_VERIFICATION, why)


@app.command("schema")
@friendly_errors
def schema_cmd(
    write: Path | None = typer.Option(None, "--write", help="Write the schema to this file."),
) -> None:
    """The departure event schema (JSON Schema, version 1) for producers."""
    if write:
        console.print(f"wrote {write_schema(write)}")
    else:
        console.print_json(json.dumps(json_schema()))


def print_replay(report: ReplayReport) -> None:
    console.print(
        kv_table(
            "Departure events processed",
            {
                "events": report.events,
                **{f"status {k}": v for k, v in sorted(report.statuses.items())},
                **{f"band {k}": v for k, v in sorted(report.bands.items())},
                **{f"case step {k}": v for k, v in sorted(report.steps.items())},
                "events/s": f"{report.rate:,.0f}",
            },
        )
    )


@app.command("replay")
@friendly_errors
def replay_cmd(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A JSON Lines stream."),
    rate: float | None = typer.Option(
        None, "--rate", "-r", min=0.1, help="Events per second (default: as fast as it goes)."
    ),
    batch: int = typer.Option(
        service.BATCH, "--batch", min=1, help="Events per transaction at most."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only events that occurred at or after this ISO date/time."
    ),
) -> None:
    """Replay a departure stream file through the embedded transport (exactly once)."""
    start = datetime.fromisoformat(since).astimezone() if since else None
    with runtime() as rt, progress_bar() as bar:
        task = bar.add_task("build matcher", total=None)
        processor = service.Processor(rt, "replay")
        bar.update(task, description=f"replay {path.name}")
        report = replay(
            processor,
            lines_of(path, start),
            rate=rate,
            batch_size=batch,
            progress=lambda n: bar.advance(task, n),
        )
    print_replay(report)


@app.command("publish")
@friendly_errors
def publish_cmd(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A JSON Lines stream."),
    rate: float | None = typer.Option(None, "--rate", "-r", min=0.1, help="Events per second."),
    url: str | None = NATS_URL,
) -> None:
    """Publish a stream file to NATS JetStream (each with ``Nats-Msg-Id`` = its event id)."""
    from immigrationos.departures import nats_transport

    report = nats_transport.publish_sync(url, lines_of(path), rate=rate)
    console.print(kv_table("Published", _plain(report)))


@app.command("consume")
@friendly_errors
def consume_cmd(
    transport: str = typer.Option("nats", "--transport", help="nats (durable pull consumer)."),
    url: str | None = NATS_URL,
    durable: str = typer.Option("immos-departures", "--durable", help="Consumer name."),
    batch: int = typer.Option(
        service.BATCH, "--batch", min=1, help="Messages per fetch (and transaction) at most."
    ),
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", help="Stop after this many seconds without messages."
    ),
    drain: bool = typer.Option(
        False, "--drain", help="Stop once nothing is pending and nothing awaits an ack."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Consumer processes sharing one matcher (forked after it is built): a core each.",
    ),
) -> None:
    """Consume departure events from NATS JetStream until stopped (Ctrl-C) or idle."""
    if transport != "nats":
        raise ValidationFailed(
            "consume reads NATS JetStream (--transport nats); the embedded transport is "
            "`immos departures replay FILE` and POST /api/departures/events"
        )
    from immigrationos.departures import nats_transport

    with runtime() as rt:
        report = nats_transport.consume_sync(
            rt, url, durable=durable, batch_size=batch,
            idle_exit=idle_exit, drain=drain, workers=workers,
        )  # fmt: skip
    console.print(kv_table("Consumed", _plain(report)))


def _plain(report: Any) -> dict[str, Any]:
    data: dict[str, Any] = report.to_json()
    return {k: v for k, v in data.items() if not isinstance(v, list | dict) or len(str(v)) < 200}


@app.command("show")
@friendly_errors
def show_cmd(
    departure_id: str = typer.Argument(...),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """One departure: its match band and the explanation behind it."""
    ctx = signed_in(username, password, Purpose.DEPARTURE_VERIFICATION, why)
    data = run_as(ctx, lambda gw: service.departure_json(gw.get(Departure, departure_id)))
    if json_out:
        print_json(data)
        return
    _print_departure(data)


def _print_departure(d: dict[str, Any]) -> None:
    console.print(
        f"[bold]{d['id']}[/] ({d['channel']}, event {d['event_id']}) {d['name']} "
        f"born {d['birth_date'] or '—'}, left {d['occurred_at']} via {d['port'] or '—'}"
    )
    e = d["explanation"] or {}
    console.print(
        f"band [bold]{d['band']}[/] person {d['person_id'] or '—'} "
        f"({e.get('path', '—')}): {e.get('reason', '')}"
    )
    table = Table("comparison", "level", "weight", title="Best pair's comparisons")
    for c in e.get("contributions", []):
        table.add_row(str(c.get("comparison")), str(c.get("level")), str(c.get("weight")))
    if e.get("contributions"):
        console.print(table)
    for p in e.get("persons", []):
        console.print(f"  candidate {p['person_id']} via {p['record_id']}: {p['match_weight']}")


@review_app.command("list")
@friendly_errors
def review_list(
    limit: int = typer.Option(20, "--limit", "-n", min=1),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """Departures waiting for review, oldest first."""
    ctx = signed_in(username, password, Purpose.DEPARTURE_VERIFICATION, why)
    rows = run_as(ctx, service.review_queue, limit)
    if json_out:
        print_json(rows)
        return
    table = Table("departure", "channel", "name", "born", "left", "candidate", "why")
    for r in rows:
        table.add_row(r["id"], r["channel"], r["name"], str(r["birth_date"]),
                      r["occurred_at"][:16], r["person_id"] or "—",
                      str(r["explanation"].get("reason", "")))  # fmt: skip
    console.print(table)


@review_app.command("decide")
@friendly_errors
def review_decide(
    departure_id: str = typer.Argument(...),
    same: bool = typer.Option(
        ..., "--same/--different", help="The candidate person left (or it is someone else)."
    ),
    reason: str = typer.Option(..., "--reason", help="Why (at least 10 characters)."),
    person: str | None = typer.Option(None, "--person", help="Another person than proposed."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
) -> None:
    """Decide a departure in review; the same person's open cases then move (audited)."""
    ctx = signed_in(username, password, Purpose.DEPARTURE_VERIFICATION, why)
    out = run_as(ctx, service.decide_review, departure_id, same, reason, person)
    _print_departure(out["departure"])
    for e in out["effects"]:
        if e.get("applied"):
            console.print(f"[green]{e['case']}[/]: {e['step']}")
        else:
            console.print(f"[yellow]{e['case']}[/]: {e.get('reason')}")


@app.command("dead-letters")
@friendly_errors
def dead_letters_cmd(limit: int = typer.Option(20, "--limit", "-n", min=1)) -> None:
    """Events that could not be read: the reason and the bytes as received."""
    with runtime() as rt, unit_of_work(rt.sessions, _system("dead letters")) as gw:
        rows = service.dead_letters(gw, limit)
    table = Table("received", "transport", "event", "reason")
    for r in rows:
        table.add_row(r["received_at"][:19], r["transport"], r["event_id"] or "—", r["reason"])
    console.print(table)


@app.command("monitor")
@friendly_errors
def monitor_cmd(
    watch: float | None = typer.Option(None, "--watch", help="Refresh every N seconds."),
    json_out: bool = JSON_OUT,
) -> None:
    """Events per minute by channel, matching lag, review queue, verified today."""
    while True:
        with runtime() as rt, unit_of_work(rt.sessions, _system("monitor")) as gw:
            figures = monitor.snapshot(gw)
        if json_out:
            console.print_json(json.dumps(figures))
        else:
            _print_monitor(figures)
        if not watch:
            return
        time.sleep(watch)


def _print_monitor(f: dict[str, Any]) -> None:
    table = Table("channel", "events/min", "total by band", title=f"Departures at {f['at'][:19]}")
    for channel, rate in f["events_per_minute"].items():
        bands = ", ".join(f"{b} {n}" for b, n in f["events_total"][channel].items()) or "—"
        table.add_row(channel, f"{rate:g}", bands)
    console.print(table)
    lag = f["lag_ms"]
    console.print(
        f"lag p50 {lag['p50'] if lag['p50'] is not None else '—'} ms, "
        f"p99 {lag['p99'] if lag['p99'] is not None else '—'} ms; review queue "
        f"{f['review_queue']}; verified today {f['verified_today']}; dead letters "
        f"{f['dead_letters']}"
    )
