"""``immos cases``, ``immos lifecycle``, ``immos removal`` and ``immos operations``.

Every case action is a person's: ``--as USER`` names them (password prompted, or
``IMMOS_PASSWORD``), the purpose is ``case-processing``, and the engine checks the role, the
guards and the two-person rule. The scheduler (``immos lifecycle tick``) runs as the system
account.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from immigrationos.cli.common import (
    JSON_OUT,
    PASSWORD,
    console,
    friendly_errors,
    kv_table,
    run_as,
    runtime,
    signed_in,
)
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import diagram, logistics, operations, scheduler, service, views
from immigrationos.lifecycle.models import Document
from immigrationos.lifecycle.table import load_table

app = typer.Typer(
    help="Cases: open, see what can happen next, act, request, approve.", no_args_is_help=True
)
lifecycle_app = typer.Typer(
    help="The lifecycle table, its diagram and the scheduler.", no_args_is_help=True
)
removal_app = typer.Typer(
    help="Removal logistics: flights, manifests, departure.", no_args_is_help=True
)
operations_app = typer.Typer(
    help="Enforcement operations (grouped, two-person).", no_args_is_help=True
)
AS = typer.Option(..., "--as", help="Who is acting (username); every step is theirs.")
WHY = typer.Option(..., "--why", help="Justification, kept with the request or decision.")
PARAM = typer.Option(
    None,
    "--param",
    "-p",
    help="A step parameter as NAME=VALUE; repeat a list parameter's name for each item.",
)
DOCS = Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md"


def _as(username: str, password: str | None, why: str) -> AccessContext:
    ctx: AccessContext = signed_in(username, password, Purpose.CASE_PROCESSING, why)
    return ctx


_run = run_as


def parse_params(action: str, pairs: list[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as the step's parameters (list parameters collect repeats)."""
    spec = load_table().transition(action).params
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValidationFailed(f"--param {pair!r}: write NAME=VALUE")
        if name not in spec:
            raise ValidationFailed(f"{action} has no parameter {name!r} (has: {', '.join(spec)})")
        if spec[name].type == "list":
            out.setdefault(name, []).append(value)
        elif spec[name].type == "bool":
            out[name] = value.lower() in ("1", "true", "yes", "y")
        else:
            out[name] = value
    return out


def _print(data: Any, json_out: bool) -> None:
    if json_out:
        console.print_json(json.dumps(data, default=str))
    else:
        console.print(data)


# -- cases ------------------------------------------------------------------------------------


@app.command("open")
@friendly_errors
def open_cmd(
    person_id: str = typer.Argument(..., help="The person's id in the person index."),
    office: str = typer.Option(..., "--office", help="The field office working the case."),
    reason: str = typer.Option(..., "--reason", help="The lead: why the case is opened."),
    username: str = AS,
    password: str | None = PASSWORD,
) -> None:
    """Open a case (state LEAD) for a person: a lead has no enforcement effect by itself."""
    ctx = _as(username, password, f"open case: {reason}")
    case = _run(ctx, lambda gw: service.open_case(gw, person_id, office=office, reason=reason))
    console.print(f"opened [bold]{case.id}[/] in {case.state}")


