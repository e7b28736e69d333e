"""Prioritization as users work it: register and adopt policies, run them, record overrides.

Every function takes a gateway (actor, purpose, audit) and never commits: the command or
request that calls it owns the transaction. Reading the results (explanations, worklists,
comparisons) lives in :mod:`immigrationos.priority.views`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import pyarrow as pa
from sqlalchemy import select, update

from immigrationos.accounts.roles import Role
from immigrationos.audit.chain import emit
from immigrationos.audit.events import (
    PolicyAdopted,
    PolicyRegistered,
    PrioritiesScored,
    PriorityOverridden,
)
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import AccessRefused, NotFound, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.priority import evaluate, features
from immigrationos.priority.catalogue import FEATURES
from immigrationos.priority.models import (
    PriorityOverride,
    PriorityPolicy,
    PriorityRun,
    PriorityScore,
)
from immigrationos.priority.policy import PURPOSE, Policy, PolicyInvalid, parse_policy
from immigrationos.resolution.models import ResolutionRun
from immigrationos.sources.pipeline import Prefetch

AGE_BANDS = ((0, 18, "0-17"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
             (45, 55, "45-54"), (55, 65, "55-64"), (65, 200, "65+"))  # fmt: skip


def require_purpose(gw: Gateway, purpose: Purpose = Purpose.ENFORCEMENT_PRIORITIZATION) -> None:
    """Refuse unless the gateway works under ``purpose``."""
    if gw.ctx.purpose is not purpose:
        raise AccessRefused(
            f"this needs the purpose {purpose.value!r}, not {gw.ctx.purpose.value!r}"
        )


def permissions(gw: Gateway) -> dict[str, frozenset[str]]:
    """Each source's permitted purposes under the agreements in force."""
    return {sid: t.purposes for sid, t in gw.agreements.terms.items()}


def policy_of(gw: Gateway, policy_id: str) -> tuple[PriorityPolicy, Policy]:
    """A stored policy version and its parsed form (re-validated against today's agreements)."""
    row = gw.session.get(PriorityPolicy, policy_id)
    if row is None:
        raise NotFound(f"no policy {policy_id!r} (see `immos priority policies`)")
    return row, _parsed(row.text, tuple(sorted(permissions(gw).items())))


@lru_cache(maxsize=64)
def _parsed(text: str, permitted: tuple[tuple[str, frozenset[str]], ...]) -> Policy:
    """A policy text parsed and validated once per set of agreements (a version's text never
    changes; parsing the YAML costs more than a worklist page's reads)."""
    return parse_policy(text, dict(permitted))


def in_force(gw: Gateway, name: str | None = None) -> PriorityPolicy:
    """The adopted policy version (of ``name``, or the newest adopted of any)."""
    stmt = select(PriorityPolicy).where(PriorityPolicy.status == "adopted")
    if name:
        stmt = stmt.where(PriorityPolicy.name == name)
    row = gw.session.scalars(stmt.order_by(PriorityPolicy.adopted_at.desc())).first()
    if row is None:
        raise NotFound("no policy is adopted: register one and have a supervisor adopt it")
    return row


def resolve_policy(gw: Gateway, ref: str | None) -> str:
    """``name@version``, ``name`` (its adopted version, else its newest) or None (in force)."""
    if ref is None:
        return in_force(gw).id
    if "@" in ref:
        return ref
    rows = gw.session.scalars(select(PriorityPolicy).where(PriorityPolicy.name == ref)).all()
    if not rows:
        raise NotFound(f"no policy named {ref!r}")
    adopted = [r for r in rows if r.status == "adopted"]
    return (adopted or sorted(rows, key=lambda r: r.registered_at))[-1].id


# -- policies -------------------------------------------------------------------------------


def register(gw: Gateway, text: str) -> PriorityPolicy:
    """Validate and store a policy version; a version's text can never change afterwards."""
    policy = parse_policy(text, permissions(gw))
    existing = gw.session.get(PriorityPolicy, policy.key)
    if existing is not None:
        if existing.sha256 == policy.sha256:
            return existing
        raise PolicyInvalid(
            policy.key,
            [f"version {policy.version} is registered with different text: publish a new version"],
        )
    spec = policy.spec
    row = PriorityPolicy(
        id=policy.key, name=spec.policy, version=spec.version, title=spec.title,
        owner=spec.owner, effective_from=spec.effective.start,
        effective_until=spec.effective.until,
        source_document=spec.source_document.model_dump(mode="json"),
        approval_record=spec.approval.model_dump(mode="json"), text=text,
        sha256=policy.sha256, registered_by=_user(gw),
    )  # fmt: skip
    gw.session.add(row)
    emit(gw.session, PolicyRegistered(object_type="priority_policies", object_ids=[row.id],
                                      policy_id=row.id, sha256=row.sha256), gw.ctx)  # fmt: skip
    return row


