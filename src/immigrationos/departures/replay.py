"""The embedded transport: replaying a stream file (JSON Lines) through the processor.

Events are paced at ``rate`` per second (or as fast as the processor goes), gathered into
batches of at most ``batch_size`` events or ``max_delay`` seconds, and each event's lag is
measured from the moment the pacing released it, so the monitor shows what a live feed of
that rate would see. The same :class:`~immigrationos.departures.service.Processor` serves the
HTTP endpoint and NATS JetStream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from immigrationos.departures.service import BATCH, Outcome, Processor, Received


@dataclass
class ReplayReport:
    """What a replay did: events read, outcomes by status and band, speed."""

    events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    bands: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            self.events += 1
            self.statuses[o.status] = self.statuses.get(o.status, 0) + 1
            if o.band:
                self.bands[o.band] = self.bands.get(o.band, 0) + 1
            for e in o.effects:
                if e.get("applied"):
                    self.steps[e["step"]] = self.steps.get(e["step"], 0) + 1

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def lines_of(path: Path, since: datetime | None = None) -> Iterator[bytes]:
    """The non-empty lines of a stream file; with ``since``, only events that occurred then
    or later (a cheap text test on ``occurred_at``; lines that cannot be read are kept, so
    the processor dead-letters them)."""
    import orjson

    with path.open("rb") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            if since is not None:
                try:
                    at = orjson.loads(line).get("occurred_at")
                    if at and datetime.fromisoformat(at.replace("Z", "+00:00")) < since:
                        continue
                except (orjson.JSONDecodeError, AttributeError, ValueError):
                    pass
            yield line


def replay(
    processor: Processor,
    lines: Iterable[bytes],
    rate: float | None = None,
    batch_size: int = BATCH,
    max_delay: float = 0.05,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Feed ``lines`` to the processor at ``rate`` events per second (None: at once)."""
    report = ReplayReport()
    started = time.perf_counter()
    batch: list[Received] = []
    opened = time.perf_counter()
    for n, line in enumerate(lines):
        if rate:
            due = started + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                if batch and time.perf_counter() + pause - opened > max_delay:
                    _flush(processor, batch, report, progress)
                    batch = []
                time.sleep(pause)
        if not batch:
            opened = time.perf_counter()
        batch.append(Received(line, datetime.now(UTC)))
        if len(batch) >= batch_size or (rate and time.perf_counter() - opened >= max_delay):
            _flush(processor, batch, report, progress)
            batch = []
    if batch:
        _flush(processor, batch, report, progress)
    report.seconds = time.perf_counter() - started
    return report


def _flush(
    processor: Processor,
    batch: list[Received],
    report: ReplayReport,
    progress: Callable[[int], None] | None,
) -> None:
    report.add(processor.process(batch))
    if progress:
        progress(len(batch))
