"""A resolution run: records in, a new version of the person index out.

Plan, then write: :func:`resolve_table` is the pure part (features, prediction, constrained
clustering) and also what the benchmark times; :func:`run` adds the stored model, the human
decisions, stable ids, and writes persons, links, events, the review queue, golden records
and the person ids of every fact, all through the gateway in the caller's transaction.
"""

from __future__ import annotations

import importlib.resources
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow as pa
from sqlalchemy import Table, select, update

from immigrationos.audit.chain import emit
from immigrationos.audit.events import ModelTrained, ResolutionRan
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ValidationFailed
from immigrationos.core.ids import content_id, new_id
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle.models import Document, EnforcementCase
from immigrationos.persons.models import Person, RecordLink
from immigrationos.resolution import linking, records
from immigrationos.resolution.cluster import Clustering, IdPlan, Traits, cluster, plan_ids
from immigrationos.resolution.golden import corrected, golden_record, person_columns
from immigrationos.resolution.model import ModelDoc, Parameters, probability, term_frequencies
from immigrationos.resolution.models import MatchReview, PersonEvent, ResolutionModel, ResolutionRun
from immigrationos.store import bulk
from immigrationos.store.base import Base

Progress = Callable[[str], None]
Corrections = Callable[[list[str]], list[dict[str, Any]]]
SHIPPED_MODEL = "person_model.json"


def shipped_model() -> ModelDoc:
    """The model shipped with the project (trained on a synthetic world; see docs)."""
    text = importlib.resources.files("immigrationos.resolution").joinpath(SHIPPED_MODEL).read_text()
    return ModelDoc.from_json(json.loads(text))


@dataclass
class Resolved:
    """The outcome of clustering one table of records."""

    features: pa.Table
    pairs: pa.Table
    clustering: Clustering
    seconds: dict[str, float] = field(default_factory=dict)
    doc: ModelDoc | None = None
    """The model as applied (its prior scaled to the input size)."""


