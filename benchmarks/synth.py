"""Benchmark of the synthetic world generator against a plain row-by-row peer.

Ours: ``generate_world`` at two sizes, each in a fresh subprocess so that peak memory of one
size does not contaminate the next (peak RSS is reported for the main process and, separately,
for its worker processes). Peer, measured in the same run: a pure-Python generator (stdlib
``random`` + ``csv``) writing one person row and one record per source for each person, with
no noise, no lifecycle and no ground truth, i.e. a lower bound on the work.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from immigrationos.bench import BenchReport, Target, peak_rss_mib

TARGET_PERSONS, TARGET_SECONDS = 1_000_000, 300.0

_CHILD = """
import json, resource, sys, time, tempfile
from pathlib import Path
from immigrationos.synth import WorldConfig, generate_world
persons = int(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    started = time.perf_counter()
    summary = generate_world(WorldConfig(persons=persons, seed=1), Path(tmp))
    seconds = time.perf_counter() - started
self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rows": summary.total_rows, "bytes": summary.total_bytes,
                  "rss": self_rss, "worker_rss": child_rss}))
"""


def _ours(persons: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(persons)], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _peer_rows(rng: random.Random, i: int) -> list[list[str]]:
    given = rng.choice(["José", "Maria", "Mohammed", "Wei", "Olga", "Jean", "Priya", "John"])
    family = rng.choice(["García", "Silva", "Hassan", "Wang", "Ivanova", "Pierre", "Singh"])
    dob = f"{rng.randint(1940, 2006)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    key = f"{i:011d}"
    person = [f"P{i:09d}", given, family, dob, rng.choice("MF"), rng.choice(["MEX", "CHN"])]
    return [person] + [[key + str(s), family, given, dob, str(rng.random())] for s in range(9)]


def _peer(persons: int) -> dict[str, Any]:
    """Row-by-row pure Python: one person row plus one record per source, written as CSV."""
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with (Path(tmp) / "peer.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            for i in range(persons):
                writer.writerows(_peer_rows(rng, i))
        seconds = time.perf_counter() - started
        size = (Path(tmp) / "peer.csv").stat().st_size
    return {"seconds": seconds, "rows": persons * 10, "bytes": size, "rss": peak_rss_mib()}


def _row(name: str, persons: int, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "generator": name,
        "persons": persons,
        "seconds": round(m["seconds"], 2),
        "persons_per_s": round(persons / m["seconds"]),
        "records": m["rows"],
        "records_per_s": round(m["rows"] / m["seconds"]),
        "mib_written": round(m["bytes"] / 2**20, 1),
        "peak_rss_mib": round(m["rss"], 1),
        "worker_peak_rss_mib": round(m.get("worker_rss", 0.0), 1),
    }


def run(quick: bool) -> BenchReport:
    """Measure ours at two sizes and the peer at a small size; report the throughput ratio."""
    sizes = (10_000, 50_000) if quick else (100_000, 1_000_000)
    peer_size = 5_000 if quick else 20_000
    rows = [_row("immigrationos.synth", n, _ours(n)) for n in sizes]
    peer = _row("peer: stdlib random + csv, row by row", peer_size, _peer(peer_size))
    rows.append(peer)
    ratio = rows[1]["persons_per_s"] / peer["persons_per_s"]
    largest = rows[1]
    projected = TARGET_PERSONS / largest["persons_per_s"]
    measured = largest["persons"] >= TARGET_PERSONS
    observed = f"{largest['seconds']} s for {largest['persons']:,} persons" + (
        "" if measured else f" (projected {projected:.0f} s for 1M; quick run)"
    )
    return BenchReport(
        title="Synthetic world generation (persons/s, ours vs a pure-Python row-by-row peer)",
        columns=list(rows[0]),
        rows=rows,
        targets=[
            Target("1M persons in under 5 minutes on 2 cores", projected < TARGET_SECONDS, observed)
        ],
        notes=[
            f"throughput ratio ours/peer at the largest size: {ratio:.2f}x persons/s; the peer "
            "writes ~10 rows per person with no noise, lifecycle, truth or Parquet/JSON output, "
            "ours writes every source with noise plus ground truth (see the records column)",
            "each size of ours runs in its own subprocess (peak RSS isolated per size); "
            "worker_peak_rss_mib is the largest worker process",
        ],
    )
