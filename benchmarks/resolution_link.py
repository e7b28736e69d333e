"""Benchmark of incremental linking: one new record against a person index of 1M persons.

Input: a synthetic world of 1,000,000 persons (quick: 20,000) with the default noise, about
3.1 person-bearing records per person (``world_records``). Held out: 2,000 records (quick:
300), one each of as many persons drawn at random among those with two records or more, so
that every held-out record has a true person in the index. The index holds every other
record in the person the truth gives it: the benchmark is about linking latency, not
clustering.

Model: trained on the world's own features (``linking.train``, which samples 300k records),
as the service trains on the records it resolves. The prior (probability that two random
records match) shrinks with the number of records, so a model trained on a small world
overstates every weight on a large index, and pairs with namesakes cross the link weight.

Ours: ``LinkIndex.build`` on the index's features, then ``link`` of each held-out raw record
one at a time (feature computation included in the latency), then ``add`` of the record to
the person proposed (outside the timing). Peer, measured in the same run on the same index,
model and held-out records: Splink 5's real-time path, ``linker.inference.predict_between``
(new record, index) on DuckDB with two threads and the index's term-frequency tables
registered, which blocks the new record against the whole index in SQL and scores the pairs;
its pairs are banded per person exactly as ours. Splink gets the feature row ready-made.
Each peer call takes seconds at 1M persons, so the peer links the first 100 held-out records
(percentiles of 100 calls: its p99 is the second-slowest call).
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from immigrationos.bench import BenchReport, Target, peak_rss_mib
from immigrationos.core.heap import settle_heap
from immigrationos.resolution.evaluate import Truth
from immigrationos.resolution.incremental import Candidate, LinkIndex, band_of
from immigrationos.resolution.linking import train
from immigrationos.resolution.model import ModelDoc, Score
from immigrationos.resolution.records import FEATURE_SCHEMA, feature_row, features

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._resolution_peers import world_records

TARGET_PERSONS, TARGET_P99_MS = 1_000_000, 200.0
PEER_CALLS = 100
_GENERATE = """
import sys
from pathlib import Path
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world
config = WorldConfig(persons=int(sys.argv[1]), seed=11, noise=NoiseConfig())
generate_world(config, Path(sys.argv[2]))
"""


# -- input ------------------------------------------------------------------------------------


def _world(persons: int, folder: Path) -> tuple[pa.Table, Truth]:
    """Generate a world in a subprocess (its memory is not ours) and read its records."""
    subprocess.run([sys.executable, "-c", _GENERATE, str(persons), str(folder)], check=True)
    return world_records(folder)


def _features(raw: pa.Table) -> pa.Table:
    """Features in batches, so that the Python rows of one batch at a time are alive."""
    parts = [features(pa.Table.from_batches([b])) for b in raw.to_batches(200_000)]
    return pa.concat_tables(parts).combine_chunks()


def _hold_out(truth: Truth, count: int, seed: int = 5) -> list[str]:
    """One record each of ``count`` random persons that have at least two records."""
    members: dict[str, list[str]] = {}
    for record, person in sorted(truth.entity_of.items()):
        members.setdefault(person, []).append(record)
    eligible = sorted(p for p, rs in members.items() if len(rs) >= 2)
    rng = random.Random(seed)
    return [rng.choice(members[p]) for p in rng.sample(eligible, count)]


# -- measurement ------------------------------------------------------------------------------


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.array(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def _outcomes(
    decisions: list[tuple[str, str]], truth: Mapping[str, str], held: list[str]
) -> dict[str, Any]:
    """Decisions (band, person) against the truth of the held-out records."""
    right = sum(b == "linked" and p == truth[r] for (b, p), r in zip(decisions, held, strict=True))
    linked = sum(b == "linked" for b, _ in decisions)
    return {
        "linked_right": right,
        "linked_wrong": linked - right,
        "review": sum(b == "review" for b, _ in decisions),
        "new": sum(b == "new" for b, _ in decisions),
        "accuracy": round(right / len(decisions), 4),
    }


def _timed(calls: list[Callable[[], tuple[str, str]]]) -> tuple[list[float], list[tuple[str, str]]]:
    """Run each call once, one at a time; milliseconds and the (band, person) of each."""
    ms, out = [], []
    for call in calls:
        started = time.perf_counter()
        out.append(call())
        ms.append((time.perf_counter() - started) * 1000)
    return ms, out


def _ours(
    index_features: pa.Table, held_raw: list[dict[str, Any]], truth: Truth, doc: ModelDoc
) -> tuple[dict[str, Any], LinkIndex]:
    started = time.perf_counter()
    index = LinkIndex.build(index_features, truth.entity_of, doc)
    build_s = time.perf_counter() - started
    settle_heap()  # as the API does with its index (frozen; the young generation larger)

    def call(raw: dict[str, Any]) -> Callable[[], tuple[str, str]]:
        def link() -> tuple[str, str]:
            decision = index.link(raw)
            return decision.band, decision.person_id

        return link

    ms, decisions = _timed([call(r) for r in held_raw])
    for raw, (band, person) in zip(held_raw, decisions, strict=True):
        if band != "review":
            index.add(raw["unique_id"], feature_row(raw), person)
    row = {
        "system": "ours: LinkIndex.link",
        "records_indexed": index_features.num_rows,
        "calls": len(ms),
        **_percentiles(ms),
        **_outcomes(decisions, truth.entity_of, [r["unique_id"] for r in held_raw]),
        "build_s": round(build_s, 2),
        "index_array_mib": round(index.nbytes / 2**20, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    return row, index


def _peer_setup(index_features: pa.Table, doc: ModelDoc) -> tuple[Any, Any, Any, float]:
    """A Splink linker over the index with its term-frequency tables computed."""
    from splink import DuckDBAPI, Linker

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2; SET enable_progress_bar = false")
    api = DuckDBAPI(connection=con)
    index_df = api.register(index_features, dataset_display_name="index")
    linker = Linker(index_df, doc.splink, log_level=logging.ERROR)
    for column in ("given", "family"):
        linker.table_management.compute_tf_table(column)
    return api, linker, index_df, time.perf_counter() - started


def _peer_call(
    api: Any,
    linker: Any,
    index_df: Any,
    row: dict[str, Any],
    person_of: Mapping[str, str],
    doc: ModelDoc,
) -> Callable[[], tuple[str, str]]:
    def link() -> tuple[str, str]:
        name = f"new_{abs(hash(row['unique_id']))}"
        new = api.register(pa.Table.from_pylist([row], schema=FEATURE_SCHEMA), table_name=name)
        pairs = linker.inference.predict_between(new, index_df, warning_mode="never")
        table = pairs.as_pyarrow_table()
        pairs.drop_table_from_database_and_remove_from_cache()
        new.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)
        return _peer_band(table, person_of, doc)

    return link


def _peer_ranked(pairs: pa.Table, person_of: Mapping[str, str]) -> list[Candidate]:
    """Splink's pairs as persons, each by its best pair, best first (as ours ranks them)."""
    best: dict[str, float] = {}
    for uid, weight in zip(
        pairs.column("unique_id_r").to_pylist(),
        pairs.column("match_weight").to_pylist(),
        strict=True,
    ):
        person = person_of[uid]
        best[person] = max(weight, best.get(person, -1e9))
    return sorted(
        (Candidate(p, "", Score(w, ())) for p, w in best.items()),
        key=lambda c: (-c.score.match_weight, c.person_id),
    )


