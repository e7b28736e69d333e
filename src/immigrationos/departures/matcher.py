"""Matching a departure event to a person, in memory, in well under a millisecond.

Two steps, over the person index held in memory by
:class:`~immigrationos.resolution.incremental.LinkIndex` (the trained resolution model's
parameters, the same blocking keys as the batch run):

1. **Document.** The event's document number and issuing country looked up exactly. One
   person holds it and the best pair with that person still scores at least the model's
   review weight (name and birth date do not contradict the document): *verified*. A
   document held by several persons, or whose holder's name and birth date disagree: *review*.
2. **Fuzzy.** Otherwise the blocked candidates are scored like any incremental link. One
   person at or above :data:`VERIFY_WEIGHT`: *verified*; anyone at or above the review weight:
   *review*; nobody: *unmatched*.

Every decision keeps its explanation: the path, the candidates, each comparison's
contribution to the best pair's weight. The matcher refreshes incrementally: records linked
since it was built (departures it verified, incremental links) are added with
:meth:`Matcher.add`, and :meth:`Matcher.refresh` adds what the store linked meanwhile; a full
resolution run (a new index version) rebuilds it.

A record whose link to its person is disputed under redress (a "held" record) verifies
nobody: a match whose best pair is with it goes to review, saying so. Identifiers and other
values disputed or struck under redress are left out of the index, so they match nothing.
A dispute marked or decided makes the matcher stale, like a new index version.

Why the fuzzy path verifies only above a margin over the link weight: a departure closes
cases, so a wrong "verified" costs more than a review. The margin was chosen on the synthetic
world's ground truth (the departures benchmark at 1M persons;
``tests/departures/test_departure_processing.py`` holds the accuracy targets).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from immigrationos.core.clock import utcnow
from immigrationos.core.frozen import quick_init
from immigrationos.departures.events import LandExit, Manifest, SelfReport
from immigrationos.gateway.core import Gateway
from immigrationos.persons.models import RecordLink
from immigrationos.resolution import records
from immigrationos.resolution.held_apart import held_back
from immigrationos.resolution.incremental import DocumentHolder, LinkDecision, LinkIndex, Ranking
from immigrationos.resolution.models import ResolutionRun
from immigrationos.sources.models import SourceRecord

Band = Literal["verified", "review", "unmatched"]
Event = Manifest | LandExit | SelfReport

#: The fuzzy path verifies a person only from this match weight: a departure closes cases,
#: so it asks for more than clustering's link weight. Chosen on the benchmark's 1M persons
#: (docs/departures.md): one wrong in about 5,000 of the fuzzy links between 8 and 10, one
#: in about 550 between 7 and 8.
VERIFY_WEIGHT = 8.0
#: Candidates named in an explanation.
EXPLAINED = 5


@quick_init
@dataclass(frozen=True)
class MatchResult:
    """The matcher's decision on one event, with its explanation."""

    band: Band
    person_id: str | None
    match_weight: float | None
    probability: float | None
    explanation: dict[str, Any]
    micros: float = 0.0
    row: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The event's feature row, as matched (:meth:`Matcher.add` takes it rather than
    computing it again)."""


def raw_record(event: Event, unique_id: str) -> dict[str, Any]:
    """The event as a raw person record (:data:`records.RAW_COLUMNS`)."""
    return {
        "unique_id": unique_id,
        "source_id": "departures",
        "record_key": event.event_id,
        "given_name": event.given_name,
        "family_name": event.family_name,
        "birth_date": event.birth_date.isoformat() if event.birth_date else None,
        "sex": event.sex,
        "nationality": event.citizenship,
        "passport_no": event.document_no,
        "passport_country": event.document_country,
        "observed_on": event.occurred.date().isoformat(),
    }


@dataclass
class Matcher:
    """The person index in memory and the rules above; not thread-safe for :meth:`add`."""

    index: LinkIndex
    index_version: str | None
    built_at: datetime
    """When the index was read (then refreshed): links from then on are added by refresh."""
    added: set[str] = field(default_factory=set)
    held: dict[str, str] = field(default_factory=dict)
    """Records whose person link is disputed under redress → why (they verify nobody)."""
    disputes: str | None = None
    """The disputes the index was built with (a fingerprint; see :meth:`stale`)."""

    @classmethod
    def build(cls, gw: Gateway) -> Matcher:
        """Build from the current person index (read under the gateway's purpose, which must
        be identity resolution: deciding which records describe the same person)."""
        from immigrationos.resolution.service import build_link_index, redress_exclusions

        started = utcnow()
        index = build_link_index(gw)
        index.materialize()
        excluded = redress_exclusions(gw)
        return cls(index, _index_version(gw), started, held=excluded.held, disputes=excluded.key)

    @property
    def verify_weight(self) -> float:
        return VERIFY_WEIGHT

    def match(self, event: Event, unique_id: str) -> MatchResult:
        """Decide one event (``unique_id`` names its record; it must not be in the index)."""
        started = time.perf_counter()
        row = records.feature_row(raw_record(event, unique_id))
        result = self._by_document(row)
        if result is None:
            result = self._banded(self.index.link_features(row))
        return _timed(self._unless_held(result), time.perf_counter() - started, row=row)

    def match_many(self, events: Sequence[tuple[Event, str]]) -> list[MatchResult]:
        """:meth:`match` of several events (each with its record's unique id), decided as
        one by one, none seeing another (add the verified ones afterwards), at a fraction of
        the cost: the documents are looked up together (:meth:`LinkIndex.document_rows_many`),
        the documents' holders that need the full comparison are scored together
        (:meth:`LinkIndex.by_document_many`), and so are the events needing the fuzzy path
        (:meth:`LinkIndex.link_many`). Each result's ``micros`` is its share of the batch's
        time; its explanation says how many events the batch had."""
        started = time.perf_counter()
        rows = [records.feature_row(raw_record(event, uid)) for event, uid in events]
        holders = self.index.document_rows_many(rows)
        results = [
            _agreement(row, found) if found else None
            for row, found in zip(rows, holders, strict=True)
        ]
        compared = [i for i, found in enumerate(holders) if found and results[i] is None]
        if compared:
            rankings = self.index.by_document_many(
                [rows[i] for i in compared], [holders[i] for i in compared]
            )
            for i, ranked in zip(compared, rankings, strict=True):
                if ranked.top:
                    results[i] = self._document(ranked)
        fuzzy = [i for i, result in enumerate(results) if result is None]
        if fuzzy:
            decisions = self.index.link_many([rows[i] for i in fuzzy])
            for i, decision in zip(fuzzy, decisions, strict=True):
                results[i] = self._banded(decision)
        share = (time.perf_counter() - started) / max(len(rows), 1)
        return [
            _timed(self._unless_held(result), share, len(rows), row)
            for result, row in zip(results, rows, strict=True)
            if result is not None
        ]

    def _by_document(
        self, row: dict[str, Any], holders: list[DocumentHolder] | None = None
    ) -> MatchResult | None:
        """The decision by the event's document, or None when it names none held here
        (``holders``: :meth:`LinkIndex.document_rows`, when already looked up). The full
        comparison scores pair by pair: a document has one holder or a few."""
        if holders is None:
            holders = self.index.document_rows(row)
        agreed = _agreement(row, holders)
        if agreed is not None:
            return agreed
        if holders and (ranked := self.index.by_document(row, holders)).top:
            return self._document(ranked)
        return None

    def _document(self, ranked: Ranking) -> MatchResult:
        top = ranked.leaders[0]
        weight = top.score.match_weight
        review = self.index.doc.review_weight
        if len(ranked) > 1:
            band: Band = "review"
            reason = f"the document is held by {len(ranked)} persons"
        elif weight >= review:
            band, reason = "verified", "document number and issuing country match one person"
        else:
            band = "review"
            reason = "the document matches one person, but name or birth date disagree"
        return MatchResult(
            band,
            top.person_id,
            weight,
            top.score.probability,
            _explanation("document", reason, ranked),
        )

    def _banded(self, decision: LinkDecision) -> MatchResult:
        """The fuzzy path's decision in the matcher's bands."""
        weight = decision.match_weight
        if decision.band == "new" or weight is None:
            return MatchResult(
                "unmatched",
                None,
                weight,
                decision.probability,
                {"path": "fuzzy", **decision.explanation},
            )
        band: Band = "review"
        reason = str(decision.explanation.get("reason", ""))
        if decision.band == "linked" and weight >= self.verify_weight:
            band = "verified"
        elif decision.band == "linked":
            parts = decision.explanation.get("contributions", [])
            reason = (
                f"the best person's weight {weight:.1f} is below the departure matcher's "
                f"verification weight {self.verify_weight:.1f}"
            ) + held_back(str(c.get("comparison", "")) for c in parts)
        return MatchResult(
            band,
            decision.person_id,
            weight,
            decision.probability,
            {"path": "fuzzy", **decision.explanation, "reason": reason},
        )

    def _unless_held(self, result: MatchResult) -> MatchResult:
        """A verification through a held record (its link disputed) is left for review."""
        if not self.held or result.band != "verified":
            return result
        partner = result.explanation.get("partner_record_id")
        if partner not in self.held:
            return result
        reason = f"the matching record {partner} is {self.held[partner]}"
        return MatchResult(
            "review",
            result.person_id,
            result.match_weight,
            result.probability,
            {**result.explanation, "reason": reason, "held_record": partner},
        )

    def add(
        self, unique_id: str, event: Event, person_id: str, row: dict[str, Any] | None = None
    ) -> None:
        """A departure record now belongs to ``person_id``: the next event sees it (``row``:
        its feature row, when the match computed it under the same ``unique_id``)."""
        self.add_many([(unique_id, event, person_id, row)])

    def add_many(self, added: Sequence[tuple[str, Event, str, dict[str, Any] | None]]) -> None:
        """:meth:`add` of several departure records (unique id, event, person, feature row
        or None) at once (:meth:`LinkIndex.add_many`); records the index holds are skipped."""
        fresh: dict[str, tuple[str, dict[str, Any], str]] = {}
        held = self.index.rows_of([unique_id for unique_id, _, _, _ in added])
        for (unique_id, event, person_id, row), at in zip(added, held, strict=True):
            if at is not None or unique_id in fresh:
                continue
            if row is None or row.get("unique_id") != unique_id:
                row = records.feature_row(raw_record(event, unique_id))
            fresh[unique_id] = (unique_id, row, person_id)
        self.index.add_many(list(fresh.values()))
        self.added.update(fresh)

    def stale(self, gw: Gateway) -> bool:
        """Whether a resolution run replaced the index this matcher was built from, or a
        redress dispute was marked or decided since."""
        from immigrationos.resolution.service import redress_exclusions

        if _index_version(gw) != self.index_version:
            return True
        return bool(redress_exclusions(gw).key != self.disputes)

    def refresh(self, gw: Gateway) -> int:
        """Add records linked in the store since the last refresh (incremental links, review
        decisions; not the processor's own document matches, which add nothing the index
        lacks); returns how many. A new index version needs :meth:`build` instead."""
        since, self.built_at = self.built_at, utcnow()
        link = RecordLink.__table__
        stmt = select(link.c.source_record_id, link.c.person_id).where(
            link.c.unlinked_at.is_(None), link.c.linked_at >= since, link.c.method != "departure"
        )
        known = gw.rows(stmt, RecordLink, params={"job": "departure matcher refresh"})
        fresh = {r: p for r, p in known if r not in self.index}
        if fresh:
            wanted = select(SourceRecord).where(SourceRecord.id.in_(list(fresh)))
            found = gw.select(wanted, SourceRecord, params={"job": "departure matcher"})
            self.index.add_many(
                [
                    (record.id, records.feature_row(records.raw_of(gw, record)), fresh[record.id])
                    for record in found
                ]
            )
        return len(fresh)


def _timed(
    result: MatchResult, seconds: float, batch: int = 1, row: dict[str, Any] | None = None
) -> MatchResult:
    """``result`` with the time it took (``batch``: the events decided together) and the
    event's feature ``row``. Its explanation is completed in place: every path makes a
    fresh one for its result, which this replaces."""
    micros = seconds * 1e6
    explanation = result.explanation
    explanation["micros"] = round(micros, 1)
    if batch > 1:
        explanation["batch"] = batch
    return MatchResult(
        result.band,
        result.person_id,
        result.match_weight,
        result.probability,
        explanation,
        micros,
        row,
    )


def _agreement(row: dict[str, Any], holders: list[DocumentHolder]) -> MatchResult | None:
    """The fast path: one person holds the document and one of their records carrying it
    has the same birth date and the same first given or first family name key. Anything
    less certain goes to the full comparison of :meth:`Matcher._document`."""
    if not holders or len({h.person_id for h in holders}) > 1 or not row.get("dob"):
        return None
    for holder in holders:
        person, partner = holder.person_id, holder.features
        if partner.get("dob") != row["dob"]:
            continue
        names = [
            label
            for label, key in (("first family name", "family_first"),
                               ("first given name", "given_first"))
            if row.get(key) and partner.get(key) == row[key]
        ]  # fmt: skip
        if names:
            return MatchResult(
                "verified",
                person,
                None,
                None,
                {
                    "path": "document",
                    "reason": "one person holds the document, and birth date and name agree",
                    "partner_record_id": partner["unique_id"],
                    "agreed": ["document number", "issuing country", "birth date", *names],
                    "persons": [{"person_id": person, "record_id": partner["unique_id"]}],
                },
            )
    return None


def _explanation(path: str, reason: str, ranked: Ranking) -> dict[str, Any]:
    top = ranked.leaders[0]
    return {
        "path": path,
        "reason": reason,
        "partner_record_id": top.record_id,
        "contributions": [c.to_json() for c in top.score.contributions],
        "persons_considered": len(ranked),
        "persons": [
            {
                "person_id": c.person_id,
                "record_id": c.record_id,
                "match_weight": round(c.score.match_weight, 3),
            }
            for c in ranked.leaders[:EXPLAINED]
        ],
    }


def _index_version(gw: Gateway) -> str | None:
    """The latest finished resolution run: the person index version."""
    return gw.session.scalar(
        select(ResolutionRun.id)
        .where(ResolutionRun.status == "finished")
        .order_by(ResolutionRun.started_at.desc())
        .limit(1)
    )
