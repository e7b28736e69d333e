"""The oversight report: how the system is used, as counts an auditor can check.

Two kinds of source feed it:

- **the audit log** (no personal data): reads and searches by purpose and role, refused
  accesses, due-process blocks by guard, action decisions;
- **aggregates of personal tables**: enforcement actions by tier, nationality, office and
  month; priority overrides; citizenship reviews; match reviews and the estimated false-match
  rate; departures verified; overstay revisions; access-anomaly alerts.

An auditor reads no individual's record (separation of duties), so the aggregates are computed
by the system account under purpose ``oversight-audit``, with a justification naming the user
who asked: the gateway audits each aggregate read, and only counts leave this module. Every
metric's definition and its limits are in ``docs/oversight.md``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from itertools import pairwise
from statistics import median
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound
from immigrationos.departures.models import Departure, OverstayAssessment
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase
from immigrationos.lifecycle.table import ENFORCEMENT_STEPS
from immigrationos.oversight.models import AccessAlert
from immigrationos.persons.models import Person, RecordLink
from immigrationos.priority.models import PriorityOverride, PriorityScore
from immigrationos.priority.service import in_force
from immigrationos.priority.views import latest_run
from immigrationos.resolution.models import MatchReview

#: Audit actions that read personal data, for "data access by purpose and role".
READ_ACTIONS = {"record.read": "reads", "records.searched": "searches"}
#: A case step a guard stopped: a due-process block, counted apart from refused accesses.
BLOCK_ACTION = "case.step_blocked"
#: Enforcement actions: the steps a second person must approve, and removals carried out
#: (any transition into ``REMOVED``).
ENFORCEMENT_ACTIONS = ENFORCEMENT_STEPS
REMOVED_STATE = "REMOVED"
CITIZENSHIP_REVIEW = "CITIZENSHIP_REVIEW"
#: Link methods the model decided without a person (their error is the false-match rate).
AUTOMATIC_LINKS = ("model", "incremental")
#: Nationalities beyond this many are summed as "other" in the report's tables.
TOP_NATIONALITIES = 12


class Count(BaseModel):
    """One labelled count."""

    label: str
    count: int


class AccessRow(BaseModel):
    """Reads and searches of personal data under one purpose by one role."""

    purpose: str
    role: str
    reads: int = 0
    searches: int = 0


class ActionRow(BaseModel):
    """How often an audited action happened, and how often the rules refused it."""

    action: str
    ok: int = 0
    refused: int = 0


class CrossTab(BaseModel):
    """Counts by two dimensions, with row and column totals."""

    title: str
    rows: list[str]
    columns: list[str]
    cells: dict[str, dict[str, int]]
    row_totals: dict[str, int]
    column_totals: dict[str, int]
    total: int


class EnforcementSection(BaseModel):
    """Enforcement actions (approved steps carried out, removals) by tier, nationality,
    office and month. Tier is the person's tier in the newest run of the policy in force."""

    policy: str | None
    total: int
    by_action: list[Count]
    by_tier: list[Count]
    by_nationality: list[Count]
    by_office: list[Count]
    by_month: CrossTab


class CitizenshipSection(BaseModel):
    """Citizenship reviews opened, resolved and how, and how long they took."""

    opened: int
    resolved: int
    open_now: int
    outcomes: list[Count]
    median_days_to_resolve: float | None


class MatchSection(BaseModel):
    """Human review of uncertain matches, and the model's estimated false-match rate."""

    reviews_by_status: list[Count]
    reviews_by_decision: list[Count]
    #: Share of decided reviews judged "not the same person".
    review_negative_share: float | None
    automatic_links: int
    #: Expected share of automatic links that join two different people: mean(1 − p).
    estimated_false_match_rate: float | None
    departure_reviews: list[Count]


class DepartureSection(BaseModel):
    """Departures by channel and match band, and revisions of overstay assessments."""

    by_channel_band: CrossTab
    verified: int
    overstays_current: list[Count]
    overstay_revisions: int
    revised_admissions: int
    revision_transitions: list[Count]


