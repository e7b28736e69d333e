"""The entity-resolution benchmark's peers on a small synthetic world (benchmarks/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from benchmarks._resolution_peers import (
    RECORD_COLUMNS,
    SOURCES,
    generic_splink,
    recordlinkage_classic,
    world_records,
)

from immigrationos.resolution.evaluate import Truth, evaluate
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Truth]:
    """Records and truth of a 300-person world with the default noise."""
    folder: Path = tmp_path_factory.mktemp("peers-world")
    generate_world(WorldConfig(persons=300, seed=21, noise=NoiseConfig()), folder)
    return world_records(folder)


def test_world_records_schema_and_truth(world: tuple[pa.Table, Truth]) -> None:
    records, truth = world
    assert tuple(records.column_names) == RECORD_COLUMNS
    assert all(pa.types.is_string(t) for t in records.schema.types)
    ids = records.column("unique_id").to_pylist()
    assert len(set(ids)) == len(ids) == len(truth) > 600
    assert set(ids) == set(truth.entity_of)
    assert set(records.column("source_id").to_pylist()) == set(SOURCES)
    assert set(truth.culture_of) == set(ids)
    values = {v for name in RECORD_COLUMNS[3:] for v in records.column(name).to_pylist()}
    assert values.isdisjoint({"XXX", "NA", "UNKNOWN", "1900-01-01", ""})


def test_departures_map_document_fields(world: tuple[pa.Table, Truth]) -> None:
    rows = [r for r in world[0].to_pylist() if r["source_id"] == "departures"]
    assert rows and any(r["passport_no"] for r in rows) and any(r["nationality"] for r in rows)
    assert all(r["unique_id"] == f"departures:{r['record_key']}" for r in rows)


@pytest.mark.parametrize("peer", [generic_splink, recordlinkage_classic])
def test_peer_clusters_every_record_well_enough(
    world: tuple[pa.Table, Truth], peer: Callable[[pa.Table], dict[str, str]]
) -> None:
    records, truth = world
    clusters = peer(records)
    assert set(clusters) == set(records.column("unique_id").to_pylist())
    assert evaluate(clusters, truth).pairwise_f1 > 0.5
