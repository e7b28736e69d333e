"""``immos priority``: policies as code, runs, explanations, what-if and worklists.

Every command is a person's (``--as USER``; password prompted or ``IMMOS_PASSWORD``) working
under the ``enforcement-prioritization`` purpose: analysts register and run policies, a
supervisor adopts them (never the person who registered), officers read worklists and may
override a tier with a justification. Nothing here acts on anyone: a lead only lets an officer
open an encounter.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from immigrationos.cli.common import (
    JSON_OUT,
    PASSWORD,
    console,
    friendly_errors,
    parse_date,
    print_json,
    run_as,
    signed_in,
)
from immigrationos.core.clock import utcnow
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.priority import report, service, views, worklists
from immigrationos.priority.catalogue import FEATURES
from immigrationos.priority.models import PriorityPolicy
from immigrationos.priority.policy import load_policy, shipped_policies

app = typer.Typer(
    help="Enforcement priorities: policies, runs, explanations, what-if, worklists.",
    no_args_is_help=True,
)
AS = typer.Option(..., "--as", help="Who is working (username).")
WHY = typer.Option("prioritization", "--why", help="Justification recorded with every read.")
POLICY = typer.Option(None, "--policy", help="NAME or NAME@VERSION (default: the policy in force).")
AS_OF = typer.Option(None, "--as-of", help="Date the features are computed for (default today).")


def _ctx(username: str, password: str | None, why: str) -> AccessContext:
    ctx: AccessContext = signed_in(username, password, Purpose.ENFORCEMENT_PRIORITIZATION, why)
    return ctx


_run = run_as


@app.command("catalogue")
def catalogue_cmd(json_out: bool = JSON_OUT) -> None:
    """The features a policy may name, what feeds each, and what it means."""
    if json_out:
        return print_json([{"name": f.name, "kind": f.kind.value, "group": f.group,
                       "sources": list(f.sources), "collected": f.collected,
                       "protective": f.protective, "description": f.description}
                      for f in FEATURES.values()])  # fmt: skip
    table = Table("feature", "kind", "fed by", "meaning", title="Feature catalogue")
    for f in FEATURES.values():
        fed = ", ".join(f.sources) or ("this system" if f.collected else "[dim]no source[/]")
        table.add_row(f.name, f.kind.value, fed, f.description)
    console.print(table)


@app.command("validate")
@friendly_errors
def validate_cmd(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Check a policy file against the catalogue and the shipped agreements (no store needed)."""
    policy = load_policy(path)
    console.print(f"[green]valid[/]: {policy.key} ({len(policy.rules)} rules, "
                  f"{len(policy.tiers)} tiers)")  # fmt: skip
    for warning in policy.warnings:
        console.print(f"[yellow]note[/]: {warning}")


@app.command("policies")
@friendly_errors
def policies_cmd(username: str = AS, password: str | None = PASSWORD) -> None:
    """Registered policy versions (and the example files shipped with the project)."""
    ctx = _ctx(username, password, "list policies")
    rows = _run(ctx, lambda gw: list(gw.session.query(PriorityPolicy).order_by(PriorityPolicy.id)))
    table = Table("policy", "status", "effective", "registered by", "adopted by", title="Policies")
    for r in rows:
        until = r.effective_until.isoformat() if r.effective_until else "…"
        table.add_row(r.id, r.status, f"{r.effective_from} → {until}", r.registered_by or "system",
                      r.adopted_by or "")  # fmt: skip
    console.print(table)
    console.print("shipped examples: " + ", ".join(str(p) for p in shipped_policies()))


@app.command("register")
@friendly_errors
def register_cmd(
    path: Path = typer.Argument(..., exists=True, dir_okay=False),
    username: str = AS,
    password: str | None = PASSWORD,
) -> None:
    """Register a policy version (validated against the agreements in force)."""
    ctx = _ctx(username, password, f"register policy {path.name}")
    row = _run(ctx, lambda gw: service.register(gw, path.read_text(encoding="utf-8")))
    console.print(f"registered [bold]{row.id}[/] ({row.status}); a supervisor adopts it")


@app.command("adopt")
@friendly_errors
def adopt_cmd(
    policy: str = typer.Argument(..., help="NAME@VERSION"),
    note: str = typer.Option(..., "--note", help="The adoption decision's record."),
    username: str = AS,
    password: str | None = PASSWORD,
) -> None:
    """Put a registered policy version in force (a supervisor; never its registrant)."""
    ctx = _ctx(username, password, f"adopt policy {policy}")
    row = _run(ctx, lambda gw: service.adopt(gw, service.resolve_policy(gw, policy), note))
    console.print(f"[bold]{row.id}[/] is in force")


@app.command("run")
@friendly_errors
def run_cmd(
    policy: str | None = POLICY,
    as_of: str | None = AS_OF,
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
) -> None:
    """Score the whole person index under a policy and store every score with its evidence."""
    ctx = _ctx(username, password, why)

    def go(gw: Gateway) -> Any:
        with console.status("computing features and scoring…"):
            return service.run(gw, service.resolve_policy(gw, policy), parse_date(as_of))

    row = _run(ctx, go)
    console.print(f"run [bold]{row.id}[/]: {row.policy_id} over index {row.index_version} "
                  f"as of {row.as_of}: {row.persons} persons in {row.seconds} s")  # fmt: skip
    table = Table("tier", "persons", title="Tiers")
    for tier, n in sorted(row.counts["tiers"].items()):
        table.add_row(tier, str(n))
    console.print(table)
    console.print(f"actionable leads: {row.counts['actionable']}; leads with a legal block: "
                  f"{row.counts['blocked_leads']}")  # fmt: skip
    for name, reason in row.unavailable.items():
        console.print(f"[yellow]unavailable[/] {name}: {reason}")


