"""The prioritization benchmark (``benchmarks/priority.py``) at a tiny size, on SQLite only.

Only the shape of its report and the run's completeness are checked here: timings are never
asserted (docs/benchmarks.md: performance is measured by benchmarks, not by timed tests).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pytest

from immigrationos import bench

pytestmark = pytest.mark.slow

PERSONS = 2_000


@pytest.fixture(scope="module")
def module() -> Any:
    return bench.load("priority")


def test_tiny_run_reports_every_stage_and_stores_every_score(module: Any) -> None:
    report = module.run(sizes=[PERSONS], backend="sqlite", lookups=20, explains=2)
    payload = json.loads(json.dumps(asdict(report), default=str))

    assert set(payload) == {"title", "columns", "rows", "targets", "notes"}
    assert payload["columns"] == module.COLUMNS
    (row,) = payload["rows"]
    assert set(module.COLUMNS) <= set(row)
    assert {"generate_s", "peer_extrapolated", "peer_disagreements", "tiers"} <= set(row)
    assert (row["backend"], row["persons"]) == ("sqlite", PERSONS)
    assert row["stored_scores"] == PERSONS
    assert sum(row["tiers"].values()) == PERSONS
    assert row["peer_measured_on"] == PERSONS and not row["peer_extrapolated"]
    assert row["peer_disagreements"] == 0  # the SQL and the row-by-row peer agree
    assert row["explain_error"] is None
    assert payload["targets"] == []  # the 1M target is judged only at 1M


def test_generated_table_has_the_feature_schema(module: Any) -> None:
    schema = pa.schema(
        [
            ("person_id", pa.string()),
            ("office", pa.string()),
            ("felony", pa.bool_()),
            ("age_years", pa.float64()),
            (
                "ev_felony",
                pa.list_(
                    pa.field(
                        "l",
                        pa.struct(
                            [("t", pa.string()), ("id", pa.string()), ("src", pa.string()),
                             ("d", pa.date32())]
                        ),
                    )
                ),
            ),
            (
                "blocks",
                pa.list_(pa.field("l", pa.struct([("guard", pa.string()),
                                                  ("message", pa.string())]))),
            ),
            ("us_family", pa.bool_()),
        ]
    )  # fmt: skip
    table = module.generate(schema, 500, seed=7)
    assert table.schema == schema
    assert table.column("person_id").to_pylist() == sorted(set(table["person_id"].to_pylist()))
    assert table.column("blocks").null_count == 0  # an empty list, never null (len() is read)
    assert table.column("us_family").null_count == 500  # no source: always unknown
    felons = table.filter(table["felony"]).column("ev_felony").to_pylist()
    assert felons and all(1 <= len(items) <= 3 for items in felons)