def resolve_table(
    raw: pa.Table,
    doc: ModelDoc,
    backend: linking.Backend,
    must_link: list[tuple[str, str]] | None = None,
    cannot_link: list[tuple[str, str]] | None = None,
    progress: Progress | None = None,
    held: Iterable[str] = (),
) -> Resolved:
    """Features, blocked prediction and constrained clustering of ``raw`` records (``held``
    records are linked by a person's decision only, see :func:`cluster`)."""
    say = progress or (lambda _stage: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    say("normalising names")
    feats = records.features(raw)
    doc = doc.for_records(feats.num_rows)
    timings["features"] = time.perf_counter() - started
    say("scoring candidate pairs")
    pairs = linking.predict(feats, doc, backend, doc.review_weight)
    timings["predict"] = time.perf_counter() - started - sum(timings.values())
    say("clustering")
    edges = zip(
        pairs.column("unique_id_l").to_pylist(),
        pairs.column("unique_id_r").to_pylist(),
        pairs.column("match_weight").to_pylist(),
        strict=True,
    )
    clustering = cluster(
        feats.column("unique_id").to_pylist(),
        edges,
        doc.link_weight,
        must_link or [],
        cannot_link or [],
        held,
        traits_of(feats, doc),
    )
    timings["cluster"] = time.perf_counter() - started - sum(timings.values())
    return Resolved(feats, pairs, clustering, timings, doc)


def traits_of(feats: pa.Table, doc: ModelDoc) -> Traits:
    """Each record's values of what a person has one of (:meth:`Parameters.traits`), for
    clustering to check whole groups before joining them, weighed as the model weighs a
    disagreement."""
    used = Parameters(doc).traits()
    defaulted = feats.column("dob_default").to_pylist()
    columns = []
    for _, column, _ in used:
        values = feats.column(column).to_pylist()
        if column == "dob":
            values = [None if d else v for v, d in zip(values, defaulted, strict=True)]
        columns.append([v or None for v in values])
    ids = feats.column("unique_id").to_pylist()
    return Traits(
        weights=tuple(weight for _, _, weight in used),
        values=dict(zip(ids, zip(*columns, strict=True), strict=True)),
    )


# -- models -----------------------------------------------------------------------------------


def active_model(gateway: Gateway) -> ModelDoc:
    """The newest stored model, or the shipped one (stored on first use)."""
    row = gateway.session.scalars(
        select(ResolutionModel).order_by(ResolutionModel.trained_at.desc()).limit(1)
    ).first()
    if row is not None:
        return ModelDoc.from_json(row.document)
    doc = shipped_model()
    store_model(gateway, doc, origin="shipped")
    return doc


def store_model(gateway: Gateway, doc: ModelDoc, origin: str = "trained") -> str:
    """Save ``doc`` (idempotent by version) and audit it."""
    if gateway.session.get(ResolutionModel, doc.version) is None:
        gateway.session.add(
            ResolutionModel(
                id=doc.version,
                document=doc.to_json(),
                origin=origin,
                trained_by=gateway.ctx.actor.user_id,
            )
        )
        gateway.session.flush()
        emit(
            gateway.session,
            ModelTrained(
                object_type="resolution_models",
                object_ids=[doc.version],
                model_id=doc.version,
                records=int(doc.training.get("records", 0)),
                labels=int(doc.training.get("labels", 0)),
            ),
            gateway.ctx,
        )
    return doc.version


def decided_pairs(gateway: Gateway) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Must-link and cannot-link pairs from every decided review."""
    rows = gateway.rows(
        select(MatchReview.record_l, MatchReview.record_r, MatchReview.decision).where(
            MatchReview.status == "decided"
        ),
        MatchReview,
        params={"job": "entity resolution: review decisions"},
    )
    must = [(a, b) for a, b, d in rows if d == "match"]
    cannot = [(a, b) for a, b, d in rows if d == "non-match"]
    return must, cannot


def redress_exclusions(gateway: Gateway) -> Any:
    """What redress takes out of matching (:func:`immigrationos.oversight.disputes.exclusions`):
    values disputed or struck (``for_matching``), the records whose links are disputed
    (``held``: linked only by a person's decision), and accepted corrections (``for_golden``,
    ``corrections``). Read under the caller's purpose; imported late, since redress reads the
    resolution service too."""
    from immigrationos.oversight.disputes import exclusions

    return exclusions(gateway)


def train_model(gateway: Gateway, raw: pa.Table | None = None) -> ModelDoc:
    """Train on the current records plus the review decisions; store and return the model."""
    if raw is None:
        raw = records.extract(gateway).table
    if raw.num_rows < 50:
        raise ValidationFailed(f"too few person records to train on ({raw.num_rows}); ingest first")
    must, cannot = decided_pairs(gateway)
    labels = [(a, b, 1.0) for a, b in must] + [(a, b, 0.0) for a, b in cannot]
    doc = linking.train(records.features(raw), labels)
    store_model(gateway, doc)
    return doc


# -- the run ----------------------------------------------------------------------------------


@dataclass
class RunReport:
    run_id: str
    model_id: str
    backend: str
    records: int
    persons: int
    pairs: int
    plan: IdPlan
    reviews_queued: int
    cases_held: int
    withheld: dict[str, str]
    seconds: dict[str, float]
    prior: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "run (person-index version)": self.run_id,
            "model": self.model_id,
            "backend": self.backend,
            "records resolved": self.records,
            "persons": self.persons,
            "scored pairs": self.pairs,
            "persons created": len(self.plan.created),
            "persons kept": len(self.plan.kept),
            "persons merged away": len(self.plan.merged),
            "persons split": len(self.plan.splits),
            "records moved": self.plan.moved_records,
            "pairs queued for review": self.reviews_queued,
            "cases held for identity review": self.cases_held,
            "prior (two random records match)": f"{self.prior:.3g}",
            "sources left out": "; ".join(f"{k}: {v}" for k, v in self.withheld.items()) or "none",
            "seconds": round(sum(self.seconds.values()), 2),
        }


def run(
    gateway: Gateway,
    *,
    backend_name: str = "duckdb",
    spark_master: str = "local[2]",
    retrain: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    """Resolve every person-bearing record into the person index (a new index version)."""
    say = progress or (lambda _stage: None)
    started = time.perf_counter()
    say("reading records")
    extracted = records.extract(gateway)
    doc = train_model(gateway, extracted.table) if retrain else active_model(gateway)
    run_id = new_id("idx")
    gateway.session.add(
        ResolutionRun(
            id=run_id,
            model_id=doc.version,
            backend=backend_name,
            started_by=gateway.ctx.actor.user_id,
        )
    )
    gateway.session.flush()
    must, cannot = decided_pairs(gateway)
    excluded = redress_exclusions(gateway)
    backend = linking.backend_for(backend_name, spark_master)
    matching = excluded.for_matching(extracted.table)
    resolved = resolve_table(matching, doc, backend, must, cannot, say, excluded.held)
    seconds = {"read": 0.0, **resolved.seconds}
    seconds["read"] = time.perf_counter() - started - sum(resolved.seconds.values())
    say("writing the person index")
    write_started = time.perf_counter()
    previous = _current_links(gateway)
    existing = _ids(gateway, select(Person.id), Person)
    plan = plan_ids(resolved.clustering.members(), previous, existing)
    applied = resolved.doc or doc
    golden_raw = excluded.for_golden(extracted.table)
    writer = _Writer(
        gateway, run_id, applied, golden_raw, resolved, plan, previous, excluded.corrections
    )
    writer.write()
    bulk.analyze(gateway.session.connection())  # persons, links and every fact's owner changed
    seconds["write"] = time.perf_counter() - write_started
    report = RunReport(
        run_id=run_id,
        model_id=doc.version,
        backend=backend_name,
        records=extracted.table.num_rows,
        persons=len(set(plan.person_of.values())),
        pairs=resolved.pairs.num_rows,
        plan=plan,
        reviews_queued=writer.reviews_queued,
        cases_held=writer.cases_held,
        withheld=extracted.withheld,
        seconds={k: round(v, 2) for k, v in seconds.items()},
        prior=float(applied.splink["probability_two_random_records_match"]),
    )
    _finish(gateway, report)
    return report


def _finish(gateway: Gateway, report: RunReport) -> None:
    row = gateway.session.get(ResolutionRun, report.run_id)
    assert row is not None
    row.status = "finished"
    row.finished_at = utcnow()
    row.records, row.pairs, row.persons = report.records, report.pairs, report.persons
    row.stats = report.summary() | {"seconds_by_step": report.seconds}
    emit(
        gateway.session,
        ResolutionRan(
            object_type="resolution_runs",
            object_ids=[report.run_id],
            run_id=report.run_id,
            model_id=report.model_id,
            backend=report.backend,
            records=report.records,
            persons=report.persons,
            created=len(report.plan.created),
            merged=len(report.plan.merged),
            split=len(report.plan.splits),
            reviews_queued=report.reviews_queued,
            withheld_sources=report.withheld,
        ),
        gateway.ctx,
    )


def _current_links(gateway: Gateway) -> dict[str, str]:
    rows = gateway.rows(
        select(RecordLink.source_record_id, RecordLink.person_id).where(
            RecordLink.unlinked_at.is_(None)
        ),
        RecordLink,
        params={"job": "entity resolution: current links"},
    )
    return {r[0]: r[1] for r in rows}


class _Writer:
    """Writes one run's plan: persons, links, events, reviews, golden records, fact owners."""

    def __init__(
        self,
        gateway: Gateway,
        run_id: str,
        doc: ModelDoc,
        raw: pa.Table,
        resolved: Resolved,
        plan: IdPlan,
        previous: dict[str, str],
        corrections: Corrections | None = None,
    ) -> None:
        self.gw, self.run_id, self.doc, self.plan, self.previous = (
            gateway,
            run_id,
            doc,
            plan,
            previous,
        )
        self.raw = raw
        self.resolved = resolved
        self.params = Parameters(doc)
        self.reviews_queued = 0
        self.cases_held = 0
        self.now = utcnow()
        self.corrections = corrections
        self.refresh: set[str] = set()
        """Persons whose golden record is rewritten even if no record moved (a correction)."""

    def write(self) -> None:
        changed = self._persons()
        self._links()
        self._events()
        self._reviews()
        self._golden(changed | self.refresh)
        self._fact_owners()

    # persons ------------------------------------------------------------------------------

    def _persons(self) -> set[str]:
        plan = self.plan
        rows = [
            {"id": pid, "status": "active", "index_version": self.run_id, "golden": {}}
            for pid in plan.created
        ]
        self.gw.insert_rows(
            Person,
            [
                {
                    **r,
                    "citizenship_status": "unknown",
                    "created_at": self.now,
                    "updated_at": self.now,
                }
                for r in rows
            ],
        )
        retired = [
            {"id": old, "status": "merged", "merged_into_id": new, "updated_at": self.now}
            for old, new in plan.merged.items()
        ]
        self.gw.update_rows(Person, retired)
        moved = {p for r, p in plan.person_of.items() if self.previous.get(r) != p}
        moved |= {
            self.previous[r]
            for r, p in plan.person_of.items()
            if r in self.previous and self.previous[r] != p
        }
        return (moved | set(plan.created)) - set(plan.merged)

    # links --------------------------------------------------------------------------------

    def _links(self) -> None:
        plan, previous = self.plan, self.previous
        changed = [r for r, p in plan.person_of.items() if previous.get(r) != p]
        if not changed:
            return
        explanations = self._explanations(set(changed))
        ended = [
            {"id": content_id("lnk", r, previous[r]), "unlinked_at": self.now}
            for r in changed
            if r in previous
        ]
        self.gw.update_rows(RecordLink, ended)
        rows = [self._link_row(r, explanations.get(r, {"method": "singleton"})) for r in changed]
        # A record returning to a person it once left reuses that (record, person) row.
        ids = [r["id"] for r in rows]
        returning: set[str] = set()
        for start in range(0, len(ids), 10_000):
            chunk = ids[start : start + 10_000]
            returning |= _ids(
                self.gw, select(RecordLink.id).where(RecordLink.id.in_(chunk)), RecordLink
            )
        self.gw.update_rows(RecordLink, [r for r in rows if r["id"] in returning])
        self.gw.insert_rows(RecordLink, [r for r in rows if r["id"] not in returning])

    def _link_row(self, record: str, explanation: dict[str, Any]) -> dict[str, Any]:
        person = self.plan.person_of[record]
        return {
            "id": content_id("lnk", record, person),
            "source_record_id": record,
            "person_id": person,
            "method": explanation["method"],
            "match_weight": explanation.get("match_weight"),
            "match_probability": explanation.get("match_probability"),
            "model_version": self.doc.version,
            "explanation": explanation,
            "linked_at": self.now,
            "unlinked_at": None,
        }

    def _explanations(self, wanted: set[str]) -> dict[str, dict[str, Any]]:
        """Per record, the strongest pair that tied it into its person, with contributions."""
        pairs = self.resolved.pairs
        person_of = self.plan.person_of
        best: dict[str, tuple[float, int]] = {}
        lefts = pairs.column("unique_id_l").to_pylist()
        rights = pairs.column("unique_id_r").to_pylist()
        weights = pairs.column("match_weight").to_pylist()
        for i, (a, b, w) in enumerate(zip(lefts, rights, weights, strict=True)):
            if person_of.get(a) != person_of.get(b):
                continue
            for rec in (a, b):
                if rec in wanted and (rec not in best or w > best[rec][0]):
                    best[rec] = (w, i)
        out: dict[str, dict[str, Any]] = {}
        for rec, (w, i) in best.items():
            partner = rights[i] if lefts[i] == rec else lefts[i]
            out[rec] = {
                "method": "model" if w >= self.doc.link_weight else "review",
                "partner_record_id": partner,
                **_explanation(*self._weights(i), float(w)),
            }
        return out

    @cached_property
    def _mw(self) -> dict[str, list[Any]]:
        pairs = self.resolved.pairs
        return {c: pairs.column(c).to_pylist() for c in pairs.column_names if c.startswith("mw_")}

    def _weights(self, i: int) -> tuple[dict[str, float], dict[str, float]]:
        mws = {k[3:]: v[i] for k, v in self._mw.items() if not k.startswith("mw_tf_adj_")}
        tfs = {k[10:]: v[i] for k, v in self._mw.items() if k.startswith("mw_tf_adj_")}
        return mws, tfs

    # events -------------------------------------------------------------------------------

    def _events(self) -> None:
        plan = self.plan
        events: list[dict[str, Any]] = []
        for pid in plan.created:
            events.append(self._event("created", pid, []))
        for old, new in plan.merged.items():
            cases = self._cases_of([old])
            self._move_cases(old, new)
            events.append(self._event("merged", new, [old], cases, {"redirect": {old: new}}))
        for old, targets in plan.splits.items():
            cases = self._cases_of([old, *targets])
            held = self._hold(cases, old, targets) if cases else 0
            self.cases_held += held
            events.append(
                self._event(
                    "split", old, targets, cases, {"into": targets}, needs_review=bool(cases)
                )
            )
        self.gw.insert_rows(PersonEvent, events)

    def _event(
        self,
        kind: str,
        person: str,
        related: list[str],
        cases: list[str] | None = None,
        details: dict[str, Any] | None = None,
        needs_review: bool = False,
    ) -> dict[str, Any]:
        return {
            "id": content_id("pev", self.run_id, kind, person),
            "run_id": self.run_id,
            "kind": kind,
            "person_id": person,
            "related_ids": related,
            "case_ids": cases or [],
            "details": details or {},
            "needs_review": needs_review,
            "at": self.now,
        }

    def _cases_of(self, persons: list[str]) -> list[str]:
        stmt = select(EnforcementCase.id).where(EnforcementCase.person_id.in_(persons))
        return sorted(_ids(self.gw, stmt, EnforcementCase))

    def _move_cases(self, old: str, new: str) -> None:
        for model in (EnforcementCase, Document):
            self.gw.execute(
                update(model).where(model.person_id == old).values(person_id=new),
                model,
                params={"redirect": f"{old} -> {new}", "run": self.run_id},
            )

    def _hold(self, cases: list[str], old: str, targets: list[str]) -> int:
        reason = (
            f"identity review: person {old} was split into {', '.join(targets)} by resolution "
            f"run {self.run_id}; no step until the split is reviewed"
        )
        return self.gw.execute(
            update(EnforcementCase)
            .where(EnforcementCase.id.in_(cases))
            .values(identity_hold=reason),
            EnforcementCase,
            params={"identity_hold": self.run_id},
        )

    # reviews ------------------------------------------------------------------------------

    def _reviews(self) -> None:
        pairs = self.resolved.pairs
        person_of = self.plan.person_of
        lefts = pairs.column("unique_id_l").to_pylist()
        rights = pairs.column("unique_id_r").to_pylist()
        weights = pairs.column("match_weight").to_pylist()
        held = self.resolved.clustering.held
        conflicted = self.resolved.clustering.conflicted
        candidates = {}
        for i, (a, b, w) in enumerate(zip(lefts, rights, weights, strict=True)):
            decided = (
                w >= self.doc.link_weight
                and a not in held
                and b not in held
                and (a, b) not in conflicted
            )
            if decided or person_of.get(a) == person_of.get(b):
                continue
            key = content_id("rev", *sorted((a, b)))
            candidates[key] = (a, b, w, i)
        if not candidates:
            return
        known = _ids(self.gw, select(MatchReview.id), MatchReview)
        rows = []
        for key, (a, b, w, i) in candidates.items():
            if key in known:
                continue
            rows.append(
                {
                    "id": key,
                    "record_l": a,
                    "record_r": b,
                    "match_weight": round(float(w), 3),
                    "explanation": _explanation(*self._weights(i), float(w)),
                    "status": "open",
                    "run_id": self.run_id,
                    "model_id": self.doc.version,
                    "created_at": self.now,
                }
            )
        self.gw.insert_rows(MatchReview, rows)
        self.reviews_queued = len(rows)

    # golden records -----------------------------------------------------------------------

    def _golden(self, persons: set[str]) -> None:
        if not persons:
            return
        by_person: dict[str, list[dict[str, Any]]] = defaultdict(list)
        person_of = self.plan.person_of
        for row in self.raw.to_pylist():
            pid = person_of.get(row["unique_id"])
            if pid in persons:
                by_person[pid].append(row)
        rows = []
        for pid, members in by_person.items():
            golden = golden_record(members)
            if self.corrections is not None:
                fixes = self.corrections([str(m["unique_id"]) for m in members])
                golden = corrected(golden, fixes) if fixes else golden
            cols = person_columns(golden)
            cols["birth_date"] = _date(cols["birth_date"])
            rows.append(
                {
                    "id": pid,
                    **cols,
                    "golden": golden,
                    "index_version": self.run_id,
                    "updated_at": self.now,
                }
            )
        self.gw.update_rows(Person, rows)

    # fact owners ---------------------------------------------------------------------------

    def _fact_owners(self) -> None:
        """Point every fact at the person its source record now belongs to."""
        link = RecordLink.__table__
        for table in _owned_tables():
            owner = (
                select(link.c.person_id)
                .where(
                    link.c.source_record_id == table.c.source_record_id,
                    link.c.unlinked_at.is_(None),
                )
                .scalar_subquery()
            )
            model = _model_of(table)
            self.gw.execute(
                update(table)
                .where(table.c.person_id.is_distinct_from(owner))
                .values(person_id=owner),
                model,
                params={"owner": "record link", "run": self.run_id},
            )


def _ids(gateway: Gateway, stmt: Any, model: type[Base]) -> set[str]:
    """The first column of an audited select, as a set."""
    return {r[0] for r in gateway.rows(stmt, model, params={"job": "entity resolution"})}


def _owned_tables() -> list[Table]:
    return [
        t
        for t in Base.metadata.sorted_tables
        if "person_id" in t.c and "source_record_id" in t.c and t.name != "record_links"
    ]


def _model_of(table: Table) -> type[Base]:
    for mapper in Base.registry.mappers:
        if mapper.local_table is table:
            return mapper.class_
    raise LookupError(table.name)


def _explanation(weights: dict[str, float], tf: dict[str, float], weight: float) -> dict[str, Any]:
    """What a stored link or review keeps: the match weight and each comparison's weight.

    Level labels are not stored per record: :func:`model.expand` recovers them from the
    model version when the explanation is shown.
    """
    return {
        "match_weight": round(weight, 3),
        "match_probability": round(probability(weight), 6),
        "weights": {k: round(float(v), 4) for k, v in weights.items() if v},
        "tf": {k: round(float(v), 4) for k, v in tf.items() if v},
    }


def _date(text: str | None) -> Any:
    from datetime import date

    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


# -- reading the index --------------------------------------------------------------------------


def export_rows(
    gateway: Gateway, include_unlinked: bool = False
) -> list[tuple[str, str, str, str | None]]:
    """(record id, source, record key, person id) for every current link.

    With ``include_unlinked``, every person-bearing record is listed, person None when the
    record has no current link (not resolved yet).
    """
    from immigrationos.sources.models import SourceRecord

    link = RecordLink
    stmt = (
        select(SourceRecord.id, SourceRecord.source_id, SourceRecord.record_key, link.person_id)
        .join(link, (link.source_record_id == SourceRecord.id) & link.unlinked_at.is_(None),
              isouter=include_unlinked)
        .order_by(SourceRecord.source_id, SourceRecord.record_key)
    )  # fmt: skip
    rows = gateway.rows(stmt, SourceRecord, params={"job": "entity resolution: export"})
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def recent_runs(gateway: Gateway, limit: int = 20) -> list[dict[str, Any]]:
    runs = gateway.session.scalars(
        select(ResolutionRun).order_by(ResolutionRun.started_at.desc()).limit(limit)
    ).all()
    return [
        {
            "id": r.id,
            "model_id": r.model_id,
            "backend": r.backend,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "status": r.status,
            "records": r.records,
            "pairs": r.pairs,
            "persons": r.persons,
            "stats": r.stats,
        }
        for r in runs
    ]


def current_index(gateway: Gateway) -> tuple[pa.Table, dict[str, str], ModelDoc]:
    """What incremental linking needs: features of resolved records, their persons, the model."""
    extracted = records.extract(gateway)
    person_of = _current_links(gateway)
    raw = redress_exclusions(gateway).for_matching(extracted.table)
    if raw.num_rows:
        mask = pa.array([u in person_of for u in raw.column("unique_id").to_pylist()])
        raw = raw.filter(mask)
    return records.features(raw), person_of, active_model(gateway)


def build_link_index(gateway: Gateway) -> Any:
    """The in-memory index of the current person index, for incremental linking."""
    from immigrationos.resolution.incremental import LinkIndex

    features, person_of, doc = current_index(gateway)
    retired = _ids(gateway, select(Person.id).where(Person.status != "active"), Person)
    applied = doc.for_records(features.num_rows)
    return LinkIndex.build(features, person_of, applied, known_person_ids=retired)


def link_record(gateway: Gateway, raw: dict[str, Any], index: Any = None) -> dict[str, Any]:
    """Link one record to the index without a full run (see :mod:`.incremental`).

    ``raw`` holds person attributes (:data:`records.RAW_COLUMNS`); with ``record_id`` naming a
    stored source record, the attributes are read from it and the decision is written: a
    link to the matched person, or a new person (for ``new``, and for ``review`` with the
    uncertain pair queued). Without it the decision is only reported (and audited).
    """
    from immigrationos.audit.events import RecordLinked
    from immigrationos.sources.models import SourceRecord

    if index is None:
        index = build_link_index(gateway)
    record_id = raw.get("record_id")
    if record_id:
        current = _current_links(gateway)
        if str(record_id) in current:
            raise ValidationFailed(
                f"record {record_id} is already in person {current[str(record_id)]}; "
                "`immos resolve run` re-resolves linked records"
            )
        raw = records.raw_of(gateway, gateway.get(SourceRecord, str(record_id)))
    else:
        raw = {"unique_id": "query", **raw}
    decision = unless_held(index.link(raw), redress_exclusions(gateway).held)
    out = decision.to_json()
    out["persisted"] = False
    if record_id:
        out["person_id"] = _persist_link(gateway, index, raw, decision)
        out["persisted"] = True
    emit(
        gateway.session,
        RecordLinked(
            object_type="source_records",
            object_ids=[str(record_id)] if record_id else [],
            band=decision.band,
            person_id=out.get("person_id"),
            match_weight=decision.match_weight,
        ),
        gateway.ctx,
    )
    return out


def _persist_link(gateway: Gateway, index: Any, raw: dict[str, Any], decision: Any) -> str:
    from immigrationos.resolution.cluster import new_person_id

    record_id = raw["unique_id"]
    now = utcnow()
    doc: ModelDoc = index.doc
    if decision.band == "linked" and decision.person_id:
        person = decision.person_id
    else:
        existing = _ids(gateway, select(Person.id), Person)
        person = new_person_id([record_id], existing)
        gateway.insert_rows(
            Person,
            [{"id": person, "status": "active", "golden": {}, "citizenship_status": "unknown",
              "created_at": now, "updated_at": now}],
        )  # fmt: skip
        gateway.insert_rows(
            PersonEvent,
            [{"id": content_id("pev", "link", record_id), "kind": "created", "person_id": person,
              "related_ids": [], "case_ids": [], "details": {"incremental": True},
              "needs_review": False, "at": now}],
        )  # fmt: skip
    explanation = {"method": "incremental", **decision.explanation}
    gateway.insert_rows(
        RecordLink,
        [{"id": content_id("lnk", record_id, person), "source_record_id": record_id,
          "person_id": person, "method": "incremental", "match_weight": decision.match_weight,
          "match_probability": decision.probability, "model_version": doc.version,
          "explanation": explanation, "linked_at": now, "unlinked_at": None}],
    )  # fmt: skip
    partner = decision.explanation.get("partner_record_id")
    if decision.band == "review" and partner:
        gateway.insert_rows(
            MatchReview,
            [{"id": content_id("rev", *sorted((record_id, partner))), "record_l": record_id,
              "record_r": partner, "match_weight": decision.match_weight or 0.0,
              "explanation": decision.explanation, "status": "open", "model_id": doc.version,
              "created_at": now}],
        )  # fmt: skip
    index.add(record_id, records.feature_row(raw), person)
    for table in _owned_tables():
        gateway.execute(
            update(table).where(table.c.source_record_id == record_id).values(person_id=person),
            _model_of(table),
            params={"owner": "incremental link", "record": record_id},
        )
    members = [raw]
    golden = golden_record(members) if decision.band != "linked" else None
    if golden is not None:
        cols = person_columns(golden)
        cols["birth_date"] = _date(cols["birth_date"])
        gateway.update_rows(Person, [{"id": person, **cols, "golden": golden, "updated_at": now}])
    return person


def unless_held(decision: Any, held: dict[str, str]) -> Any:
    """An incremental link to a held record (a record link disputed under redress) is not
    made by the model alone: it becomes a review, saying why."""
    partner = decision.explanation.get("partner_record_id")
    if decision.band == "linked" and partner in held:
        decision.band = "review"
        decision.explanation = {**decision.explanation, "reason": held[partner]}
    return decision


# -- re-resolving some persons (a redress decision) -----------------------------------------------


def reresolve(gateway: Gateway, person_ids: Iterable[str], *, reason: str) -> RunReport:
    """Re-cluster the records of ``person_ids`` alone and write the result as an index version.

    What a redress decision needs: its cannot-links and corrections take effect at once,
    without a full run and without touching anyone else. Every pair of the persons' records
    is scored in Python with the stored model (:class:`Parameters`, which agrees with Splink)
    at the weights a full run gives: the prior scaled to the whole index and the whole index's
    term frequencies. Clustering then takes the review decisions and the held records as a
    full run does, ids stay stable (:func:`plan_ids`), and the run's writer records links,
    events (a split holds the person's cases for identity review), golden records with the
    accepted corrections, and the facts' owners. A record split off becomes a person of its
    own until the next full run places it. The run is stored with backend ``subset`` and
    ``reason`` in its statistics.
    """
    started = time.perf_counter()
    wanted = set(person_ids)
    extracted = records.extract(gateway)
    current = _current_links(gateway)
    excluded = redress_exclusions(gateway)
    everyone = records.features(excluded.for_matching(extracted.table))
    doc = active_model(gateway).for_records(everyone.num_rows)
    ids = extracted.table.column("unique_id").to_pylist()
    mask = pa.array([current.get(u) in wanted for u in ids], pa.bool_())
    raw, feats = extracted.table.filter(mask), everyone.filter(mask)
    pairs = _all_pairs(feats, doc, term_frequencies(everyone))
    must, cannot = decided_pairs(gateway)
    edges = zip(
        pairs.column("unique_id_l").to_pylist(),
        pairs.column("unique_id_r").to_pylist(),
        pairs.column("match_weight").to_pylist(),
        strict=True,
    )
    members = feats.column("unique_id").to_pylist()
    clustering = cluster(
        members, edges, doc.link_weight, must, cannot, excluded.held, traits_of(feats, doc)
    )
    previous = {r: current[r] for r in members}
    plan = plan_ids(clustering.members(), previous, _ids(gateway, select(Person.id), Person))
    run_id = new_id("idx")
    gateway.session.add(
        ResolutionRun(
            id=run_id,
            model_id=doc.version,
            backend="subset",
            started_by=gateway.ctx.actor.user_id,
        )
    )
    gateway.session.flush()
    resolved = Resolved(feats, pairs, clustering, {}, doc)
    golden_raw = excluded.for_golden(raw)
    writer = _Writer(
        gateway, run_id, doc, golden_raw, resolved, plan, previous, excluded.corrections
    )
    writer.refresh = set(plan.person_of.values())
    writer.write()
    report = RunReport(
        run_id=run_id,
        model_id=doc.version,
        backend="subset",
        records=raw.num_rows,
        persons=len(set(plan.person_of.values())),
        pairs=pairs.num_rows,
        plan=plan,
        reviews_queued=writer.reviews_queued,
        cases_held=writer.cases_held,
        withheld=extracted.withheld,
        seconds={"total": round(time.perf_counter() - started, 2)},
        prior=float(doc.splink["probability_two_random_records_match"]),
    )
    _finish(gateway, report)
    row = gateway.session.get(ResolutionRun, run_id)
    assert row is not None
    row.stats = {**row.stats, "reason": reason, "persons re-resolved": sorted(wanted)}
    return report


def _all_pairs(feats: pa.Table, doc: ModelDoc, tf: dict[str, dict[str, float]]) -> pa.Table:
    """Every pair of ``feats`` scored in Python, in the shape Splink's predictions have
    (``unique_id_l``, ``unique_id_r``, ``match_weight``, ``mw_<comparison>``, …)."""
    params = Parameters(doc)
    rows = feats.to_pylist()
    out: dict[str, list[Any]] = defaultdict(list)
    for i, left in enumerate(rows):
        for right in rows[i + 1 :]:
            score = params.score(left, right, tf)
            out["unique_id_l"].append(left["unique_id"])
            out["unique_id_r"].append(right["unique_id"])
            out["match_weight"].append(score.match_weight)
            out["match_probability"].append(score.probability)
            for c in score.contributions:
                out[f"mw_{c.comparison}"].append(c.weight)
                out[f"mw_tf_adj_{c.comparison}"].append(c.tf_adjustment)
    if not out:
        names = ("unique_id_l", "unique_id_r", "match_weight", "match_probability")
        types = (pa.string(), pa.string(), pa.float64(), pa.float64())
        return pa.table({n: pa.array([], t) for n, t in zip(names, types, strict=True)})
    return pa.table(dict(out))
