"""Access-anomaly detection: who reads personal data outside their caseload, at unusual volume
or hours, or keeps hitting purpose refusals. Alerts go to auditors; raising and reviewing them
is audited.

The detector reads the audit log, never the personal data the log is about. Every rule is
evaluated per user per local working day (the user's office time zone, from
``anomaly_rules.yaml``), so a window is fixed by the calendar, not by when or over which range
someone scans: an alert's id is derived from its rule, user and day, and scanning the same
window again raises nothing new.

The detector is split by job:

- :mod:`~immigrationos.oversight.anomaly_rules`: the rules file, typed and validated at load.
- :mod:`~immigrationos.oversight.anomaly_plans`: the two SQL plans (activity per user per UTC
  hour; reads outside the reader's caseload and office).
- :mod:`~immigrationos.oversight.anomaly_findings`: the roll-up of hourly rows to local
  user-days, and the rules applied to each day (pure, in memory).
- this module: :func:`plan` (run the plans, judge the days), :func:`scan` (store the new
  alerts, audited), and the auditors' work on alerts (listing, review).

The caseload plan joins the audit log with ``cases`` and ``priority_scores``, which are personal
data, so :func:`plan` runs it through the gateway (as the system, under ``oversight-audit``; the
auditor's role reads no personal data) and it is itself audited. Person ids stay in memory to
count distinct persons; an alert keeps counts and audit sequence numbers only.

A flag is a question for an auditor, never a finding about anyone: an alert has no effect
until a person reviews it, and the review is on the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.audit.chain import emit
from immigrationos.audit.events import AccessAlertRaised, AccessAlertReviewed, AnomalyScanRan
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import AccessRefused, NotFound, ValidationFailed
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.oversight.anomaly_findings import Days, Finding, UserDay, judge
from immigrationos.oversight.anomaly_plans import activity_query, outside_query
from immigrationos.oversight.anomaly_rules import RULE_NAMES, Rules, load_rules
from immigrationos.oversight.models import AccessAlert

DECISIONS = ("confirmed", "dismissed")
STATUSES = ("open", *DECISIONS)


# --- planning and scanning ----------------------------------------------------------------


@dataclass
class ScanPlan:
    """What a scan found, before anything is written: the user-days and the findings."""

    since: datetime
    until: datetime
    rules: Rules
    days: dict[tuple[str, date], UserDay]
    findings: list[Finding]


def _caseload_gateway(session: Session, ctx: AccessContext) -> Gateway:
    """The gateway that reads caseloads: the caller's own when their role reads personal data,
    else the system's under ``oversight-audit``, naming the caller in the justification."""
    if ctx.actor.role is Role.SYSTEM and ctx.purpose is Purpose.OVERSIGHT_AUDIT:
        return Gateway(session, ctx)
    why = f"access-anomaly scan asked by {ctx.actor.username}"
    return Gateway(session, system_context(Purpose.OVERSIGHT_AUDIT, why))


def plan(
    session: Session,
    ctx: AccessContext,
    since: datetime,
    until: datetime,
    rules: Rules | None = None,
) -> ScanPlan:
    """Read the log over ``[since, until)`` (and the volume baseline before it) and apply the
    rules to every complete local day in the window. Writes nothing but the audit entry of the
    caseload read."""
    rules = rules or load_rules()
    if until <= since:
        raise ValidationFailed("the scan window must end after it starts")
    dialect = session.get_bind().dialect.name
    lookback = since - timedelta(days=rules.rules.unusual_volume.baseline_days + 1)
    built = Days(rules.working_hours)
    for row in session.execute(activity_query(rules, dialect, lookback, until)):
        built.add(row)
    zones = {d.user_id: d.zone for d in built.days.values()}
    if rules.roles_of("outside_caseload"):
        gw = _caseload_gateway(session, ctx)
        params = {
            "anomaly_scan": "outside caseload",
            "since": since.isoformat(),
            "until": until.isoformat(),
        }
        for row in gw.rows(
            outside_query(rules, dialect, since, until), EnforcementCase, params=params
        ):
            built.add_outside(row, zones)
    in_window = [d for d in built.days.values() if _inside(d, since, until)]
    findings = [f for d in sorted(in_window, key=_order) for f in judge(d, built.days, rules)]
    return ScanPlan(since, until, rules, built.days, findings)


