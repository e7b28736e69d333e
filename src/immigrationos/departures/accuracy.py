"""How well departures were matched, against a synthetic world's ground truth.

The truth (``truth/records.parquet``) names the true person of every source record, events
included. A person of the index stands for the true person most of its records belong to.

- **precision of verified**: of the events verified to a person, the share whose true person
  is the one that index person stands for;
- **recall of verified plus review**: of the events whose true person is in the index (has a
  record other than departures), the share verified or sent to review with that person;
- the unmatched whose true person was in the index (missed), and the rest (nobody to find).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Accuracy:
    events: int
    verified: int
    verified_right: int
    review: int
    review_right: int
    unmatched: int
    findable: int
    found: int

    @property
    def precision_verified(self) -> float:
        return self.verified_right / self.verified if self.verified else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.findable if self.findable else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "verified": self.verified,
            "verified_right": self.verified_right,
            "review": self.review,
            "review_right": self.review_right,
            "unmatched": self.unmatched,
            "findable": self.findable,
            "found": self.found,
            "precision_verified": round(self.precision_verified, 5),
            "recall_verified_or_review": round(self.recall, 5),
        }


def truth_of(world: Path) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """(event id → true person, (source, record key) → true person) from a world folder."""
    table = pq.read_table(world / "truth" / "records.parquet")
    departures = table.filter(pc.equal(table["source"], "departures"))
    events = dict(
        zip(
            departures["record_key"].to_pylist(),
            departures["person_id"].to_pylist(),
            strict=True,
        )
    )
    records = {
        (s, k): p
        for s, k, p in zip(
            table["source"].to_pylist(),
            table["record_key"].to_pylist(),
            table["person_id"].to_pylist(),
            strict=True,
        )
    }
    return events, records


def stands_for(
    links: Iterable[tuple[str, str, str]], records: Mapping[tuple[str, str], str]
) -> tuple[dict[str, str], set[str]]:
    """Each index person's true person (the majority of its records), from (person, source,
    record key) links; and the true persons the index holds through non-departure records."""
    votes: dict[str, Counter[str]] = {}
    present: set[str] = set()
    for person, source, key in links:
        truth = records.get((source, key))
        if truth is None:
            continue
        votes.setdefault(person, Counter())[truth] += 1
        if source != "departures":
            present.add(truth)
    return {p: c.most_common(1)[0][0] for p, c in votes.items()}, present


def score(
    decisions: Iterable[tuple[str, str | None, str | None]],
    events_truth: Mapping[str, str],
    person_truth: Mapping[str, str],
    present: set[str],
) -> Accuracy:
    """Score (event id, band, person id) decisions."""
    n = verified = verified_right = review = review_right = unmatched = findable = found = 0
    for event_id, band, person in decisions:
        truth = events_truth.get(event_id)
        if truth is None:
            continue
        n += 1
        right = person is not None and person_truth.get(person) == truth
        if truth in present:
            findable += 1
            found += int(right and band in ("verified", "review"))
        if band == "verified":
            verified += 1
            verified_right += int(right)
        elif band == "review":
            review += 1
            review_right += int(right)
        else:
            unmatched += 1
    return Accuracy(n, verified, verified_right, review, review_right, unmatched, findable, found)