@app.command("explain")
@friendly_errors
def explain_cmd(
    person_id: str = typer.Argument(...),
    policy: str | None = POLICY,
    as_of: str | None = AS_OF,
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """A person's tier and score, every rule and its evidence, and whether action is possible."""
    ctx = _ctx(username, password, why)
    data = _run(ctx, views.explain, person_id, policy, parse_date(as_of))
    if json_out:
        return print_json(data)
    _print_explanation(data)


def _print_explanation(d: dict[str, Any]) -> None:
    p, t = d["person"], d["tier"]
    console.print(f"[bold]{p['name']}[/] ({p['id']}), office {p['office'] or '—'}")
    console.print(f"{d['policy']['id']} as of {d['as_of']}: tier [bold]{t['id']}[/] "
                  f"({t['label']}), score {d['score']:g}")  # fmt: skip
    table = Table("rule", "kind", "weight", "condition", "evidence", title="Rules that fired")
    for r in d["rules"]:
        ev = "; ".join(f"{e['t']} {e['id']} ({e['src']}, {e['d']})" for e in r["evidence"])
        table.add_row(r["label"], r["kind"], f"{r['weight']:+g}", r["condition"], ev or "—")
    console.print(table)
    for name, reason in d["unavailable"].items():
        console.print(f"[yellow]unavailable[/] {name}: {reason}")
    action = d["action"]
    if action["possible"]:
        console.print("[green]no legal block found now[/]")
    for b in action["blocks"]:
        console.print(f"[red]blocked[/] ({b['guard']}): {b['message']}")
    if d["override"]:
        o = d["override"]
        console.print(f"override: {o['from']} → {o['to']} by {o['by']}: {o['justification']}")
    console.print(f"[dim]{d['note']}[/]")


@app.command("compare")
@friendly_errors
def compare_cmd(
    policy_a: str = typer.Argument(..., help="Baseline: NAME or NAME@VERSION."),
    policy_b: str = typer.Argument(..., help="Alternative: NAME or NAME@VERSION."),
    as_of: str | None = AS_OF,
    out: Path = typer.Option(Path("priority-compare.html"), "--out", help="HTML report path."),
    limit: int = typer.Option(50, "--limit", min=0, max=10_000, help="Changed persons listed."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """What-if: both policies over the same index and date; writes an HTML report with charts."""
    ctx = _ctx(username, password, why)

    def go(gw: Gateway) -> Any:
        runs = [_run_for(gw, ref, parse_date(as_of)) for ref in (policy_a, policy_b)]
        return views.compare(gw, runs[0], runs[1], limit)

    data = _run(ctx, go)
    out.write_text(report.render_comparison_html(data), encoding="utf-8")
    if json_out:
        return print_json(data)
    console.print(f"{data['changed_total']} of {data['persons']} persons change tier; "
                  f"report: {out}")  # fmt: skip


def _run_for(gw: Gateway, ref: str, as_of: date | None) -> str:
    """A run of the policy over the current index on the date, made now if there is none."""
    policy_id = service.resolve_policy(gw, ref)
    on = as_of or utcnow().date()
    run = views.latest_run(gw, policy_id)
    fresh = run is not None and run.index_version == service.index_version(gw) and run.as_of == on
    return run.id if fresh and run else service.run(gw, policy_id, on).id


@app.command("worklist")
@friendly_errors
def worklist_cmd(
    office: str | None = typer.Option(None, "--office", help="Only this office's leads."),
    officer: str | None = typer.Option(None, "--officer", help="This officer's worklist."),
    tier: str | None = typer.Option(None, "--tier", help="Only this tier."),
    actionable: bool | None = typer.Option(None, "--actionable/--blocked", help="Filter."),
    page: int = typer.Option(1, "--page", min=1),
    size: int = typer.Option(25, "--size", min=1, max=200),
    policy: str | None = POLICY,
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """Leads of the policy in force, actionable first; blocked leads say why."""
    ctx = _ctx(username, password, why)
    data = _run(ctx, worklists.worklist, office=office, officer=officer, tier=tier,
                actionable=actionable, page=page, size=size, policy_ref=policy)  # fmt: skip
    if json_out:
        return print_json(data)
    title = f"Worklist {data['policy']} ({data['office'] or 'all offices'}), page {page}"
    table = Table("person", "name", "tier", "score", "rules", "action now", title=title)
    for i in data["items"]:
        now = (
            "[green]actionable[/]"
            if i["actionable"]
            else "[red]blocked[/]: " + "; ".join(b["message"] for b in i["blocks"])
        )
        tier_text = i["tier"] + (" (override)" if i["override"] else "")
        table.add_row(i["person_id"], i["name"], tier_text, f"{i['score']:g}",
                      ", ".join(r["id"] for r in i["rules"]), now)  # fmt: skip
    console.print(table)
    console.print(f"{data['total']} leads; [dim]{data['note']}[/]")


@app.command("override")
@friendly_errors
def override_cmd(
    person_id: str = typer.Argument(...),
    tier: str = typer.Option(..., "--tier", help="The tier to place the person in."),
    why: str = typer.Option(..., "--why", help="Justification (kept, audited, counted)."),
    policy: str | None = typer.Option(None, "--policy", help="Policy NAME (default: in force)."),
    username: str = AS,
    password: str | None = PASSWORD,
) -> None:
    """Raise or lower a person's tier under the policy in force, with a justification."""
    ctx = _ctx(username, password, f"override: {why}")
    row = _run(ctx, service.override, person_id, tier, why, policy)
    console.print(f"override [bold]{row.id}[/]: {row.from_tier} → {row.to_tier} ({row.direction})")