def _inside(day: UserDay, since: datetime, until: datetime) -> bool:
    start, end = day.window()
    return start >= since and end <= until


def _order(day: UserDay) -> tuple[date, str]:
    return day.day, day.username


def _evidence_seqs(session: Session, finding: Finding, limit: int) -> tuple[list[int], int]:
    """The audit sequence numbers behind a finding (at most ``limit``) and how many in all."""
    if finding.seqs:
        return list(finding.seqs[:limit]), len(finding.seqs)
    if not finding.seqs_where:
        start, end = finding.day.window()
        where: tuple[ColumnElement[bool], ...] = (
            AuditEntry.actor_id == finding.day.user_id,
            AuditEntry.at >= start,
            AuditEntry.at < end,
        )
    else:
        where = finding.seqs_where
    seqs = list(
        session.scalars(select(AuditEntry.seq).where(*where).order_by(AuditEntry.seq).limit(limit))
    )
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    return [int(s) for s in seqs], int(total)


@dataclass(frozen=True)
class ScanReport:
    """What a scan did: the window, the alerts raised and those already on file."""

    since: datetime
    until: datetime
    raised: list[str]
    existing: list[str]
    user_days: int
    rules_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "raised": self.raised,
            "existing": self.existing,
            "user_days": self.user_days,
            "rules_sha256": self.rules_sha256,
        }


