"""Reading prioritization: a person's explanation, worklists, and what-if comparisons.

An explanation is computed live from the person's file (the same SQL and the same Python
check the run used, which must agree) and shown beside the stored score of the newest run.
Worklists come from the newest run of the policy in force, with overrides applied and each
shown lead re-checked against the lifecycle guards, so a lead that became blocked since the
run is shown blocked, with the reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
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
from immigrationos.priority import blocks, conditions, evaluate, features, features_py, service
from immigrationos.priority.catalogue import FEATURES
from immigrationos.priority.models import PriorityOverride, PriorityRun, PriorityScore
from immigrationos.priority.policy import Policy

NEVER_AN_ACTION = (
    "A priority is never an action: a lead only lets an officer open an encounter, and every "
    "enforcement step still needs its guards and a second person's approval."
)


def latest_run(gw: Gateway, policy_id: str) -> PriorityRun | None:
    return gw.session.scalars(
        select(PriorityRun)
        .where(PriorityRun.policy_id == policy_id, PriorityRun.finished_at.is_not(None))
        .order_by(PriorityRun.finished_at.desc())
    ).first()


def current_score(gw: Gateway, person_id: str, policy_id: str) -> PriorityScore:
    """The person's score in the newest run of ``policy_id``."""
    run = latest_run(gw, policy_id)
    if run is None:
        raise NotFound(f"policy {policy_id} has not been run: `immos priority run` first")
    rows = gw.select(
        select(PriorityScore).where(
            PriorityScore.run_id == run.id, PriorityScore.person_id == person_id
        ),
        PriorityScore,
        params={"run": run.id, "person": person_id},
    )
    if not rows:
        raise NotFound(f"person {person_id!r} is not in run {run.id}")
    return rows[0]


def _override(gw: Gateway, person_id: str, policy_name: str) -> PriorityOverride | None:
    rows = gw.select(
        select(PriorityOverride).where(
            PriorityOverride.person_id == person_id,
            PriorityOverride.policy_name == policy_name,
            PriorityOverride.withdrawn_at.is_(None),
        ),
        PriorityOverride,
        params={"person": person_id, "overrides": policy_name},
    )
    return rows[0] if rows else None


# -- explanation ----------------------------------------------------------------------------


def explain(
    gw: Gateway, person_id: str, policy_ref: str | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """Why a person has their tier and score, and whether action is possible now."""
    service.require_purpose(gw)
    policy_id = service.resolve_policy(gw, policy_ref)
    row, policy = service.policy_of(gw, policy_id)
    as_of = as_of or utcnow().date()
    snapshot = features.read(gw, [person_id])
    table = features_py.compute_py(snapshot, as_of)
    if table.num_rows == 0:
        raise NotFound(f"no active person {person_id!r}")
    values = table.to_pylist()[0]
    tier, score, fired = evaluate.score_one(policy, values)
    evidence = evaluate.evidence_one(policy, values, fired)
    checks = blocks.check(blocks.person_facts(gw, person_id), as_of, _departed(values))
    return {
        "person": _person(values),
        "policy": {"id": policy.key, "title": policy.spec.title, "status": row.status,
                   "source_document": policy.spec.source_document.model_dump(mode="json")},
        "as_of": as_of.isoformat(),
        "tier": _tier(policy, tier),
        "score": score,
        "rules": [_rule(policy, r, evidence) for r in fired],
        "mitigating": [_rule(policy, r, evidence) for r in fired
                       if policy.rule(r).kind == "mitigating"],
        "unavailable": service.unavailable(gw, policy) | _withheld(gw)
                       | snapshot.unknown.get(person_id, {}),
        "action": {"possible": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks],
                   "blocks": blocks.blocking(checks)},
        "stored": _stored(gw, person_id, policy_id),
        "override": _override_dict(_override(gw, person_id, policy.name)),
        "note": NEVER_AN_ACTION,
    }  # fmt: skip


def _person(values: dict[str, Any]) -> dict[str, Any]:
    name = " ".join(v for v in (values.get("given_name"), values.get("family_name")) if v)
    return {"id": values["person_id"], "name": name, "nationality": values.get("nationality"),
            "office": values.get("office"), "age_years": values.get("age_years")}  # fmt: skip


def _departed(values: dict[str, Any]) -> dict[str, Any] | None:
    gone, back = values.get("departed_on"), values.get("back_on")
    if gone is None or (back is not None and gone < back):
        return None
    return {"on": gone.isoformat(), "record": values.get("ev_dep")}


def _tier(policy: Policy, tier_id: str) -> dict[str, Any]:
    t = policy.tier(tier_id)
    return {"id": t.id, "label": t.label, "rank": t.rank, "lead": t.lead,
            "condition": conditions.describe(t.cond)}  # fmt: skip


def _rule(policy: Policy, rule_id: str, evidence: dict[str, Any]) -> dict[str, Any]:
    r = policy.rule(rule_id)
    return {"id": r.id, "label": r.label, "kind": r.kind, "weight": r.signed_weight,
            "cites": r.cites, "condition": conditions.describe(r.cond),
            "evidence": evaluate.evidence_items({r.id: evidence.get(r.id, [])})}  # fmt: skip


def _withheld(gw: Gateway) -> dict[str, str]:
    """Catalogue features whose sources the current purpose may not read (whatever the policy)."""
    out = {}
    for name, feature in FEATURES.items():
        for source in feature.sources:
            decision = (
                gw.agreements.decide(source, gw.ctx) if source in gw.agreements.terms else None
            )
            if decision is not None and not decision.allowed:
                out[name] = f"withheld under {gw.ctx.purpose.value}: {decision.reason}"
    return out


