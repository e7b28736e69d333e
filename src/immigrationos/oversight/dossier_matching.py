"""The dossier's matching sections: entity-resolution models and departure matching.

These are the parts that decide who a record is, so the inspector needs what is known of their
accuracy. The running system keeps no ground truth, so the only accuracy it holds is what was
stored with a model; a source checkout adds the published benchmark results (measured on
synthetic worlds), labelled as such.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from immigrationos.departures.models import DeadLetter, InboxEntry
from immigrationos.oversight.ai_act import CHECKOUT
from immigrationos.oversight.dossier_audit import AuditCounts
from immigrationos.resolution.models import ResolutionModel, ResolutionRun
from immigrationos.resolution.service import shipped_model

#: What of a model's recorded training the dossier shows.
TRAINING_KEYS = (
    "records",
    "sampled_records",
    "labels",
    "labels_used_for_m",
    "em_rules",
    "untrained_levels",
)
#: The columns kept from each published benchmark's rows.
RESOLUTION_BENCHMARK = (
    "system",
    "records",
    "pairwise_f1",
    "bcubed_f1",
    "false_merge_pairs",
    "false_split_pairs",
    "culture_false_merge_ratio",
    "worst_culture",
)
DEPARTURES_BENCHMARK = (
    "system",
    "events",
    "precision_verified",
    "recall",
    "verified",
    "review",
    "unmatched",
)


def _benchmark(name: str, keep: Sequence[str]) -> dict[str, Any] | None:
    """Published benchmark results (a source checkout's ``benchmarks/results``), if present."""
    if CHECKOUT is None:
        return None
    path = CHECKOUT / "benchmarks" / "results" / f"{name}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [{k: r.get(k) for k in keep if k in r} for r in data.get("rows", [])]
    return {
        "file": f"benchmarks/results/{name}.json",
        "title": data.get("title"),
        "finished_at": data.get("finished_at"),
        "rows": rows,
    }


def _model(m: ResolutionModel, active: str | None, users: dict[str, str]) -> dict[str, Any]:
    doc = m.document or {}
    training = doc.get("training", {})
    blocking = doc.get("blocking_analysis", [])
    return {
        "id": m.id,
        "origin": m.origin,
        "active": m.id == active,
        "trained_at": m.trained_at.isoformat(timespec="seconds"),
        "trained_by": users.get(m.trained_by or "", m.trained_by),
        "link_weight": doc.get("link_weight"),
        "review_weight": doc.get("review_weight"),
        "training": {k: training.get(k) for k in TRAINING_KEYS if k in training},
        "blocking_rules": [
            {"rule": b.get("rule"), "cumulative_recall": b.get("cumulative_recall")}
            for b in blocking
        ],
        "evaluation": m.evaluation or None,
    }


def _latest_run(session: Session) -> dict[str, Any] | None:
    """The newest finished resolution run: the person index in use."""
    newest = (
        select(ResolutionRun)
        .where(ResolutionRun.status == "finished")
        .order_by(ResolutionRun.started_at.desc())
        .limit(1)
    )
    run = session.scalars(newest).first()
    if run is None:
        return None
    return {
        "id": run.id,
        "model_id": run.model_id,
        "backend": run.backend,
        "records": run.records,
        "pairs": run.pairs,
        "persons": run.persons,
        "finished_at": run.finished_at.isoformat() if run.finished_at is not None else None,
        "stats": run.stats or {},
    }


def resolution_section(
    session: Session, audit: AuditCounts, users: dict[str, str]
) -> dict[str, Any]:
    """Every stored matching model (the newest is active), runs, and human review decisions."""
    by_age = select(ResolutionModel).order_by(ResolutionModel.trained_at)
    models = list(session.scalars(by_age))
    active = models[-1].id if models else None
    runs = session.scalar(select(func.count()).select_from(ResolutionRun)) or 0
    return {
        "shipped_model": shipped_model().version,
        "models": [_model(m, active, users) for m in models],
        "runs": runs,
        "latest_run": _latest_run(session),
        "review_decisions": audit.detail_counts("resolution.review_decided", "decision"),
        "published_benchmark": _benchmark("resolution", RESOLUTION_BENCHMARK),
    }


def _count_by(session: Session, column: Any) -> dict[Any, int]:
    """Rows of ``column``'s table per value of the column."""
    return dict(session.execute(select(column, func.count()).group_by(column)).all())


def departures_section(session: Session) -> dict[str, Any]:
    """Departure events by band and transport, dead letters, and the published accuracy."""
    bands = _count_by(session, InboxEntry.band)
    transports = _count_by(session, InboxEntry.transport)
    dead = session.scalar(select(func.count()).select_from(DeadLetter)) or 0
    return {
        "events": sum(bands.values()),
        "bands": bands,
        "transports": transports,
        "dead_letters": dead,
        "accuracy_stored": False,
        "accuracy_note": "The running system keeps no ground truth, so it stores no matcher "
        "accuracy; departures/accuracy.py measures it against a synthetic world's truth "
        "(tests and the departure benchmark).",
        "published_benchmark": _benchmark("departures", DEPARTURES_BENCHMARK),
    }
