"""Python derivers: typed hooks that turn nested source records into ontology facts.

Flat mappings compile to SQL (:mod:`.mapping`); records with nested lists (a court case with
its proceedings, hearings, decisions and appeals) need code. A deriver is registered by name
and named from a definition (``deriver: court``); the project's own court deriver is built
through the same registry an agency would use for its own sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from immigrationos.sources.mapping import fact_id

#: One new record as derivers see it: id, source id, validated payload, ingest time.
Record = tuple[str, str, dict[str, Any], datetime]
Rows = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Deriver:
    """A named deriver, the tables it writes (parents first), and its function."""

    name: str
    tables: tuple[str, ...]
    derive: Callable[[Record], Rows]


DERIVERS: dict[str, Deriver] = {}


def register(deriver: Deriver) -> Deriver:
    """Make a deriver available to source definitions by its name."""
    DERIVERS[deriver.name] = deriver
    return deriver


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _at(day: Any, clock: Any) -> datetime | None:
    if not day:
        return None
    hour, _, minute = (clock or "09:00").partition(":")
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).replace(
        hour=int(hour), minute=int(minute or 0)
    )


def _provenance(record: Record) -> dict[str, Any]:
    record_id, source_id, _payload, seen = record
    return {
        "source_record_id": record_id,
        "source_id": source_id,
        "first_seen_at": seen,
        "last_seen_at": seen,
    }


def _proceedings(
    case_id: str, proceedings: list[dict[str, Any]], provenance: dict[str, Any]
) -> Iterator[tuple[str, Any]]:
    for p_index, proc in enumerate(proceedings or []):
        pid = f"{case_id}/p{p_index}"
        decision = proc.get("decision") or None
        yield (
            "proceedings",
            {
                **provenance,
                "id": pid,
                "court_case_id": case_id,
                "kind": proc.get("kind"),
                "opened_on": _day(proc.get("opened_on")),
                "closed_on": _day(decision.get("decided_on")) if decision else None,
            },
        )
        for h_index, hearing in enumerate(proc.get("hearings") or []):
            yield (
                "hearings",
                {
                    **provenance,
                    "id": f"{pid}/h{h_index}",
                    "proceeding_id": pid,
                    "scheduled_at": _at(hearing.get("date"), hearing.get("time")),
                    "hearing_type": hearing.get("type"),
                    "location": hearing.get("location"),
                },
            )
        if decision:
            did = f"{pid}/d"
            yield (
                "court_decisions",
                {
                    **provenance,
                    "id": did,
                    "proceeding_id": pid,
                    "decision_type": decision.get("type"),
                    "decided_on": _day(decision.get("decided_on")),
                    "vd_deadline": _day(decision.get("vd_deadline")),
                    "protected_country": decision.get("protected_country"),
                    "details": {
                        k: v
                        for k, v in decision.items()
                        if k not in {"type", "decided_on", "vd_deadline", "protected_country"}
                    },
                },
            )
            appeal = proc.get("appeal") or None
            if appeal:
                yield (
                    "appeals",
                    {
                        **provenance,
                        "id": f"{did}/a",
                        "decision_id": did,
                        "filed_on": _day(appeal.get("filed_on")),
                        "decided_on": _day(appeal.get("decided_on")),
                        "outcome": appeal.get("outcome") or "pending",
                    },
                )


def derive_court(record: Record) -> Rows:
    """A court case record → the case, its proceedings, hearings, decisions and appeals."""
    record_id, _source, payload, _seen = record
    case_id = fact_id(record_id, "court_cases")
    rows: Rows = {
        "court_cases": [
            {
                "id": case_id,
                **_provenance(record),
                "case_no": payload.get("case_no"),
                "charge": payload.get("charge"),
                "nta_served_on": _day(payload.get("nta_served_on")),
            }
        ]
    }
    for table, row in _proceedings(case_id, payload.get("proceedings") or [], _provenance(record)):
        if table == "hearings" and row["scheduled_at"] is None:
            continue
        rows.setdefault(table, []).append(row)
    return rows


register(
    Deriver(
        "court",
        ("court_cases", "proceedings", "hearings", "court_decisions", "appeals"),
        derive_court,
    )
)
