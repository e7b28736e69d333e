"""The departures benchmark (``benchmarks/departures.py``) at a tiny size.

Only the shape of its report and the completeness of each run are checked here: timings are
never asserted (docs/benchmarks.md: performance is measured by benchmarks, not by timed
tests). It needs the NATS server, like the transport's tests.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from tests.departures_nats.conftest import NATS_URL, require_nats

from immigrationos import bench

pytestmark = pytest.mark.slow

PERSONS = 2_000


@pytest.fixture(scope="module")
def module() -> Any:
    return bench.load("departures")


@pytest.fixture(scope="module")
def payload(module: Any) -> dict[str, Any]:
    require_nats()
    budget = module.Budget(events=600, nats=150, paced=75, peer=5)
    report = module.run(sizes=[PERSONS], budget=budget)
    return json.loads(json.dumps(asdict(report), default=str))


def test_report_has_every_system_with_positive_figures(
    module: Any, payload: dict[str, Any]
) -> None:
    assert set(payload) == {"title", "columns", "rows", "targets", "notes"}
    assert payload["columns"] == module.COLUMNS
    systems = [row["system"] for row in payload["rows"]]
    assert systems[:4] == [
        "ours: Matcher.match, in process, one event at a time, 1 thread",
        "ours: Matcher.match_many, in process, batches of 1024, 1 thread",
        "ours: NATS end to end, published flat out",
        "ours: NATS end to end, paced at 5,000/s",
    ]
    workers = "ours: NATS end to end, 2 consumer processes, "
    assert [workers + "published flat out", workers + "paced at 5,000/s"] == [
        s for s in systems if s.startswith(workers)
    ][:2]
    assert systems[-1] == "peer: Splink predict_between"
    for row in payload["rows"]:
        assert set(row) == set(module.COLUMNS)
        assert row["persons_indexed"] == PERSONS and row["records_indexed"] > PERSONS
        assert row["events"] > 0 and row["events_per_s"] > 0 and row["cpu_ms_per_event"] > 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["verified"] + row["review"] + row["unmatched"] > 0
        assert 0 < row["precision_verified"] <= 1 and 0 < row["recall"] <= 1
        assert row["vs_peer"] > 0
    assert payload["rows"][-1]["vs_peer"] == 1.0
    assert payload["rows"][-1]["events"] == 5


def test_batches_decide_as_one_event_at_a_time(payload: dict[str, Any]) -> None:
    single, batched = payload["rows"][:2]
    for key in ("events", "verified", "review", "unmatched", "precision_verified", "recall"):
        assert single[key] == batched[key]
    assert any("decided 0 events differently" in note for note in payload["notes"])


def test_every_nats_event_is_committed_once(payload: dict[str, Any]) -> None:
    ours = payload["rows"][0]
    assert ours["dead_letters"] == 600 - ours["events"]
    nats_rows = [r for r in payload["rows"] if "NATS" in r["system"]]
    assert len(nats_rows) >= 4
    for row in nats_rows:  # one consumer, and two processes on the durable
        flat = "flat out" in row["system"]
        assert row["events"] == (150 if flat else 75), row  # malformed lines included
        decided = row["verified"] + row["review"] + row["unmatched"]
        assert decided + row["dead_letters"] == row["events"]
    costs = [n for n in payload["notes"] if "CPU ms per event: consumers" in n]
    assert len(costs) == len(nats_rows) and all("publisher" in n for n in costs)


def test_targets_are_judged_only_at_the_target_size(payload: dict[str, Any]) -> None:
    assert len(payload["targets"]) == 3
    for target in payload["targets"]:
        assert target["met"] is False
        assert "not the target size" in target["observed"]
    assert any("load average" in note for note in payload["notes"])


def test_streams_are_deleted(payload: dict[str, Any]) -> None:
    async def exists(name: str) -> bool:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().stream_info(name)
            return True
        except NotFoundError:
            return False
        finally:
            await nc.close()

    for run in ("FLAT", "FLAT_X2", "PACED5000_X2"):
        assert not asyncio.run(exists(f"IMMOS_BENCH_DEPARTURES_{os.getpid()}_{run}"))