@app.command("list")
@friendly_errors
def list_cmd(
    state: str = typer.Option(None, "--state", help="Only cases in this state."),
    office: str = typer.Option(None, "--office", help="Only this office's cases."),
    person: str = typer.Option(None, "--person", help="Only this person's cases."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """List cases, newest first."""
    ctx = _as(username, password, "list cases")
    rows = _run(ctx, views.list_cases, state=state, office=office, person_id=person, limit=limit)
    if json_out:
        return _print(rows, True)
    table = Table("case", "person", "state", "custody", "office", "opened", title="Cases")
    for r in rows:
        table.add_row(
            r["id"],
            r["person_id"],
            r["state"],
            r["custody"],
            r["office"] or "",
            r["opened_at"][:10],
        )
    console.print(table)


@app.command("show")
@friendly_errors
def show_cmd(
    case_id: str,
    all_options: bool = typer.Option(
        False, "--all", help="Also list steps that cannot start here."
    ),
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """A case: state, custody, conditions, deadlines, events, documents, what can happen next."""
    ctx = _as(username, password, f"show case {case_id}")
    page = _run(ctx, views.case_page, case_id, all_options=all_options)
    if json_out:
        return _print(page, True)
    console.print(kv_table(f"Case {case_id}", page["case"] | {"person": page["person"]["name"]}))
    events = Table("#", "at", "step", "from", "to", title="Events")
    for e in page["events"]:
        events.add_row(
            str(e["seq"]),
            e["at"][:16],
            e["action"] or e["kind"],
            e["from_state"] or "",
            e["to_state"] or "",
        )
    console.print(events)
    nxt = Table("step", "to", "allowed", "approval", "blocked by", title="What can happen next")
    for o in page["next"]:
        blocks = "; ".join(f"{b['guard']}: {b['message']}" for b in o["blocked_by"])
        nxt.add_row(
            o["transition"],
            o["to_state"],
            "yes" if o["allowed"] else "no",
            ", ".join(o["approvers"]) or "",
            blocks,
        )
    console.print(nxt)


@app.command("do")
@friendly_errors
def do_cmd(
    case_id: str,
    action: str,
    params: list[str] = PARAM,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Take a step that needs no approval (record an encounter, a court event, …)."""
    values = parse_params(action, params)
    ctx = _as(username, password, f"{action} on {case_id}")
    result = _run(ctx, service.perform, case_id, action, values)
    _print(result.as_dict(), json_out)


@app.command("request")
@friendly_errors
def request_cmd(
    case_id: str,
    action: str,
    params: list[str] = PARAM,
    why: str = WHY,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Request an action that a second person must approve (documents drafted now)."""
    values = parse_params(action, params)
    ctx = _as(username, password, why)
    req = _run(ctx, service.request_action, case_id, action, values, why)
    _print(views.request_dict(req), json_out)


def _decide(
    request_id: str, approve: bool, why: str, username: str, password: str | None, json_out: bool
) -> None:
    ctx = _as(username, password, why)
    approval = _run(ctx, service.decide, request_id, approve, why)
    _print(
        {
            "request": request_id,
            "decision": approval.decision,
            "expires_at": str(approval.expires_at),
        },
        json_out,
    )


@app.command("approve")
@friendly_errors
def approve_cmd(
    request_id: str,
    why: str = WHY,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Approve someone else's request (guards re-checked now; documents finalised)."""
    _decide(request_id, True, why, username, password, json_out)


@app.command("refuse")
@friendly_errors
def refuse_cmd(
    request_id: str,
    why: str = WHY,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Refuse a request."""
    _decide(request_id, False, why, username, password, json_out)


@app.command("execute")
@friendly_errors
def execute_cmd(
    request_id: str, username: str = AS, password: str | None = PASSWORD, json_out: bool = JSON_OUT
) -> None:
    """Carry out an approved request (approval still valid, guards re-checked now)."""
    ctx = _as(username, password, f"execute {request_id}")
    _print(_run(ctx, service.execute, request_id).as_dict(), json_out)


@app.command("requests")
@friendly_errors
def requests_cmd(
    office: str = typer.Option(None, "--office"),
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Requests waiting for a decision, oldest first."""
    ctx = _as(username, password, "approval queue")
    rows = _run(ctx, views.pending_requests, office)
    if json_out:
        return _print(rows, True)
    table = Table("request", "case", "action", "requested", "by", title="Waiting for a decision")
    for r in rows:
        table.add_row(r["id"], r["case_id"], r["action"], r["requested_at"][:16], r["requested_by"])
    console.print(table)


@app.command("document")
@friendly_errors
def document_cmd(
    document_id: str,
    out: Path = typer.Option(..., "--out", help="Where to write it (.pdf or .html)."),
    username: str = AS,
    password: str | None = PASSWORD,
) -> None:
    """Write a stored document version (PDF, or HTML when --out ends in .html)."""
    ctx = _as(username, password, f"read document {document_id}")

    def fetch(gw: Gateway) -> tuple[bytes, str]:
        doc = gw.get(Document, document_id)
        if out.suffix == ".html" or doc.pdf is None:
            return doc.html.encode(), doc.content_sha256
        return bytes(doc.pdf), doc.content_sha256

    data, digest = _run(ctx, fetch)
    out.write_bytes(data)
    console.print(f"wrote {out} ({len(data)} bytes; stored sha256 {digest[:16]}…)")


@app.command("overdue")
@friendly_errors
def overdue_cmd(
    office: str = typer.Option(None, "--office"),
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Deadlines past due that need a person, by office."""
    ctx = _as(username, password, "overdue list")
    rows = _run(ctx, lambda gw: scheduler.overdue(gw, office=office))
    if json_out:
        return _print(rows, True)
    table = Table("office", "case", "state", "deadline", "due", "hours over", title="Overdue")
    for r in rows:
        table.add_row(
            r["office"] or "",
            r["case_id"],
            r["state"],
            r["label"],
            r["due_at"][:16],
            str(r["overdue_hours"]),
        )
    console.print(table)


# -- lifecycle --------------------------------------------------------------------------------


@lifecycle_app.command("tick")
@friendly_errors
def tick_cmd(
    at: str = typer.Option(
        None, "--at", help="Apply deadlines due by this ISO moment (default now)."
    ),
    json_out: bool = JSON_OUT,
) -> None:
    """Apply due deadlines exactly once (safe to run concurrently) and expire stale requests."""
    moment = datetime.fromisoformat(at) if at else None
    if moment is not None and moment.tzinfo is None:
        raise ValidationFailed("--at needs a time zone (e.g. 2026-11-22T12:00:00+00:00)")
    with runtime() as rt:
        report = scheduler.tick(rt.sessions, moment)
    _print(report.as_dict(), json_out)


@lifecycle_app.command("diagram")
@friendly_errors
def diagram_cmd(
    write: bool = typer.Option(False, "--write", help=f"Rewrite the block in {DOCS.name}."),
) -> None:
    """Print the state diagram (Mermaid) generated from the lifecycle table."""
    if write:
        changed = diagram.write(DOCS)
        console.print(f"{DOCS} {'updated' if changed else 'already current'}")
    else:
        console.print(diagram.mermaid(), markup=False)


@lifecycle_app.command("table")
@friendly_errors
def table_cmd(json_out: bool = JSON_OUT) -> None:
    """Every transition of the table: from, to, who, approval, documents, guards."""
    table = load_table()
    rows: list[dict[str, Any]] = [
        {
            "transition": t.name,
            "kind": t.kind,
            "from": table.sources(t) if t.from_ != "*open" else ["*open"],
            "to": t.to,
            "by": [r.value for r in t.by],
            "approval": [r.value for r in t.approval.approvers] if t.approval else [],
            "documents": list(t.documents),
            "guards": list(table.expand(t.guards)),
        }
        for t in table.transitions.values()
    ]
    if json_out:
        return _print(rows, True)
    out = Table(
        "transition",
        "kind",
        "to",
        "by",
        "approval",
        "documents",
        title=f"Lifecycle {table.version}",
    )
    for r in rows:
        cells = [r[k] for k in ("transition", "kind", "to", "by", "approval", "documents")]
        out.add_row(*(v if isinstance(v, str) else ",".join(v or []) for v in cells))
    console.print(out)


# -- removal logistics ------------------------------------------------------------------------


@removal_app.command("flight")
@friendly_errors
def flight_cmd(
    destination: str = typer.Option(..., "--destination", help="Country code (ISO 3166 alpha-3)."),
    departs_at: str = typer.Option(..., "--departs-at", help="ISO moment with time zone."),
    capacity: int = typer.Option(..., "--capacity", min=1),
    kind: str = typer.Option("charter", "--kind", help="charter or commercial."),
    carrier: str = typer.Option("Synthetic Air", "--carrier"),
    flight_no: str = typer.Option(..., "--flight-no"),
    origin: str = typer.Option(..., "--origin", help="Departure airport or port."),
    username: str = AS,
    password: str | None = PASSWORD,
) -> None:
    """Plan a removal flight."""
    ctx = _as(username, password, "plan a removal flight")
    moment = datetime.fromisoformat(departs_at)
    f = _run(
        ctx,
        lambda gw: logistics.create_flight(
            gw,
            kind=kind,
            carrier=carrier,
            flight_no=flight_no,
            origin=origin,
            destination=destination,
            departs_at=moment,
            capacity=capacity,
        ),
    )
    console.print(f"planned [bold]{f.id}[/] to {f.destination} on {f.departs_at:%Y-%m-%d %H:%M}")


@removal_app.command("flights")
@friendly_errors
def flights_cmd(
    username: str = AS, password: str | None = PASSWORD, json_out: bool = JSON_OUT
) -> None:
    """Removal flights."""
    ctx = _as(username, password, "list removal flights")
    rows = _run(
        ctx,
        lambda gw: [
            {
                "id": f.id,
                "kind": f.kind,
                "flight_no": f.flight_no,
                "destination": f.destination,
                "departs_at": f.departs_at.isoformat(),
                "capacity": f.capacity,
                "status": f.status,
            }
            for f in logistics.list_flights(gw)
        ],
    )
    _print(rows, json_out)


@removal_app.command("manifest")
@friendly_errors
def manifest_cmd(
    flight_id: str, username: str = AS, password: str | None = PASSWORD, json_out: bool = JSON_OUT
) -> None:
    """The manifest with every passenger re-checked now."""
    ctx = _as(username, password, f"manifest of {flight_id}")
    lines = _run(ctx, lambda gw: [line.as_dict() for line in logistics.manifest(gw, flight_id)])
    if json_out:
        return _print(lines, True)
    table = Table("case", "name", "cleared", "blocked by", title=f"Manifest {flight_id}")
    for line in lines:
        blocks = "; ".join(f"{b['guard']}: {b['message']}" for b in line["blocked_by"])
        table.add_row(line["case_id"], line["name"], "yes" if line["cleared"] else "NO", blocks)
    console.print(table)


@removal_app.command("depart")
@friendly_errors
def depart_cmd(flight_id: str, json_out: bool = JSON_OUT) -> None:
    """Record the flight's departure (the system, on the carrier's confirmation): passengers
    re-checked, failures taken off, the rest handed to departure verification."""
    ctx = system_context(Purpose.CASE_PROCESSING, f"removal flight {flight_id} departed")
    _print(_run(ctx, logistics.depart, flight_id), json_out)


# -- operations -------------------------------------------------------------------------------


@operations_app.command("create")
@friendly_errors
def op_create_cmd(
    name: str = typer.Option(..., "--name"),
    office: str = typer.Option(None, "--office"),
    planned_for: str = typer.Option(..., "--planned-for", help="ISO moment with time zone."),
    targets: Path = typer.Option(..., "--targets", help="JSON file: [{case_id, action, params}]"),
    why: str = WHY,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Plan an operation: one request per target, each guard-checked now."""
    items = json.loads(targets.read_text(encoding="utf-8"))
    ctx = _as(username, password, why)
    moment = datetime.fromisoformat(planned_for)
    op, refused = _run(
        ctx,
        lambda gw: operations.create(
            gw,
            name=name,
            office=office,
            planned_for=moment,
            justification=why,
            targets=items,
        ),
    )
    _print({"operation": op.id, "status": op.status, "refused": refused}, json_out)


@operations_app.command("approve")
@friendly_errors
def op_approve_cmd(
    operation_id: str,
    why: str = WHY,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Approve an operation; each target re-checked, blocked ones drop out."""
    ctx = _as(username, password, why)
    _print({"dropped": _run(ctx, operations.decide, operation_id, True, why)}, json_out)


@operations_app.command("refuse")
@friendly_errors
def op_refuse_cmd(
    operation_id: str,
    why: str = WHY,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Refuse an operation."""
    ctx = _as(username, password, why)
    _print({"dropped": _run(ctx, operations.decide, operation_id, False, why)}, json_out)


@operations_app.command("execute")
@friendly_errors
def op_execute_cmd(
    operation_id: str,
    username: str = AS,
    password: str | None = PASSWORD,
    json_out: bool = JSON_OUT,
) -> None:
    """Carry out an approved operation; each target re-checked now."""
    ctx = _as(username, password, f"execute operation {operation_id}")
    _print(_run(ctx, operations.execute, operation_id), json_out)
