"""``generate_world``: chunked, deterministic generation of sources and ground truth.

Each chunk of persons has its own random stream, the child ``SeedSequence(seed, spawn_key=(i,))``
(exactly what ``SeedSequence(seed).spawn`` gives chunk ``i``), so a chunk's output depends only
on the config and its index. Chunks may run in worker processes; results are written strictly
in chunk order, so the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa

from immigrationos.synth import dates, extras
from immigrationos.synth.book import Book
from immigrationos.synth.config import WorldConfig
from immigrationos.synth.lifecycle import SCRIPTS
from immigrationos.synth.noise import Noiser
from immigrationos.synth.population import CATEGORIES, issue_identifiers, make_persons
from immigrationos.synth.sources import SOURCES, build
from immigrationos.synth.stream import sort_departures
from immigrationos.synth.truth import persons_table
from immigrationos.synth.writer import Sink, WorldSummary, summarize, write_manifest

Progress = Callable[[str, int, int], None]
STAGING = ".staging"


@dataclass
class ChunkResult:
    """Everything one chunk contributes to the output files."""

    index: int
    persons: int
    sources: dict[str, pa.Table]
    records: pa.Table
    truth: pa.Table
    counts: dict[str, Counter[str]]


def generate_chunk(cfg: WorldConfig, index: int) -> ChunkResult:
    """Generate chunk ``index`` of the world (pure: depends only on ``cfg`` and ``index``)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(cfg.seed, spawn_key=(index,))))
    gid0 = index * cfg.chunk_size
    persons = make_persons(rng, cfg, gid0, min(cfg.chunk_size, cfg.persons - gid0))
    ctx = extras.Ctx(
        rng, persons, Book(), cfg, dates.day(cfg.start_date), dates.day(cfg.as_of_date)
    )
    for category in CATEGORIES:
        SCRIPTS[category](ctx, persons.where(category))
    extras.convictions(ctx)
    extras.tax_addresses(ctx)
    issue_identifiers(rng, persons, cfg.noise.duplicate_a_number)
    noiser = Noiser(rng, persons, cfg.noise)
    built = {s.name: build(s, ctx.book.rows(s.name), persons, noiser) for s in SOURCES}
    counts = {
        "category": Counter(persons.category.tolist()),
        "name_culture": Counter(persons.culture.tolist()),
    }
    return ChunkResult(
        index=index,
        persons=len(persons),
        sources={k: b.table for k, b in built.items()},
        records=pa.concat_tables([b.truth for b in built.values()]),
        truth=persons_table(persons),
        counts=counts,
    )


def _results(cfg: WorldConfig, workers: int) -> Iterator[ChunkResult]:
    """Chunk results in chunk order, computed in ``workers`` processes (bounded look-ahead)."""
    if workers <= 1 or cfg.chunks == 1:
        for i in range(cfg.chunks):
            yield generate_chunk(cfg, i)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending: deque[Future[ChunkResult]] = deque()
        upcoming = iter(range(cfg.chunks))
        for i in upcoming:
            pending.append(pool.submit(generate_chunk, cfg, i))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Outputs:
    """The open sinks of one world (sources, truth, staged departures)."""

    def __init__(self, out_dir: Path, first: ChunkResult) -> None:
        self.out_dir = out_dir
        self.sinks: dict[str, Sink] = {}
        for src in SOURCES:
            rel, fmt = f"sources/{src.filename}", src.fmt
            if src.name == "departures":
                rel, fmt = f"{STAGING}/departures.parquet", "parquet"
            self.sinks[src.name] = Sink(out_dir / rel, fmt, first.sources[src.name].schema)
        self.sinks["records"] = Sink(
            out_dir / "truth/records.parquet", "parquet", first.records.schema
        )
        self.sinks["persons"] = Sink(
            out_dir / "truth/persons.parquet", "parquet", first.truth.schema
        )

    def write(self, chunk: ChunkResult) -> None:
        for name, table in chunk.sources.items():
            self.sinks[name].write(table.cast(self.sinks[name].schema))
        self.sinks["records"].write(chunk.records)
        self.sinks["persons"].write(chunk.truth.cast(self.sinks["persons"].schema))

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


def default_workers(cfg: WorldConfig) -> int:
    """Two worker processes for multi-chunk worlds on machines that have the cores."""
    return 1 if cfg.chunks < 3 else max(1, min(2, os.cpu_count() or 1))


def generate_world(
    config: WorldConfig,
    out_dir: Path,
    progress: Progress | None = None,
    *,
    workers: int | None = None,
) -> WorldSummary:
    """Generate a synthetic world into ``out_dir`` and return (and write) its manifest.

    ``progress(stage, done, total)`` is called after each chunk (stage ``"persons"``) and
    around the final departure sort (stage ``"departures"``). Output is byte-identical for
    equal configs, whatever ``workers`` is.
    """
    out_dir = Path(out_dir)
    for sub in ("sources", "truth", STAGING):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    report = progress or (lambda stage, done, total: None)
    counts: dict[str, Counter[str]] = {"category": Counter(), "name_culture": Counter()}
    outputs: _Outputs | None = None
    done = 0
    try:
        for chunk in _results(config, workers or default_workers(config)):
            outputs = outputs or _Outputs(out_dir, chunk)
            outputs.write(chunk)
            for key, counter in chunk.counts.items():
                counts[key].update(counter)
            done += chunk.persons
            report("persons", done, config.persons)
    finally:
        if outputs:
            outputs.close()
    assert outputs is not None
    return _finish(config, out_dir, outputs, counts, report)


def _finish(
    cfg: WorldConfig,
    out_dir: Path,
    outputs: _Outputs,
    counts: dict[str, Counter[str]],
    report: Progress,
) -> WorldSummary:
    report("departures", 0, 1)
    sort_departures(out_dir / STAGING / "departures.parquet", out_dir / "sources/departures.jsonl")
    report("departures", 1, 1)
    shutil.rmtree(out_dir / STAGING, ignore_errors=True)
    summary = WorldSummary(out_dir, cfg.persons, cfg.seed, config=cfg.to_dict())
    for src in SOURCES:
        rows = outputs.sinks[src.name].rows
        summary.files.append(summarize(out_dir, f"sources/{src.filename}", src.fmt, rows))
    for name in ("records", "persons"):
        summary.files.append(
            summarize(out_dir, f"truth/{name}.parquet", "parquet", outputs.sinks[name].rows)
        )
    summary.counts = {k: dict(sorted(v.items())) for k, v in counts.items()}
    summary.counts["records"] = {f.path: f.rows for f in summary.files}
    write_manifest(summary)
    return summary
