"""Reading prioritization: a person's explanation and what-if comparisons (worklists are in
:mod:`immigrationos.priority.worklists`).

An explanation is computed live from the person's file (the same SQL and the same Python
check the run used, which must agree) and shown beside the stored score of the newest run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import Any

import orjson
from sqlalchemy import select

from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.gateway.core import Gateway
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
    checks = blocks.check(blocks.person_facts(gw, person_id), as_of, departed(values))
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
        "override": override_dict(_override(gw, person_id, policy.name)),
        "note": NEVER_AN_ACTION,
    }  # fmt: skip


def _person(values: dict[str, Any]) -> dict[str, Any]:
    name = " ".join(v for v in (values.get("given_name"), values.get("family_name")) if v)
    return {"id": values["person_id"], "name": name, "nationality": values.get("nationality"),
            "office": values.get("office"), "age_years": values.get("age_years")}  # fmt: skip


def departed(values: dict[str, Any]) -> dict[str, Any] | None:
    """The departure that says a person has left (none if they came back after it)."""
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


def override_dict(o: PriorityOverride | None) -> dict[str, Any] | None:
    """An override as explanations and worklists show it (None when there is none)."""
    if o is None:
        return None
    return {"id": o.id, "from": o.from_tier, "to": o.to_tier, "direction": o.direction,
            "justification": o.justification, "by": o.decided_by,
            "at": o.decided_at.isoformat()}  # fmt: skip


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