def default_window(
    rules: Rules | None = None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The window a scan reads when none is given: the last ``default_scan_days`` days."""
    rules = rules or load_rules()
    until = now or utcnow()
    return until - timedelta(days=rules.default_scan_days), until


def scan(
    session: Session,
    ctx: AccessContext,
    since: datetime | None = None,
    until: datetime | None = None,
    rules: Rules | None = None,
) -> ScanReport:
    """Plan, then store the new alerts; each raised alert and the scan are audited as ``ctx``.

    Idempotent: an alert already on file for the same rule, user and day is left as it is
    (with its review), whatever window the scan covers."""
    _require_oversight(ctx)
    rules = rules or load_rules()
    default_since, default_until = default_window(rules)
    since, until = since or default_since, until or default_until
    planned = plan(session, ctx, since, until, rules)
    ids = [f.id for f in planned.findings]
    on_file = (
        set(session.scalars(select(AccessAlert.id).where(AccessAlert.id.in_(ids))))
        if ids
        else set()
    )
    raised: list[str] = []
    for finding in planned.findings:
        if finding.id in on_file or finding.id in raised:
            continue
        alert = _alert(session, finding, rules, ctx)
        session.add(alert)
        session.flush()
        emit(
            session,
            AccessAlertRaised(
                object_type="access_alerts",
                object_ids=[alert.id],
                rule=alert.rule,
                user_id=alert.user_id,
                day=alert.day,
                measured=alert.measured,
                threshold=alert.threshold,
            ),
            ctx,
        )
        raised.append(alert.id)
    existing = sorted(on_file)
    emit(
        session,
        AnomalyScanRan(
            object_type="access_alerts",
            object_ids=raised,
            since=since.isoformat(),
            until=until.isoformat(),
            rules_sha256=rules.sha256,
            raised=len(raised),
            existing=len(existing),
        ),
        ctx,
    )
    return ScanReport(since, until, raised, existing, len(planned.days), rules.sha256)


def _alert(session: Session, finding: Finding, rules: Rules, ctx: AccessContext) -> AccessAlert:
    seqs, total = _evidence_seqs(session, finding, rules.evidence_seqs)
    day = finding.day
    start, end = day.window()
    return AccessAlert(
        id=finding.id,
        rule=finding.rule,
        user_id=day.user_id,
        username=day.username,
        role=day.role,
        office=day.office,
        day=day.day.isoformat(),
        timezone=day.zone,
        window_start=start,
        window_end=end,
        measured=float(finding.measured),
        baseline=finding.baseline,
        threshold=float(finding.threshold),
        summary=finding.summary,
        evidence={"audit_seqs": seqs, "audit_entries": total, "counts": finding.counts},
        rules_sha256=rules.sha256,
        status="open",
        raised_at=utcnow(),
        raised_by=ctx.actor.user_id,
    )


# --- auditors' work on alerts -------------------------------------------------------------


def _require_oversight(ctx: AccessContext) -> None:
    if ctx.purpose is not Purpose.OVERSIGHT_AUDIT or ctx.actor.role not in (
        Role.AUDITOR,
        Role.SYSTEM,
    ):
        raise AccessRefused(
            "access alerts are for auditors working under purpose 'oversight-audit' "
            f"({ctx.actor.username} is {ctx.actor.role.value} under {ctx.purpose.value!r})"
        )


def list_alerts(
    session: Session,
    *,
    status: str | None = None,
    rule: str | None = None,
    user: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[AccessAlert]]:
    """Alerts, newest day first, with filters; and how many match in all."""
    if status and status not in STATUSES:
        raise ValidationFailed(f"status is one of {', '.join(STATUSES)}")
    if rule and rule not in RULE_NAMES:
        raise ValidationFailed(f"rule is one of {', '.join(RULE_NAMES)}")
    where = [
        c
        for c in (
            AccessAlert.status == status if status else None,
            AccessAlert.rule == rule if rule else None,
            or_(AccessAlert.username == user, AccessAlert.user_id == user) if user else None,
        )
        if c is not None
    ]
    total = session.scalar(select(func.count()).select_from(AccessAlert).where(*where)) or 0
    stmt = (
        select(AccessAlert)
        .where(*where)
        .order_by(AccessAlert.window_start.desc(), AccessAlert.username, AccessAlert.rule)
        .offset(offset)
        .limit(limit)
    )
    return int(total), list(session.scalars(stmt))


def get_alert(session: Session, alert_id: str) -> AccessAlert:
    """One alert; :class:`NotFound` when there is none."""
    alert = session.get(AccessAlert, alert_id)
    if alert is None:
        raise NotFound(f"no access alert {alert_id!r}")
    return alert


def review(
    session: Session, ctx: AccessContext, alert_id: str, decision: str, note: str
) -> AccessAlert:
    """An auditor confirms or dismisses an alert with a note (audited; a later review may
    change the decision, and the audit log keeps each one). No one reviews an alert about
    themselves."""
    _require_oversight(ctx)
    if ctx.actor.role is not Role.AUDITOR:
        raise AccessRefused("only an auditor reviews access alerts")
    if decision not in DECISIONS:
        raise ValidationFailed(f"decision is one of {', '.join(DECISIONS)}")
    if len(note.strip()) < 5:
        raise ValidationFailed("say why in a note of at least 5 characters")
    alert = get_alert(session, alert_id)
    if alert.user_id == ctx.actor.user_id:
        raise AccessRefused("an auditor may not review an alert about their own use")
    previous = alert.status
    alert.status, alert.review_note = decision, note.strip()
    alert.reviewed_by, alert.reviewed_at = ctx.actor.user_id, utcnow()
    session.flush()
    emit(
        session,
        AccessAlertReviewed(
            object_type="access_alerts", object_ids=[alert.id], decision=decision, previous=previous
        ),
        ctx,
    )
    return alert


def alert_dict(alert: AccessAlert) -> dict[str, Any]:
    """An alert as the API and the pages show it."""
    return {c.name: getattr(alert, c.name) for c in AccessAlert.__table__.columns}
