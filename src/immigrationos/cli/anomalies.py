"""``immos anomalies``: detect access anomalies and review the alerts (auditors).

``simulate`` writes synthetic staff activity with planted misuse (demo), ``scan`` runs the
detector over a window, ``list`` and ``review`` are the auditors' queue, and ``evaluate``
scores the alerts against the simulation's ground truth. Scans and lists run as the system
under ``oversight-audit`` (like ``immos audit verify``); a review is a person's decision, made
as an auditor (``--as``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from immigrationos.cli.common import (
    JSON_OUT,
    PASSWORD,
    console,
    friendly_errors,
    print_json,
    progress_bar,
    runtime,
    signed_in,
)
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.store.engine import transaction

app = typer.Typer(
    help="Detect unusual access to personal data; review the alerts.", no_args_is_help=True
)


def _moment(text: str | None, option: str) -> datetime | None:
    """A date (midnight UTC) or an ISO date-time (UTC if no zone) given on the command line."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r} is not a date or date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _system() -> AccessContext:
    return system_context(Purpose.OVERSIGHT_AUDIT, "immos anomalies (command line)")


@app.command("simulate")
@friendly_errors
def simulate_cmd(
    days: int = typer.Option(14, "--days", min=1, max=120, help="Days of activity to write."),
    seed: int = typer.Option(7, "--seed", help="Same seed, same activity and plants."),
    officers: int = typer.Option(
        3, "--officers", min=0, help="Synthetic officers per office beside the demo's."
    ),
    plant: bool = typer.Option(True, "--plant/--no-plant", help="Plant the four misuses."),
    force: bool = typer.Option(False, "--force", help="Write even outside demo mode."),
    truth: Path | None = typer.Option(
        None, "--truth", help="Where to write the ground truth (default: beside the database)."
    ),
) -> None:
    """Write synthetic staff activity, with planted misuse, into the loaded world.

    Every read goes through the audited gateway at simulated times over the last DAYS days, so
    the audit log gains genuine, synthetic entries (the range is recorded by an
    `anomaly.activity_simulated` entry). Demo mode only, unless --force.
    """
    from immigrationos.oversight import activity

    console.print(
        f"[yellow]Writing {days} days of synthetic staff activity into the audit log "
        "(synthetic accounts and reads; demo data, not real use).[/]"
    )
    config = activity.SimulationConfig(days=days, seed=seed, officers=officers, plant=plant)
    with runtime() as rt, progress_bar() as bar:
        task = bar.add_task("simulate activity", total=None)
        found = activity.simulate(rt, config, force=force, progress=lambda n: bar.advance(task, n))
        path = found.save(truth or activity.truth_path(rt))
    console.print(
        f"{len(found.users)} users, days {found.first_day} to {found.last_day}, audit entries "
        f"{found.first_seq}..{found.last_seq}; ground truth in {path}"
    )
    table = Table("user", "planted misuse", "rule that should flag it", "days")
    for p in found.planted:
        table.add_row(p.username, p.description, p.rule, ", ".join(p.days))
    console.print(table)


@app.command("scan")
@friendly_errors
def scan_cmd(
    since: str | None = typer.Option(None, "--since", help="Start (date or date-time, UTC)."),
    until: str | None = typer.Option(None, "--until", help="End (default: now)."),
    as_json: bool = JSON_OUT,
) -> None:
    """Run the detector over a window (default: the last 14 days) and store new alerts.

    Only whole local days inside the window are judged; scanning a window again raises
    nothing new. The scan and each alert are audited.
    """
    from immigrationos.oversight import anomalies

    ctx = _system()
    with runtime() as rt, transaction(rt.sessions) as session:
        report = anomalies.scan(session, ctx, _moment(since, "--since"), _moment(until, "--until"))
    if as_json:
        print_json(report.as_dict())
        return
    console.print(
        f"scanned {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC "
        f"({report.user_days} user-days): {len(report.raised)} new alert(s), "
        f"{len(report.existing)} already on file (`immos anomalies list`)"
    )


@app.command("list")
@friendly_errors
def list_cmd(
    status: str | None = typer.Option(None, "--status", help="open, confirmed or dismissed."),
    rule: str | None = typer.Option(None, "--rule", help="Only this rule."),
    user: str | None = typer.Option(None, "--user", help="Only alerts about this username."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = JSON_OUT,
) -> None:
    """Alerts, newest day first: rule, user, day, measured value against its threshold."""
    from immigrationos.oversight import anomalies

    with runtime() as rt, transaction(rt.sessions) as session:
        total, alerts = anomalies.list_alerts(
            session, status=status, rule=rule, user=user, limit=limit
        )
        rows = [anomalies.alert_dict(a) for a in alerts]
    if as_json:
        print_json({"total": total, "alerts": rows})
        return
    table = Table("alert", "rule", "user", "day", "measured", "threshold", "status",
                  title=f"Access alerts ({total})")  # fmt: skip
    for a in rows:
        table.add_row(a["id"], a["rule"], a["username"], a["day"], f"{a['measured']:g}",
                      f"{a['threshold']:.0f}", a["status"])  # fmt: skip
    console.print(table)


@app.command("review")
@friendly_errors
def review_cmd(
    alert_id: str = typer.Argument(..., help="The alert (from `immos anomalies list`)."),
    decision: str = typer.Option(..., "--decision", help="confirmed or dismissed."),
    note: str = typer.Option(..., "--note", help="Why (kept with the decision)."),
    username: str = typer.Option(..., "--as", help="The reviewing auditor (username)."),
    password: str | None = PASSWORD,
) -> None:
    """Confirm or dismiss an alert with a note, as an auditor (audited)."""
    from immigrationos.oversight import anomalies

    ctx = signed_in(username, password, Purpose.OVERSIGHT_AUDIT, "review of an access alert")
    with runtime() as rt, transaction(rt.sessions) as session:
        alert = anomalies.review(session, ctx, alert_id, decision, note)
        console.print(f"alert {alert.id} ({alert.rule}, {alert.username}): {alert.status}")


@app.command("evaluate")
@friendly_errors
def evaluate_cmd(
    truth: Path | None = typer.Option(None, "--truth", help="Ground truth of `simulate`."),
    as_json: bool = JSON_OUT,
) -> None:
    """Score the alerts against the simulation's ground truth: recall, false positive rate
    over clean users, and precision, per rule."""
    from immigrationos.oversight import activity

    with runtime() as rt, transaction(rt.sessions) as session:
        found = activity.GroundTruth.load(truth or activity.truth_path(rt))
        result = activity.evaluate(session, found)
    if as_json:
        print_json(result.as_dict())
        return
    table = Table("rule", "planted", "detected", "recall", "clean users", "clean flagged",
                  "FPR", "alerts", "precision", title="Against the ground truth")  # fmt: skip
    for r in result.rules:
        table.add_row(r.rule, str(r.planted), str(r.detected), _pct(r.recall),
                      str(r.clean_users), str(r.clean_flagged), _pct(r.false_positive_rate),
                      str(r.alerts), _pct(r.precision))  # fmt: skip
    console.print(table)
    console.print(
        f"overall: recall {_pct(result.recall)}; clean users flagged "
        f"{len(result.clean_flagged)} of {result.clean_users} "
        f"(FPR {_pct(result.false_positive_rate)})"
    )
    for user, rule in result.missed:
        console.print(f"[red]missed:[/] {user} ({rule})")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"
