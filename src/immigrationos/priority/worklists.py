"""Worklists: the leads of the newest run of the policy in force, one page at a time.

The database orders and pages the stored leads (actionable first, tier rank, score, person
id) with their count; the few persons an override touches are merged in; persons whose case
another officer holds are left out in the same statement. Each lead shown is re-checked
against the lifecycle guards today, so a lead that became blocked since the run is shown
blocked, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Mapped

from immigrationos.accounts.models import User
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.persons.models import Person
from immigrationos.priority import blocks, features, features_py, service
from immigrationos.priority.models import PriorityOverride, PriorityRun, PriorityScore
from immigrationos.priority.policy import Policy
from immigrationos.priority.views import NEVER_AN_ACTION, departed, latest_run, override_dict


def worklist(
    gw: Gateway,
    *,
    office: str | None = None,
    officer: str | None = None,
    tier: str | None = None,
    actionable: bool | None = None,
    page: int = 1,
    size: int = 25,
    policy_ref: str | None = None,
) -> dict[str, Any]:
    """Leads of the newest run of the policy in force, actionable first, one page at a time."""
    service.require_purpose(gw)
    if page < 1 or not 1 <= size <= 200:
        raise ValidationFailed("page starts at 1 and size is between 1 and 200")
    policy_id = service.resolve_policy(gw, policy_ref)
    _, policy = service.policy_of(gw, policy_id)
    run = latest_run(gw, policy_id)
    if run is None:
        raise NotFound(f"policy {policy_id} has not been run: `immos priority run` first")
    office, me = _officer_scope(gw, office, officer)
    shown, total = _leads(
        gw, run, policy, Scope(office, me, tier, actionable), (page - 1) * size, size
    )
    _recheck(gw, shown)
    return {
        "policy": policy_id, "run_id": run.id, "as_of": run.as_of.isoformat(),
        "index_version": run.index_version, "office": office, "officer": officer,
        "total": total, "page": page, "size": size, "items": shown, "note": NEVER_AN_ACTION,
    }  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """Which of a run's leads a worklist lists: an office's, less those whose case another
    officer than ``officer_id`` holds (when given), of one tier, actionable or not."""

    office: str | None
    officer_id: str | None
    tier: str | None
    actionable: bool | None


def _officer_scope(
    gw: Gateway, office: str | None, officer: str | None
) -> tuple[str | None, str | None]:
    """An officer's worklist: their office (unless another is named) and their user id."""
    if officer is None:
        return office, None
    actor = gw.ctx.actor
    if officer == actor.username and actor.user_id:  # an officer's own worklist: no read
        return office or actor.office, actor.user_id
    user = gw.session.scalars(select(User).where(User.username == officer)).first()
    if user is None:
        raise NotFound(f"no user {officer!r}")
    return office or user.office, user.id