def adopt(gw: Gateway, policy_id: str, note: str) -> PriorityPolicy:
    """Put a version in force: a supervisor, never the person who registered it."""
    if gw.ctx.actor.role not in (Role.SUPERVISOR, Role.SYSTEM):
        raise AccessRefused("only a supervisor adopts a policy")
    row, _ = policy_of(gw, policy_id)
    if row.registered_by and row.registered_by == _user(gw):
        raise AccessRefused("the person who registered a policy may not adopt it (two-person rule)")
    if not note.strip():
        raise ValidationFailed("adoption needs a note (the decision's record)")
    retired = [
        r.id
        for r in gw.session.scalars(
            select(PriorityPolicy).where(
                PriorityPolicy.name == row.name, PriorityPolicy.status == "adopted"
            )
        )
        if r.id != row.id
    ]
    gw.session.execute(
        update(PriorityPolicy).where(PriorityPolicy.id.in_(retired)).values(status="retired")
    )
    row.status, row.adopted_by, row.adopted_at, row.adoption_note = (
        "adopted", _user(gw), utcnow(), note,
    )  # fmt: skip
    emit(gw.session, PolicyAdopted(object_type="priority_policies", object_ids=[row.id],
                                   policy_id=row.id, retired=retired), gw.ctx)  # fmt: skip
    return row


def _user(gw: Gateway) -> str | None:
    return None if gw.ctx.actor.role is Role.SYSTEM else gw.ctx.actor.user_id


# -- runs -----------------------------------------------------------------------------------


def index_version(gw: Gateway) -> str | None:
    """The person index the store holds now: the newest finished resolution run."""
    return gw.session.scalars(
        select(ResolutionRun.id)
        .where(ResolutionRun.status == "finished")
        .order_by(ResolutionRun.finished_at.desc())
    ).first()


def run(gw: Gateway, policy_id: str, as_of: date | None = None) -> PriorityRun:
    """Score the whole person index under a policy version and store every score."""
    require_purpose(gw)
    _, policy = policy_of(gw, policy_id)
    as_of = as_of or utcnow().date()
    table = features.compute(features.read(gw), as_of)
    return score_index(gw, policy, table, as_of=as_of, index_version=index_version(gw))


@dataclass(frozen=True)
class Scored:
    """A run's scores as Arrow, ready to store (and to benchmark)."""

    table: pa.Table
    counts: dict[str, Any]


def score(policy: Policy, table: pa.Table) -> Scored:
    """Evaluate and attach actionability, blocks, office, nationality and age band, in the
    same statement (no store involved)."""
    out = evaluate.evaluate(policy, table, _ATTACH)
    return Scored(out, _counts(out))


_BANDS = " ".join(f"WHEN f.age_years < {hi} THEN '{label}'" for _, hi, label in AGE_BANDS)
_ATTACH = (
    "f.lead AND len(f.blocks) = 0 AS actionable",
    "CASE WHEN len(f.blocks) = 0 THEN '[]' ELSE to_json(f.blocks)::VARCHAR END AS blocks",
    "f.office",
    "f.nationality",
    f"CASE WHEN f.age_years IS NULL THEN NULL {_BANDS} END AS age_band",
)


def _counts(scored: pa.Table | None) -> dict[str, Any]:
    if scored is None:  # nobody scored
        return {"tiers": {}, "actionable": 0, "blocked_leads": 0}
    by_tier = scored.group_by("tier").aggregate([("lead", "sum"), ("actionable", "sum"),
                                                  ("tier", "count")])  # fmt: skip
    rows = sorted(by_tier.to_pylist(), key=lambda r: r["tier"])
    return {
        "tiers": {r["tier"]: r["tier_count"] for r in rows},
        "actionable": sum(r["actionable_sum"] for r in rows),
        "blocked_leads": sum(r["lead_sum"] - r["actionable_sum"] for r in rows),
    }


#: Persons per slice when a run is written as it is evaluated (:func:`score_index`).
SLICE = 131_072


