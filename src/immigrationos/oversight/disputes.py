"""Disputed facts: what a privacy officer can mark, and what redress keeps out while it is open.

The kinds of fact that can be disputed are data (:data:`FACT_KINDS`). :func:`exclusions` reads
every open and accepted dispute into :class:`Exclusions`, a pure object that prioritization
(``priority.features``), resolution (``resolution.service``) and the departure matcher
(``departures.matcher``) consult: disputed features become unknown, disputed values are no
evidence for a link, a disputed record link is never made by the model alone, and accepted
corrections override source values. The redress path itself is in :mod:`.redress`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from immigrationos.core.ids import canonical_json, sha256_hex
from immigrationos.departures.models import Departure
from immigrationos.facts.models import (
    Address,
    Admission,
    BenefitApplication,
    Conviction,
    CourtCase,
    Encounter,
)
from immigrationos.gateway.core import Gateway
from immigrationos.oversight.models import DisputedFact
from immigrationos.persons.models import Identifier, StatusEpisode
from immigrationos.sources.models import SourceRecord
from immigrationos.store.base import Base

# -- what can be marked disputed (the domain as data) --------------------------------------------


@dataclass(frozen=True)
class FactKind:
    """A kind of fact a privacy officer can mark disputed, and the table its rows live in."""

    kind: str
    model: type[Base]
    label: str
    matching: bool = False
    """The fact is matching evidence: left out of automated matching while disputed."""


FACT_KINDS: dict[str, FactKind] = {
    k.kind: k
    for k in (
        FactKind("record_link", SourceRecord, "a record linked to the person", matching=True),
        FactKind("identifier", Identifier, "an identifier", matching=True),
        FactKind("attribute", SourceRecord, "a name, birth date, sex or nationality as one "
                 "record gives it", matching=True),
        FactKind("conviction", Conviction, "a conviction"),
        FactKind("admission", Admission, "an admission"),
        FactKind("encounter", Encounter, "an encounter"),
        FactKind("benefit", BenefitApplication, "a benefit application"),
        FactKind("court_case", CourtCase, "a court case"),
        FactKind("departure", Departure, "a departure"),
        FactKind("address", Address, "an address"),
        FactKind("status", StatusEpisode, "a status episode"),
    )
}  # fmt: skip
#: Person attributes an ``attribute`` fact may name (the golden record's personal fields).
ATTRIBUTES = ("given_name", "middle_name", "family_name", "birth_date", "sex", "nationality")
#: Identifier kinds → the record column (and golden attribute) that carries them.
ID_COLUMNS = {
    "a_number": "a_number",
    "passport": "passport_no",
    "fin": "fin",
    "itin": "itin",
    "national_id": "national_id",
}

# -- exclusion: what prioritization and matching may not use ---------------------------------------


@dataclass(frozen=True)
class FactRow:
    """A disputed or decided fact as the exclusions use it."""

    id: str
    request_id: str
    person_id: str
    kind: str
    table_name: str
    row_id: str
    record_id: str | None
    source_id: str | None
    field: str | None
    disputed_value: str | None
    corrected_value: str | None
    status: str
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Exclusions:
    """The facts redress keeps out (open disputes, and what accepted decisions struck), and
    the corrections that override source values. Pure over the rows read by
    :func:`exclusions`; resolution, prioritization and the departure matcher ask it."""

    facts: tuple[FactRow, ...] = ()

    @property
    def key(self) -> str:
        """A fingerprint of every dispute and its status (a matcher built before is stale)."""
        return sha256_hex(canonical_json(sorted((f.id, f.status) for f in self.facts)))

    def open_facts(self) -> list[FactRow]:
        return [f for f in self.facts if f.status == "disputed"]

    @property
    def held(self) -> dict[str, str]:
        """Records whose person link is disputed → why (the model may not link them alone)."""
        return {
            f.row_id: f"disputed under redress request {f.request_id}"
            for f in self.facts
            if f.kind == "record_link" and f.status == "disputed"
        }

    def struck(self) -> dict[str, set[str]]:
        """Fact rows an accepted decision struck, by table (prioritization drops them)."""
        out: dict[str, set[str]] = defaultdict(set)
        for f in self.facts:
            if f.status == "accepted" and not FACT_KINDS[f.kind].matching:
                out[f.table_name].add(f.row_id)
        return dict(out)

    def for_matching(self, raw: pa.Table) -> pa.Table:
        """Raw person records without the values disputed or struck (no evidence for a link)."""
        return _blank(raw, [f for f in self.facts if f.status in ("disputed", "accepted")])

    def for_golden(self, raw: pa.Table) -> pa.Table:
        """Raw person records without the values an accepted decision struck."""
        return _blank(raw, [f for f in self.facts if f.status == "accepted"])

    def corrections(self, record_ids: list[str]) -> list[dict[str, Any]]:
        """Accepted corrected values given for any of ``record_ids`` (a person's records)."""
        wanted = set(record_ids)
        out = []
        for f in sorted(self.facts, key=lambda f: (str(f.decided_at or ""), f.id)):
            if f.status != "accepted" or not f.corrected_value or f.record_id not in wanted:
                continue
            attribute = f.field if f.kind == "attribute" else ID_COLUMNS.get(f.field or "")
            if attribute:
                decided_on = f.decided_at.date().isoformat() if f.decided_at else None
                out.append({"attribute": attribute, "value": f.corrected_value,
                            "request_id": f.request_id, "fact_id": f.id,
                            "decided_on": decided_on})  # fmt: skip
        return out


def _blank(raw: pa.Table, facts: list[FactRow]) -> pa.Table:
    """Set the disputed value of each fact's record to null (per column, in bulk)."""
    by_column: dict[str, set[str]] = defaultdict(set)
    others: dict[str, set[str]] = defaultdict(set)
    for f in facts:
        if not f.record_id:
            continue
        if f.kind == "attribute" and f.field in ATTRIBUTES:
            by_column[f.field].add(f.record_id)
        elif f.kind == "identifier" and f.field in ID_COLUMNS:
            by_column[ID_COLUMNS[f.field]].add(f.record_id)
        elif f.kind == "identifier" and f.field:
            others[f.record_id].add(f"{f.field}:{f.disputed_value}")
    if (not by_column and not others) or raw.num_rows == 0:
        return raw
    ids = raw.column("unique_id")
    for column, records in by_column.items():
        if column not in raw.column_names:
            continue
        mask = pc.is_in(ids, pa.array(sorted(records)))
        current = raw.column(column)
        i = raw.column_names.index(column)
        raw = raw.set_column(i, column, pc.if_else(mask, pa.nulls(len(raw), current.type), current))
    if others and "other_ids" in raw.column_names:
        values = raw.column("other_ids").to_pylist()
        for n, uid in enumerate(ids.to_pylist()):
            if uid in others and values[n]:
                values[n] = [v for v in values[n] if v not in others[uid]]
        i = raw.column_names.index("other_ids")
        raw = raw.set_column(i, "other_ids", pa.array(values, raw.column("other_ids").type))
    return raw


def exclusions(gw: Gateway) -> Exclusions:
    """Every disputed and decided fact, read (audited) under the gateway's purpose."""
    d = DisputedFact
    rows = gw.rows(
        select(d.id, d.request_id, d.person_id, d.kind, d.table_name, d.row_id, d.record_id,
               d.source_id, d.field, d.disputed_value, d.corrected_value, d.status,
               d.decided_at).where(d.status.in_(["disputed", "accepted"])),
        DisputedFact,
        params={"redress": "exclusions"},
    )  # fmt: skip
    return Exclusions(tuple(FactRow(*r) for r in rows))
