"""Golden records: per-attribute survivorship with provenance, conflicts kept visible.

For each attribute the surviving value is the one most records agree on (after
normalisation), ties broken by source priority and then by the newest record; the value is
shown as the chosen record wrote it, with that record, its source and its date. Every other
distinct value stays in ``conflicts`` with the records that carry it, so a reader sees at
once that, say, two birth dates are on file. A birth date on 1 January loses to any other
date of the same year (a common default for "unknown day").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from immigrationos.resolution.names import fold

#: Sources whose identity data is checked against a document first (lower = preferred).
SOURCE_PRIORITY: dict[str, int] = {
    "arrivals": 0,
    "visas": 1,
    "citizenship_evidence": 2,
    "benefits": 3,
    "court": 4,
    "departures": 5,
    "encounters": 6,
    "convictions": 7,
}
ATTRIBUTES: dict[str, Callable[[str], str]] = {
    "given_name": fold,
    "middle_name": fold,
    "family_name": fold,
    "birth_date": lambda v: v[:10],
    "sex": str.upper,
    "nationality": str.upper,
    "a_number": lambda v: v.replace(" ", "").upper(),
    "passport_no": lambda v: v.replace(" ", "").upper(),
    "fin": str.strip,
    "itin": str.strip,
    "national_id": str.strip,
}


def _rank(record: Mapping[str, Any]) -> tuple[int, str]:
    return (
        SOURCE_PRIORITY.get(str(record.get("source_id")), 50),
        str(record.get("observed_on") or ""),
    )


def _provenance(record: Mapping[str, Any], value: Any) -> dict[str, Any]:
    return {
        "value": value,
        "record_id": record["unique_id"],
        "source_id": record.get("source_id"),
        "record_key": record.get("record_key"),
        "observed_on": record.get("observed_on"),
    }


def _day(record: Mapping[str, Any]) -> int:
    """The record's date as YYYYMMDD (0 when unknown), for "newest first"."""
    text = str(record.get("observed_on") or "")
    return int(text[:10].replace("-", "")) if text[:4].isdigit() else 0


def _ordered(attribute: str, groups: Mapping[str, list[Mapping[str, Any]]]) -> list[str]:
    """Values by: not a 1 January default, most support, best source, newest record."""
    real_years = {k[:4] for k in groups if not k.endswith("-01-01")}

    def order(key: str) -> tuple[bool, int, int, int]:
        default = attribute == "birth_date" and key.endswith("-01-01") and key[:4] in real_years
        members = groups[key]
        priority = min(SOURCE_PRIORITY.get(str(r.get("source_id")), 50) for r in members)
        return (default, -len(members), priority, -max(_day(r) for r in members))

    return sorted(groups, key=order)


def survive(attribute: str, records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The surviving value of ``attribute`` with its provenance and the conflicting values."""
    norm = ATTRIBUTES[attribute]
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        value = record.get(attribute)
        if value:
            groups[norm(str(value))].append(record)
    if not groups:
        return None
    keys = _ordered(attribute, groups) if len(groups) > 1 else list(groups)
    chosen = min(groups[keys[0]], key=lambda r: (_rank(r)[0], r["unique_id"]))
    out = _provenance(chosen, chosen.get(attribute))
    out["support"] = len(groups[keys[0]])
    out["conflicts"] = [
        {**_provenance(groups[k][0], groups[k][0].get(attribute)), "support": len(groups[k])}
        for k in keys[1:]
    ]
    return out


def golden_record(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every attribute's surviving value for one person's records (see :func:`survive`)."""
    out: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        value = survive(attribute, records)
        if value is not None:
            out[attribute] = value
    out["sources"] = sorted({str(r.get("source_id")) for r in records})
    out["records"] = len(records)
    return out


def person_columns(golden: Mapping[str, Any]) -> dict[str, Any]:
    """The cached golden values for the ``persons`` table's columns."""

    def value(name: str, limit: int) -> Any:
        entry = golden.get(name)
        return str(entry["value"])[:limit] if entry else None

    birth = value("birth_date", 10)
    return {
        "given_name": value("given_name", 200),
        "middle_name": value("middle_name", 200),
        "family_name": value("family_name", 200),
        "birth_date": birth,
        "sex": value("sex", 1),
        "nationality": value("nationality", 3),
    }


#: Where a corrected value came from: a decided redress request, not a source system.
CORRECTION_SOURCE = "redress"


def corrected(
    golden: Mapping[str, Any], corrections: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """``golden`` with each accepted correction in place of the surviving value.

    A correction (``attribute``, ``value``, ``request_id``, ``decided_on``, ``fact_id``)
    carries the redress request as its provenance (source ``redress``); the value it replaces
    stays visible under ``conflicts``, as every outvoted value does. The last correction of
    an attribute wins.
    """
    out = dict(golden)
    for c in corrections:
        attribute = str(c["attribute"])
        previous = out.get(attribute)
        conflicts: list[dict[str, Any]] = []
        if isinstance(previous, dict):
            conflicts = [
                {k: v for k, v in previous.items() if k not in ("conflicts", "correction")},
                *previous.get("conflicts", []),
            ]
        out[attribute] = {
            "value": c["value"],
            "record_id": c["request_id"],
            "source_id": CORRECTION_SOURCE,
            "record_key": c["request_id"],
            "observed_on": c.get("decided_on"),
            "support": 0,
            "conflicts": conflicts,
            "correction": {
                "request_id": c["request_id"],
                "fact_id": c.get("fact_id"),
                "replaces": previous.get("value") if isinstance(previous, dict) else None,
            },
        }
    return out