def _stored(gw: Gateway, person_id: str, policy_id: str) -> dict[str, Any] | None:
    try:
        s = current_score(gw, person_id, policy_id)
    except NotFound:
        return None
    return {"run_id": s.run_id, "tier": s.tier, "score": s.score, "actionable": s.actionable,
            "blocks": s.blocks}  # fmt: skip


def _override_dict(o: PriorityOverride | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"id": o.id, "from": o.from_tier, "to": o.to_tier, "direction": o.direction,
            "justification": o.justification, "by": o.decided_by,
            "at": o.decided_at.isoformat()}  # fmt: skip


# -- worklists ------------------------------------------------------------------------------


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
        "override": _override_dict(o),
    }  # fmt: skip


def _recheck(gw: Gateway, items: list[dict[str, Any]]) -> None:
    """Ask the lifecycle guards again (today) for the leads about to be shown, in one read."""
    if not items:
        return
    today = utcnow().date()
    ids = [item["person_id"] for item in items]
    snapshot = features.read(gw, ids, features_py.DEPARTURE_READS)
    departed = {
        row["person_id"]: _departed(row)
        for row in features_py.departures_py(snapshot, today).to_pylist()
    }
    files = blocks.persons_facts(gw, ids)
    for item in items:
        checks = blocks.check(files[item["person_id"]], today, departed.get(item["person_id"]))
        now = blocks.blocking(checks)
        item["blocked_since_run"] = bool(now) and not item["blocks"]
        item["blocks"] = now
        item["actionable"] = item["lead"] and not now


# -- what-if --------------------------------------------------------------------------------


def compare(gw: Gateway, run_a: str, run_b: str, limit: int = 50) -> dict[str, Any]:
    """Two runs over the same person index: transitions, counts by group, who changed and why."""
    service.require_purpose(gw)
    a, b = (gw.session.get(PriorityRun, r) for r in (run_a, run_b))
    if a is None or b is None:
        raise NotFound(f"no run {run_a if a is None else run_b!r}")
    if a.index_version != b.index_version or a.as_of != b.as_of:
        raise ValidationFailed(
            "a comparison needs both runs over the same person index and date "
            f"({a.index_version} on {a.as_of} vs {b.index_version} on {b.as_of})"
        )
    pa_, pb = (service.policy_of(gw, r.policy_id)[1] for r in (a, b))
    sa, sb = (_scores(gw, r.id) for r in (a, b))
    changed = sorted(p for p in sa if p in sb and sa[p]["tier"] != sb[p]["tier"])
    return {
        "a": {"policy": pa_.key, "title": pa_.spec.title, "run_id": a.id},
        "b": {"policy": pb.key, "title": pb.spec.title, "run_id": b.id},
        "index_version": a.index_version, "as_of": a.as_of.isoformat(), "persons": len(sa),
        "tiers_a": _tiers(pa_), "tiers_b": _tiers(pb),
        "matrix": _matrix(sa, sb),
        "by": {dim: _by(sa, sb, dim) for dim in ("nationality", "office", "age_band")},
        "changed": [_changed(p, sa[p], sb[p], pa_, pb) for p in changed[:limit]],
        "changed_total": len(changed),
        "generated_at": utcnow().isoformat(),
    }  # fmt: skip


def _scores(gw: Gateway, run_id: str) -> dict[str, dict[str, Any]]:
    s = PriorityScore
    rows = gw.rows(
        select(
            s.person_id, s.tier, s.lead, s.score, s.rules, s.nationality, s.office, s.age_band
        ).where(s.run_id == run_id),
        PriorityScore,
        params={"compare": run_id},
    )
    return {r.person_id: r._asdict() for r in rows}


def _tiers(policy: Policy) -> list[dict[str, Any]]:
    return [{"id": t.id, "label": t.label, "rank": t.rank, "lead": t.lead} for t in policy.tiers]


def _matrix(sa: dict[str, Any], sb: dict[str, Any]) -> list[dict[str, Any]]:
    cells = Counter((sa[p]["tier"], sb[p]["tier"]) for p in sa if p in sb)
    return [{"from": f, "to": t, "count": n} for (f, t), n in sorted(cells.items())]


def _by(sa: dict[str, Any], sb: dict[str, Any], dim: str) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for p, row in sa.items():
        g = groups[row[dim] or "unknown"]
        g[0] += 1
        g[1] += bool(row["lead"])
        g[2] += bool(sb.get(p, {}).get("lead"))
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [{"group": k, "persons": v[0], "leads_a": v[1], "leads_b": v[2]} for k, v in ordered]


def _changed(
    person_id: str, a: dict[str, Any], b: dict[str, Any], pa_: Policy, pb: Policy
) -> dict[str, Any]:
    def rules(row: dict[str, Any], policy: Policy) -> list[dict[str, Any]]:
        ids = row["rules"] if isinstance(row["rules"], list) else orjson.loads(row["rules"])
        return [{"id": i, "label": policy.rule(i).label, "kind": policy.rule(i).kind,
                 "weight": policy.rule(i).weight} for i in ids]  # fmt: skip

    return {"person_id": person_id, "from": a["tier"], "to": b["tier"], "score_a": a["score"],
            "score_b": b["score"], "rules_a": rules(a, pa_), "rules_b": rules(b, pb)}  # fmt: skip
