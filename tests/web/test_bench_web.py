"""The web load benchmark's core, run briefly against the test server's small demo world.

The benchmark itself (``immos bench web``) builds a PostgreSQL world and serves it with
uvicorn workers; here its load generator, phases, rows and targets run for a second per
phase with four users against the session's live server, so a change that breaks it shows.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from immigrationos.bench import BenchReport, load
from immigrationos.runtime import Runtime


@pytest.fixture(scope="module")
def web_bench() -> Any:
    return load("web")


def test_the_load_run_reports_routes_targets_and_json(
    web_bench: Any, web_runtime: Runtime, live_server: str
) -> None:
    accounts = web_bench.credentials(web_runtime, users=4)
    rows, notes = web_bench.measure(
        live_server,
        accounts,
        users=4,
        seconds=1.0,
        think_seconds=2.0,
        think=0.2,
        warmup=0,
        samples=1,
    )
    report = BenchReport("web (test)", web_bench.COLUMNS, rows, web_bench.targets_of(rows), notes)

    assert all(set(web_bench.COLUMNS) <= set(row) for row in rows)
    by = {(r["phase"], r["route"]): r for r in rows}
    assert by[("peer", "health (peer)")]["requests"] > 0
    assert by[("peer", "health (peer)")]["errors"] == 0
    for route in ("worklist (API)", "person (API)", "case (API)"):
        row = by[("bearer", route)]
        assert row["requests"] > 0 and row["errors"] == 0, (row, notes)
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert {r["phase"] for r in rows} == {p.name for p in web_bench.PHASES}
    closed = by[("bearer, closed loop", "all")]
    assert closed["requests"] > 0 and closed["p95_vs_peer"] is not None
    # The thinking phase is measured over the same routes as the closed loop. Which of the
    # two asks more often is timing, left to the benchmark (a one-second run on a loaded
    # machine can go either way).
    thinking = by[("bearer", "all")]
    assert thinking["requests"] > 0 and thinking["errors"] == 0
    described = [t.description for t in report.targets]
    assert any("p95 ≤ 100 ms" in d and "(bearer)" in d for d in described)
    assert "no errors (bearer)" in described and "no errors (cookie)" in described
    assert json.loads(json.dumps(asdict(report)))["rows"] == rows


def test_a_missed_target_is_reported_as_missed(web_bench: Any) -> None:
    rows = [
        {"phase": "bearer", "route": "case (API)", "p95_ms": 250.0, "errors": 2},
        {"phase": "bearer", "route": "all", "p95_ms": 250.0, "errors": 2},
    ]
    p95, errors = web_bench.targets_of(rows)
    assert not p95.met and "case (API) p95 250 ms" in p95.observed
    assert not errors.met and errors.observed == "2 errors"