class OversightReport(BaseModel):
    """The whole report: counts only, no person, no staff name."""

    generated_at: datetime
    requested_by: str
    audit_entries: int
    first_at: datetime | None
    last_at: datetime | None
    #: Refused accesses: refusals by the access rules and failed or throttled sign-ins.
    refused: int
    refused_by_role: list[Count]
    refused_by_action: list[Count]
    access_by_purpose_role: list[AccessRow]
    by_action: list[ActionRow]
    blocks_by_guard: list[Count]
    blocks_by_step: list[Count]
    action_decisions: list[Count]
    priority_overrides: list[Count]
    enforcement: EnforcementSection
    citizenship: CitizenshipSection
    matches: MatchSection
    departures: DepartureSection
    #: Access-anomaly alerts by rule and review status (rule names and counts only).
    anomalies: list[Count]
    anomalies_open: list[Count]


# --- helpers ------------------------------------------------------------------------------


def counts(counter: Mapping[str, int]) -> list[Count]:
    """Labelled counts, largest first (ties by label)."""
    return [
        Count(label=k, count=n) for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def cross_tab(
    title: str, counted: Mapping[tuple[str, str], int], column_order: Iterable[str] = ()
) -> CrossTab:
    """Counts by ``(row, column)`` as a table with totals (rows and columns sorted, the
    columns in ``column_order`` first)."""
    cells: dict[str, Counter[str]] = defaultdict(Counter)
    for (row, column), n in counted.items():
        cells[row][column] += n
    columns = list(dict.fromkeys([*column_order, *sorted({c for r in cells.values() for c in r})]))
    columns = [c for c in columns if any(c in r for r in cells.values())]
    rows = sorted(cells)
    column_totals = {c: sum(cells[r][c] for r in rows) for c in columns}
    return CrossTab(
        title=title,
        rows=rows,
        columns=columns,
        cells={r: dict(cells[r]) for r in rows},
        row_totals={r: sum(cells[r].values()) for r in rows},
        column_totals=column_totals,
        total=sum(column_totals.values()),
    )


def _top(counter: Counter[str], limit: int) -> Counter[str]:
    """The ``limit`` largest labels, the rest summed as "other"."""
    kept = Counter(dict(counter.most_common(limit)))
    rest = sum(counter.values()) - sum(kept.values())
    if rest:
        kept["other"] += rest
    return kept


def _month(value: datetime | date | None) -> str:
    return value.strftime("%Y-%m") if value else "unknown"


# --- audit-log sections -------------------------------------------------------------------


def _access_rows(session: Session) -> list[AccessRow]:
    stmt = (
        select(AuditEntry.purpose, AuditEntry.actor_role, AuditEntry.action, func.count())
        .where(AuditEntry.action.in_(READ_ACTIONS), AuditEntry.outcome == "ok")
        .group_by(AuditEntry.purpose, AuditEntry.actor_role, AuditEntry.action)
    )
    rows: dict[tuple[str, str], AccessRow] = {}
    for purpose, role, action, n in session.execute(stmt):
        key = (purpose or "none", role or "anonymous")
        row = rows.setdefault(key, AccessRow(purpose=key[0], role=key[1]))
        setattr(row, READ_ACTIONS[action], n)
    return sorted(rows.values(), key=lambda r: -(r.reads + r.searches))


def _action_rows(session: Session) -> list[ActionRow]:
    stmt = select(AuditEntry.action, AuditEntry.outcome, func.count()).group_by(
        AuditEntry.action, AuditEntry.outcome
    )
    rows: dict[str, ActionRow] = {}
    for action, outcome, n in session.execute(stmt):
        row = rows.setdefault(action, ActionRow(action=action))
        if outcome == "refused":
            row.refused += n
        else:
            row.ok += n
    return sorted(rows.values(), key=lambda r: (-(r.ok + r.refused), r.action))


def _details_of(session: Session, action: str) -> Iterable[dict[str, Any]]:
    """The details of every entry of ``action`` (event fields: ids and codes, no values)."""
    return session.scalars(select(AuditEntry.details).where(AuditEntry.action == action))


def _refusals(session: Session) -> tuple[Counter[str], Counter[str]]:
    refused: ColumnElement[bool] = (AuditEntry.outcome == "refused") & (
        AuditEntry.action != BLOCK_ACTION
    )
    by_role: Counter[str] = Counter()
    by_action: Counter[str] = Counter()
    stmt = (
        select(AuditEntry.actor_role, AuditEntry.action, func.count())
        .where(refused)
        .group_by(AuditEntry.actor_role, AuditEntry.action)
    )
    for role, action, n in session.execute(stmt):
        by_role[role or "not signed in"] += n
        by_action[action] += n
    return by_role, by_action


def _alerts(session: Session) -> tuple[Counter[str], Counter[str]]:
    """Access alerts by rule and status, and the open ones by rule (staff, not persons)."""
    every: Counter[str] = Counter()
    still_open: Counter[str] = Counter()
    stmt = select(AccessAlert.rule, AccessAlert.status, func.count()).group_by(
        AccessAlert.rule, AccessAlert.status
    )
    for rule, status, n in session.execute(stmt):
        every[f"{rule} ({status})"] += n
        if status == "open":
            still_open[rule] += n
    return every, still_open


def _blocks(session: Session) -> tuple[Counter[str], Counter[str]]:
    guards: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    for details in _details_of(session, BLOCK_ACTION):
        guards.update(details.get("blocked_by", {}).keys())
        steps[str(details.get("transition"))] += 1
    return guards, steps


# --- aggregate sections (system account, on the auditor's request) ------------------------


def _moved() -> ColumnElement[bool]:
    """Case events that moved the case to another state (a deadline applied in place, a note
    or an opening did not)."""
    return CaseEvent.to_state.is_not(None) & (
        CaseEvent.from_state.is_(None) | (CaseEvent.from_state != CaseEvent.to_state)
    )


def _policy_run(gw: Gateway) -> tuple[str | None, str | None]:
    """The policy in force and its newest finished run, if any."""
    try:
        policy = in_force(gw)
    except NotFound:
        return None, None
    run = latest_run(gw, policy.id)
    return policy.id, run.id if run else None


def enforcement_section(gw: Gateway) -> EnforcementSection:
    """Enforcement actions by action, tier, nationality, office and month."""
    policy_id, run_id = _policy_run(gw)
    tier = select(PriorityScore.tier).where(
        PriorityScore.run_id == run_id, PriorityScore.person_id == EnforcementCase.person_id
    )
    removed = (CaseEvent.to_state == REMOVED_STATE) & _moved()
    is_action = or_(CaseEvent.action.in_(ENFORCEMENT_ACTIONS), removed)
    stmt = (
        select(
            CaseEvent.at,
            CaseEvent.action,
            CaseEvent.to_state,
            EnforcementCase.office,
            Person.nationality,
            tier.scalar_subquery(),
        )
        .join(EnforcementCase, EnforcementCase.id == CaseEvent.case_id)
        .join(Person, Person.id == EnforcementCase.person_id)
        .where(CaseEvent.kind != "deadline", is_action)
    )
    rows = gw.rows(stmt, CaseEvent, params={"report": "oversight", "section": "enforcement"})
    actions: Counter[str] = Counter()
    tiers: Counter[str] = Counter()
    nationalities: Counter[str] = Counter()
    offices: Counter[str] = Counter()
    months: Counter[tuple[str, str]] = Counter()
    for at, action, to_state, office, nationality, tier_id in rows:
        name = action or str(to_state)
        actions[name] += 1
        tiers[tier_id or "not scored"] += 1
        nationalities[nationality or "unknown"] += 1
        offices[office or "unassigned"] += 1
        months[(_month(at), name)] += 1
    return EnforcementSection(
        policy=policy_id,
        total=len(rows),
        by_action=counts(actions),
        by_tier=counts(tiers),
        by_nationality=counts(_top(nationalities, TOP_NATIONALITIES)),
        by_office=counts(offices),
        by_month=cross_tab("Enforcement actions by month", months),
    )


def overrides_section(gw: Gateway) -> Counter[str]:
    """Priority overrides in force and withdrawn, by direction."""
    stmt = select(
        PriorityOverride.direction, PriorityOverride.withdrawn_at.is_not(None), func.count()
    ).group_by(PriorityOverride.direction, PriorityOverride.withdrawn_at.is_not(None))
    out: Counter[str] = Counter()
    for direction, withdrawn, n in gw.rows(
        stmt, PriorityOverride, params={"report": "oversight", "section": "overrides"}
    ):
        out[f"{direction} ({'withdrawn' if withdrawn else 'in force'})"] += n
    return out


def citizenship_section(gw: Gateway) -> CitizenshipSection:
    """Reviews opened and resolved (by the step that resolved them), and the time taken."""
    stmt = select(
        CaseEvent.case_id, CaseEvent.at, CaseEvent.action, CaseEvent.from_state, CaseEvent.to_state
    ).where(
        _moved(),
        or_(CaseEvent.to_state == CITIZENSHIP_REVIEW, CaseEvent.from_state == CITIZENSHIP_REVIEW),
    )
    params = {"report": "oversight", "section": "citizenship"}
    rows = sorted(gw.rows(stmt, CaseEvent, params=params), key=lambda r: (r[0], r[1]))
    opened_at: dict[str, datetime] = {}
    outcomes: Counter[str] = Counter()
    days: list[float] = []
    opened = 0
    for case_id, at, action, from_state, to_state in rows:
        if to_state == CITIZENSHIP_REVIEW and from_state != CITIZENSHIP_REVIEW:
            opened += 1
            opened_at[case_id] = at
        elif from_state == CITIZENSHIP_REVIEW and to_state != CITIZENSHIP_REVIEW:
            outcomes[f"{action or 'step'} → {to_state}"] += 1
            start = opened_at.pop(case_id, None)
            if start is not None:
                days.append((at - start).total_seconds() / 86400)
    open_now = gw.count(EnforcementCase, EnforcementCase.state == CITIZENSHIP_REVIEW, params=params)
    return CitizenshipSection(
        opened=opened,
        resolved=sum(outcomes.values()),
        open_now=open_now,
        outcomes=counts(outcomes),
        median_days_to_resolve=round(median(days), 1) if days else None,
    )


def match_section(gw: Gateway) -> MatchSection:
    """Review outcomes (resolution and departures) and the estimated false-match rate."""
    params = {"report": "oversight", "section": "matches"}
    status: Counter[str] = Counter()
    decision: Counter[str] = Counter()
    stmt = select(MatchReview.status, MatchReview.decision, func.count()).group_by(
        MatchReview.status, MatchReview.decision
    )
    for s, d, n in gw.rows(stmt, MatchReview, params=params):
        status[s] += n
        if d:
            decision[d] += n
    decided = sum(decision.values())
    links = select(func.count(), func.sum(1 - RecordLink.match_probability)).where(
        RecordLink.method.in_(AUTOMATIC_LINKS),
        RecordLink.unlinked_at.is_(None),
        RecordLink.match_probability.is_not(None),
    )
    (n_links, expected_false), *_ = gw.rows(links, RecordLink, params=params)
    departure_stmt = (
        select(Departure.review_status, func.count())
        .where(Departure.review_status.is_not(None))
        .group_by(Departure.review_status)
    )
    departures = Counter({s: n for s, n in gw.rows(departure_stmt, Departure, params=params)})
    return MatchSection(
        reviews_by_status=counts(status),
        reviews_by_decision=counts(decision),
        review_negative_share=round(decision["negative"] / decided, 4) if decided else None,
        automatic_links=int(n_links or 0),
        estimated_false_match_rate=(
            round(float(expected_false or 0) / n_links, 5) if n_links else None
        ),
        departure_reviews=counts(departures),
    )


def departure_section(gw: Gateway) -> DepartureSection:
    """Departures by channel and band; overstay assessments now and how often revised."""
    params = {"report": "oversight", "section": "departures"}
    stmt = select(Departure.channel, Departure.match_band, func.count()).group_by(
        Departure.channel, Departure.match_band
    )
    bands = Counter({(c, b): n for c, b, n in gw.rows(stmt, Departure, params=params)})
    table = cross_tab(
        "Departure events by channel and match band", bands, ("verified", "review", "unmatched")
    )
    now = (
        select(OverstayAssessment.outcome, func.count())
        .where(OverstayAssessment.superseded_at.is_(None))
        .group_by(OverstayAssessment.outcome)
    )
    current = Counter({o: n for o, n in gw.rows(now, OverstayAssessment, params=params)})
    transitions, revised = _revisions(gw, params)
    return DepartureSection(
        by_channel_band=table,
        verified=table.column_totals.get("verified", 0),
        overstays_current=counts(current),
        overstay_revisions=sum(transitions.values()),
        revised_admissions=revised,
        revision_transitions=counts(transitions),
    )


def _revisions(gw: Gateway, params: dict[str, str]) -> tuple[Counter[str], int]:
    """Revisions from outcome to outcome, and how many admissions were revised. Only the
    admissions with a superseded assessment are read (most are assessed once)."""
    revised = select(OverstayAssessment.admission_id).where(
        OverstayAssessment.superseded_at.is_not(None)
    )
    stmt = select(
        OverstayAssessment.admission_id, OverstayAssessment.assessed_at, OverstayAssessment.outcome
    ).where(OverstayAssessment.admission_id.in_(revised))
    history: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for admission, at, outcome in gw.rows(stmt, OverstayAssessment, params=params):
        history[admission].append((at, outcome))
    transitions: Counter[str] = Counter()
    for entries in history.values():
        entries.sort()
        for (_, before), (_, after) in pairwise(entries):
            transitions[f"{before} → {after}"] += 1
    return transitions, len(history)


# --- the report ---------------------------------------------------------------------------


def aggregate_context(requested_by: AccessContext) -> AccessContext:
    """The system context that computes aggregates on behalf of ``requested_by``."""
    return system_context(
        Purpose.OVERSIGHT_AUDIT,
        f"oversight report requested by {requested_by.actor.username} "
        f"({requested_by.actor.role.value})",
    )


def build_report(session: Session, requested_by: AccessContext) -> OversightReport:
    """The oversight report, computed now. Audit-log sections read the log directly; the
    rest run as aggregates through a gateway of the system account (see the module doc)."""
    gw = Gateway(session, aggregate_context(requested_by))
    span = session.execute(select(func.count(), func.min(AuditEntry.at), func.max(AuditEntry.at)))
    entries, first_at, last_at = span.one()
    refused_by_role, refused_by_action = _refusals(session)
    guards, steps = _blocks(session)
    alerts, alerts_open = _alerts(session)
    decisions = Counter(str(d.get("decision")) for d in _details_of(session, "case.action_decided"))
    return OversightReport(
        generated_at=utcnow(),
        requested_by=requested_by.actor.role.value,
        audit_entries=entries,
        first_at=first_at,
        last_at=last_at,
        refused=sum(refused_by_role.values()),
        refused_by_role=counts(refused_by_role),
        refused_by_action=counts(refused_by_action),
        access_by_purpose_role=_access_rows(session),
        by_action=_action_rows(session),
        blocks_by_guard=counts(guards),
        blocks_by_step=counts(steps),
        action_decisions=counts(decisions),
        priority_overrides=counts(overrides_section(gw)),
        enforcement=enforcement_section(gw),
        citizenship=citizenship_section(gw),
        matches=match_section(gw),
        departures=departure_section(gw),
        anomalies=counts(alerts),
        anomalies_open=counts(alerts_open),
    )
