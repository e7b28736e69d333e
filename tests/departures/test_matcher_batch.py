"""Matching a batch of departure events at once decides each event as matching it alone:
the same band, person, weight and explanation (timings aside), on every path (document
agreement, document comparison, fuzzy; verified, review, unmatched), and a held record still
verifies nobody. A batch scores its document comparisons together, and its fuzzy events
together."""

from __future__ import annotations

from typing import Any

from tests.departures.conftest import World

from immigrationos.departures.events import Malformed, read_event
from immigrationos.departures.matcher import Event, MatchResult
from immigrationos.departures.service import Processor


def _decided(result: MatchResult) -> tuple[Any, ...]:
    shared = ("micros", "timing_ms", "batch")
    explanation = {k: v for k, v in result.explanation.items() if k not in shared}
    return result.band, result.person_id, result.match_weight, result.probability, explanation


def _events(world: World, count: int) -> list[tuple[Event, str]]:
    out = []
    for line in world.lines():
        try:
            event = read_event(line)
        except Malformed:
            continue
        out.append((event, f"departures:{event.event_id}"))
        if len(out) == count:
            break
    return out


def test_a_batch_decides_each_event_as_alone(processor: Processor, departure_world: World) -> None:
    matcher = processor.matcher
    events = _events(departure_world, 600)
    first = events[0][1]
    before = [matcher.match(event, uid) for event, uid in events[:50]]
    partner = next(r.explanation["partner_record_id"] for r in before if r.band == "verified")
    matcher.held = {partner: "disputed under redress (test)"}
    alone = [matcher.match(event, uid) for event, uid in events]
    assert any(r.explanation.get("held_record") == partner for r in alone)
    together = []
    for start in range(0, len(events), 256):
        together += matcher.match_many(events[start : start + 256])
    assert [_decided(r) for r in together] == [_decided(r) for r in alone]
    paths = {(r.band, r.explanation["path"]) for r in alone}
    assert {("verified", "document"), ("verified", "fuzzy"), ("review", "fuzzy")} <= paths
    # Some documents' holders were compared in full (a batch scores those together).
    assert any(r.explanation["path"] == "document" and "agreed" not in r.explanation
               for r in alone)  # fmt: skip
    assert any(r.band == "unmatched" for r in alone)
    assert together[0].explanation["batch"] == 256 and together[-1].explanation["batch"] == 88
    assert all(r.micros > 0 for r in together)
    assert matcher.match_many([]) == []
    assert first not in matcher.index