def _leads(
    gw: Gateway, run: PriorityRun, policy: Policy, scope: Scope, offset: int, size: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the run's leads after overrides, in worklist order, and how many there are.

    The database orders and pages the stored leads of persons without an override (the page
    and the count in one statement); the few persons an override touches are read apart,
    their tier set by the override, and merged in.
    """
    overrides = _overrides(gw, policy.name)
    s = PriorityScore
    stored: list[ColumnElement[bool] | Mapped[bool]] = [s.lead]
    if scope.tier is not None:
        stored.append(s.tier == scope.tier)
    if scope.actionable is not None:
        stored.append(s.actionable == scope.actionable)
    if overrides:
        stored.append(s.person_id.not_in(sorted(overrides)))
    moved = _override_items(gw, run, policy, scope, overrides)
    # without overrides in scope the page is read directly; with them, everything up to the
    # page's end, since an override may sort anywhere before it
    start, stop = (offset, offset + size) if not moved else (0, offset + size)
    rows = _page_rows(gw, run, scope, *stored, start=start, stop=stop)
    total = rows[0].total if rows else 0 if start == 0 else _count(gw, run, scope, *stored)
    items = [_item(policy, r, None) for r in rows]
    if not moved:
        return items, total
    merged = sorted(items + moved, key=_worklist_order)
    return merged[offset : offset + size], total + len(moved)


def _worklist_order(item: dict[str, Any]) -> tuple[bool, int, float, str]:
    """Actionable first, then by tier, the higher score first, then by person id."""
    return (not item["actionable"], item["tier_rank"], -item["score"], item["person_id"])


def _override_items(
    gw: Gateway,
    run: PriorityRun,
    policy: Policy,
    scope: Scope,
    overrides: dict[str, PriorityOverride],
) -> list[dict[str, Any]]:
    """The leads, after their override, of the persons an override touches."""
    if not overrides:
        return []
    rows = _score_rows(gw, run, scope, PriorityScore.person_id.in_(sorted(overrides)))
    out = []
    for r in rows:
        item = _item(policy, r, overrides[r.person_id])
        if (
            item["lead"]
            and (scope.tier is None or item["tier"] == scope.tier)
            and (scope.actionable is None or item["actionable"] is scope.actionable)
        ):
            out.append(item)
    return out


def _in_scope(run: PriorityRun, scope: Scope) -> list[ColumnElement[bool]]:
    """The run's rows of the scope's office, less persons whose case another officer holds."""
    s, case = PriorityScore, EnforcementCase
    where: list[ColumnElement[bool]] = [s.run_id == run.id]
    if scope.office:
        where.append(s.office == scope.office)
    if scope.officer_id is not None:
        held = exists().where(
            case.person_id == s.person_id,
            case.closed_at.is_(None),
            case.assigned_to.is_not(None),
            case.assigned_to != scope.officer_id,
        )
        where.append(~held)
    return where


def _params(run: PriorityRun, scope: Scope) -> dict[str, Any]:
    params: dict[str, Any] = {"worklist": run.id, "office": scope.office}
    if scope.officer_id is not None:
        params["less_cases_held_by_others_than"] = scope.officer_id
    return params | {k: v for k, v in (("tier", scope.tier), ("actionable", scope.actionable))
                     if v is not None}  # fmt: skip


def _score_rows(
    gw: Gateway, run: PriorityRun, scope: Scope, *where: ColumnElement[bool] | Mapped[bool]
) -> list[Any]:
    """Score rows in scope with the persons' names."""
    s = PriorityScore
    stmt = select(*_SCORE_COLUMNS, Person.given_name, Person.family_name)
    stmt = stmt.join(Person, Person.id == s.person_id).where(*_in_scope(run, scope), *where)
    return list(gw.rows(stmt, PriorityScore, params=_params(run, scope)))


def _page_rows(
    gw: Gateway,
    run: PriorityRun,
    scope: Scope,
    *where: ColumnElement[bool] | Mapped[bool],
    start: int,
    stop: int,
) -> list[Any]:
    """Score rows ``start`` to ``stop`` in scope, ordered as a worklist lists them, with the
    count of all (``total``) and the persons' names. The names are joined to the page only:
    joined to every lead of an office before the cut, they tripled the statement's time."""
    s = PriorityScore
    ordered = select(*_SCORE_COLUMNS, func.count().over().label("total"))
    ordered = ordered.where(*_in_scope(run, scope), *where)
    ordered = ordered.order_by(*_worklist_sql_order(gw, s)).offset(start).limit(stop - start)
    page = ordered.subquery()
    stmt = select(page, Person.given_name, Person.family_name)
    stmt = stmt.join(Person, Person.id == page.c.person_id)
    stmt = stmt.order_by(*_worklist_sql_order(gw, page.c))
    return list(gw.rows(stmt, PriorityScore, params=_params(run, scope)))


_SCORE_COLUMNS = (
    PriorityScore.person_id, PriorityScore.tier, PriorityScore.tier_rank, PriorityScore.score,
    PriorityScore.actionable, PriorityScore.blocks, PriorityScore.rules, PriorityScore.office,
)  # fmt: skip


def _worklist_sql_order(gw: Gateway, c: Any) -> list[Any]:
    """:func:`_worklist_order` in SQL, over columns named as the score's."""
    return [c.actionable.desc(), c.tier_rank, c.score.desc(), _by_code(gw, c.person_id)]


def _count(
    gw: Gateway, run: PriorityRun, scope: Scope, *where: ColumnElement[bool] | Mapped[bool]
) -> int:
    """How many score rows are in scope (for a page past the end, which has no rows to say)."""
    return gw.count(PriorityScore, *_in_scope(run, scope), *where, params=_params(run, scope))


def _by_code(gw: Gateway, column: Any) -> Any:
    """``column`` compared by code point, as Python sorts strings (PostgreSQL's default
    collation may not; SQLite's does)."""
    return column.collate("C") if gw.session.get_bind().dialect.name == "postgresql" else column


def _overrides(gw: Gateway, policy_name: str) -> dict[str, PriorityOverride]:
    rows = gw.select(
        select(PriorityOverride).where(
            PriorityOverride.policy_name == policy_name, PriorityOverride.withdrawn_at.is_(None)
        ),
        PriorityOverride,
        params={"overrides": policy_name},
    )
    return {o.person_id: o for o in rows}


def _item(policy: Policy, r: Any, o: PriorityOverride | None) -> dict[str, Any]:
    tier = policy.tier(o.to_tier) if o else policy.tier(r.tier)
    rules = r.rules if isinstance(r.rules, list) else orjson.loads(r.rules)
    found = r.blocks if isinstance(r.blocks, list) else orjson.loads(r.blocks)
    return {
        "person_id": r.person_id,
        "name": " ".join(v for v in (r.given_name, r.family_name) if v),
        "office": r.office, "tier": tier.id, "tier_label": tier.label, "tier_rank": tier.rank,
        "lead": tier.lead, "score": r.score,
        "rules": [{"id": i, "label": policy.rule(i).label, "kind": policy.rule(i).kind}
                  for i in rules],
        "actionable": tier.lead and not found, "blocks": found,
        "override": override_dict(o),
    }  # fmt: skip


def _recheck(gw: Gateway, items: list[dict[str, Any]]) -> None:
    """Ask the lifecycle guards again (today) for the leads about to be shown, in one read."""
    if not items:
        return
    today = utcnow().date()
    ids = [item["person_id"] for item in items]
    snapshot = features.read(gw, ids, features_py.DEPARTURE_READS)
    gone = {
        row["person_id"]: departed(row)
        for row in features_py.departures_py(snapshot, today).to_pylist()
    }
    files = blocks.persons_facts(gw, ids)
    for item in items:
        checks = blocks.check(files[item["person_id"]], today, gone.get(item["person_id"]))
        now = blocks.blocking(checks)
        item["blocked_since_run"] = bool(now) and not item["blocks"]
        item["blocks"] = now
        item["actionable"] = item["lead"] and not now