def score_index(
    gw: Gateway, policy: Policy, table: pa.Table, *, as_of: date, index_version: str | None
) -> PriorityRun:
    """Score a feature table under ``policy`` and store the run and one row per person.

    The statement of :func:`score` runs once, streamed: a worker thread pulls its rows a
    slice at a time (DuckDB computes them with the interpreter released, on one thread) while
    the previous slice is written, so the evaluation hides behind the insert, the longer of
    the two (docs/benchmarks.md). The rows go in one transaction, audited once.
    """
    require_purpose(gw)
    started = time.perf_counter()
    row = PriorityRun(
        id=new_id("prun"), policy_id=policy.key, index_version=index_version, as_of=as_of,
        run_by=_user(gw), unavailable=unavailable(gw, policy),
    )  # fmt: skip
    gw.session.add(row)
    gw.session.flush()
    tallies: list[pa.RecordBatch] = []

    def chunks() -> Iterator[dict[str, Any]]:
        with (
            evaluate.stream(policy, table, _ATTACH, threads=1, batch_rows=SLICE) as reader,
            Prefetch(iter(reader), depth=2, name="immos-priority-score") as batches,
        ):
            for batch in batches:
                tallies.append(batch.select(["tier", "lead", "actionable"]))
                # No run_id: insert_partition gives every row the run (partition=row.id).
                yield {n: batch.column(n) for n in batch.schema.names}

    event = PrioritiesScored(object_type="priority_scores", run_id=row.id, policy_id=policy.key,
                             index_version=index_version, count=table.num_rows)  # fmt: skip
    gw.insert_bulk(PriorityScore, chunks(), event, partition=row.id)
    row.persons = table.num_rows
    row.counts = _counts(pa.Table.from_batches(tallies) if tallies else None)
    row.finished_at, row.seconds = utcnow(), round(time.perf_counter() - started, 3)
    return row


def unavailable(gw: Gateway, policy: Policy) -> dict[str, str]:
    """Features the policy names that are unknown in a run, each with why."""
    terms = gw.agreements.terms
    out = {}
    for name in policy.features:
        feature = FEATURES[name]
        if not feature.collected:
            out[name] = "no source in this system carries it: an officer must weigh it in person"
        for source in feature.sources:
            if source in terms and PURPOSE not in terms[source].purposes:
                out[name] = f"source {source!r}: its agreement does not permit {PURPOSE}"
            elif source not in terms:
                out[name] = f"source {source!r} is not registered"
    return out


# -- overrides ------------------------------------------------------------------------------


def override(
    gw: Gateway, person_id: str, to_tier: str, justification: str, policy_name: str | None = None
) -> PriorityOverride:
    """Raise or lower a person's tier under the policy in force, with a justification."""
    require_purpose(gw)
    if gw.ctx.actor.role not in (Role.OFFICER, Role.SUPERVISOR):
        raise AccessRefused("only an officer or a supervisor may override a tier")
    if len(justification.strip()) < 20:
        raise ValidationFailed("an override needs a justification of at least 20 characters")
    from immigrationos.priority.views import current_score

    policy_row = in_force(gw, policy_name)
    _, policy = policy_of(gw, policy_row.id)
    current = current_score(gw, person_id, policy_row.id)
    if to_tier not in {t.id for t in policy.tiers}:
        raise ValidationFailed(f"unknown tier {to_tier!r} in {policy.key}")
    if to_tier == current.tier:
        raise ValidationFailed(f"the person is already in tier {to_tier!r}")
    direction = "raise" if policy.tier(to_tier).rank < current.tier_rank else "lower"
    _withdraw(gw, person_id, policy_row.name)
    row = PriorityOverride(
        id=new_id("povr"), person_id=person_id, policy_name=policy_row.name,
        run_id=current.run_id, from_tier=current.tier, to_tier=to_tier, direction=direction,
        justification=justification.strip(), decided_by=gw.ctx.actor.user_id,
    )  # fmt: skip
    gw.add(row)
    emit(gw.session, PriorityOverridden(
        object_type="priority_overrides", object_ids=[row.id, person_id], override_id=row.id,
        direction=direction, from_tier=current.tier, to_tier=to_tier), gw.ctx)  # fmt: skip
    return row


def _withdraw(gw: Gateway, person_id: str, policy_name: str) -> None:
    gw.execute(
        update(PriorityOverride)
        .where(
            PriorityOverride.person_id == person_id,
            PriorityOverride.policy_name == policy_name,
            PriorityOverride.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=utcnow()),
        PriorityOverride,
        params={"person": person_id, "superseded": True},
    )