def _peer_band(pairs: pa.Table, person_of: Mapping[str, str], doc: ModelDoc) -> tuple[str, str]:
    """Splink's pairs banded per person, the same way as ours."""
    ranked = _peer_ranked(pairs, person_of)
    band, _ = band_of(ranked, doc)
    return band, ranked[0].person_id if ranked else ""


def _peer(
    index_features: pa.Table, held: list[dict[str, Any]], truth: Truth, doc: ModelDoc
) -> dict[str, Any]:
    api, linker, index_df, setup_s = _peer_setup(index_features, doc)
    calls = [_peer_call(api, linker, index_df, r, truth.entity_of, doc) for r in held]
    ms, decisions = _timed(calls)
    return {
        "system": "peer: Splink predict_between",
        "records_indexed": index_features.num_rows,
        "calls": len(ms),
        **_percentiles(ms),
        **_outcomes(decisions, truth.entity_of, [r["unique_id"] for r in held]),
        "build_s": round(setup_s, 2),
        "index_array_mib": None,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


# -- report -----------------------------------------------------------------------------------


def _prepare(persons: int, held_count: int, folder: Path) -> dict[str, Any]:
    """World, features, model, and the split into index and held-out records, timed."""
    started = time.perf_counter()
    raw, truth = _world(persons, folder)
    world_s = time.perf_counter() - started
    feats = _features(raw)
    features_s = time.perf_counter() - started - world_s
    doc = train(feats, max_records=300_000)
    held = _hold_out(truth, held_count)
    wanted = set(held)
    ids = feats.column("unique_id").to_pylist()
    mask = pa.array([u not in wanted for u in ids])
    position = {u: i for i, u in enumerate(raw.column("unique_id").to_pylist()) if u in wanted}
    return {
        "truth": truth,
        "doc": doc,
        "index": feats.filter(mask),
        "held_raw": raw.take(pa.array([position[u] for u in held])).to_pylist(),
        "held_features": feats.filter(pc.invert(mask)),
        "world_s": world_s,
        "features_s": features_s,
        "train_s": doc.training.get("seconds"),
    }


def run(quick: bool) -> BenchReport:
    """Link held-out records to an index of 1M persons (quick: 20k); ours vs Splink's."""
    persons, held_count = (20_000, 300) if quick else (TARGET_PERSONS, 2_000)
    with TemporaryDirectory(prefix="immos-bench-link-") as tmp:
        p = _prepare(persons, held_count, Path(tmp))
    ours, _ = _ours(p["index"], p["held_raw"], p["truth"], p["doc"])
    by_id = {r["unique_id"]: r for r in p["held_features"].to_pylist()}
    peer_rows = [by_id[r["unique_id"]] for r in p["held_raw"][:PEER_CALLS]]
    peer = _peer(p["index"], peer_rows, p["truth"], p["doc"])
    for row in (ours, peer):
        row["persons_indexed"] = persons
    return _report(persons, ours, peer, p)


def _report(
    persons: int, ours: dict[str, Any], peer: dict[str, Any], p: dict[str, Any]
) -> BenchReport:
    ratio = ours["p99_ms"] / peer["p99_ms"]
    met = persons >= TARGET_PERSONS and ours["p99_ms"] < TARGET_P99_MS
    observed = f"p99 {ours['p99_ms']} ms over {ours['calls']} links at {persons:,} persons" + (
        "" if persons >= TARGET_PERSONS else " (quick run: not the target size)"
    )
    columns = [
        "system",
        "persons_indexed",
        *[c for c in ours if c not in ("system", "persons_indexed")],
    ]
    return BenchReport(
        title="Incremental linking: latency of one new record against the person index",
        columns=columns,
        rows=[{c: ours.get(c) for c in columns}, {c: peer.get(c) for c in columns}],
        targets=[Target("p99 link latency under 200 ms at an index of 1M persons", met, observed)],
        notes=[
            f"p99 ratio ours/peer: {ratio:.4f} ({peer['p99_ms'] / ours['p99_ms']:.0f}x faster); "
            f"the peer ran {peer['calls']} calls on the same index, so its p99 is its "
            "second-slowest call",
            "ours includes computing the new record's features; the peer is given them",
            f"world generation {p['world_s']:.0f} s, features of every record "
            f"{p['features_s']:.0f} s (names cached per token), model training {p['train_s']} s: "
            "not part of either system's build_s; the peer's build_s is registering the index "
            "and computing its TF tables",
            "accuracy: share of held-out records linked to their true person (each has at least "
            "one other record in the index); review includes possible merges (two persons at "
            "or above the link weight), never linked automatically",
            "index_array_mib: the index's arrays, its features table included (Python dicts "
            "of persons and term frequencies come on top); peak_rss_mib is the whole process "
            "so far (reading the world and computing features included); the peer is Splink 5 "
            "on DuckDB with 2 threads",
        ],
    )
