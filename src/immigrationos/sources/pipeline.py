"""Read and validate the next blocks of an input while the current one is written.

Ingest alternates two kinds of work: reading, checking, serialising and hashing a block (Arrow,
DuckDB) and writing it (the database driver, waiting on SQLite's engine or the PostgreSQL
server). Done one after the other, each waits for the other; here the first kind runs ahead
of the writer by a bounded number of blocks, so the two overlap, and memory stays bounded by
``depth`` blocks.

Two forms, one interface. :class:`Prefetch` produces in a background thread: no start-up
cost, but the threads share the GIL, and the SQLite driver takes it back after every row it
steps, so a busy producer slows the writer. :class:`ProcessPrefetch` produces in a spawned
process that hands over finished blocks (Arrow arrays pickle without copying row by row): a
second or so to start, then no shared lock at all. Ingest uses the process for large inputs
and the thread for the rest.

A hand-written piece, not a dependency: the standard library's executors would submit the
whole input at once (unbounded memory) or need one task per block with ordering bookkeeping;
this is one producer, one bounded queue and a stop flag.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
#: How long the consumer waits for a stopped producer process before terminating it.
_STOP_SECONDS = 10.0


class ReaderUnavailable(RuntimeError):
    """The producer process ended before handing over anything (it could not start: for
    example a ``__main__`` module without an ``if __name__ == "__main__"`` guard); nothing
    was consumed, so the caller may produce in a thread instead."""


class _Done:
    """The producer finished; ``peak_rss_mib`` is its peak memory (a process producer)."""

    def __init__(self, peak_rss_mib: float | None = None) -> None:
        self.peak_rss_mib = peak_rss_mib


class _Failed:
    """An exception raised by the producer, to be raised again in the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(out: Any, item: object, stop: Any) -> bool:
    """Put ``item`` unless the consumer has stopped; whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(items: Iterator[Any], out: Any, stop: Any, peak: Callable[[], float | None]) -> None:
    try:
        for item in items:
            if not _put(out, item, stop):
                return
    except BaseException as error:  # handed to the consumer, which raises it
        _put(out, _Failed(error), stop)
        return
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    _put(out, _Done(peak()), stop)


def _received(get: Callable[[], object]) -> Iterator[Any]:
    while True:
        item = get()
        if isinstance(item, _Done):
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item


class Prefetch(Generic[T]):
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer.

    Use as a context manager: leaving it (normally or by an exception) stops the producer.
    An exception in the producer is raised in the consumer, at the item where it happened.
    """

    def __init__(self, items: Iterator[T], depth: int = 2, name: str = "immos-ingest-read") -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_produce,
            args=(items, self._queue, self._stop, lambda: None),
            name=name,
            daemon=True,
        )

    def __iter__(self) -> Iterator[T]:
        return _received(self._queue.get)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _vm_hwm_mib() -> float | None:
    """This process's peak resident memory (``VmHWM``), in MiB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _process_main(
    produce: Callable[..., Iterator[Any]], args: tuple[Any, ...], out: Any, stop: Any
) -> None:
    _produce(produce(*args), out, stop, _vm_hwm_mib)


class ProcessPrefetch(Generic[T]):
    """:class:`Prefetch` with the producer, ``produce(*args)``, in a spawned process.

    ``produce`` must be a module-level function and ``args`` and the items picklable. After
    the items are exhausted, :attr:`peak_rss_mib` holds the producer process's peak memory.
    """

    def __init__(
        self, produce: Callable[..., Iterator[T]], args: tuple[Any, ...], depth: int = 2
    ) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process holding a DB
        self._queue: Any = context.Queue(maxsize=depth)
        self._stop: Any = context.Event()
        self._process = context.Process(
            target=_process_main,
            args=(produce, args, self._queue, self._stop),
            name="immos-ingest-read",
            daemon=True,
        )
        self.peak_rss_mib: float | None = None
        self._delivered = 0

    def _get(self) -> object:
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                if not self._delivered:
                    raise ReaderUnavailable("the ingest reading process did not start") from None
                raise RuntimeError("the ingest reading process ended unexpectedly") from None
            self._delivered += 1
            if isinstance(item, _Done):
                self.peak_rss_mib = item.peak_rss_mib
            return item

    def __iter__(self) -> Iterator[T]:
        return _received(self._get)

    def __enter__(self) -> ProcessPrefetch[T]:
        self._process.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        deadline = time.monotonic() + _STOP_SECONDS
        while self._process.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):  # it may be handing over a block: drain
                self._queue.get(timeout=0.1)
            self._process.join(timeout=0.05)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._queue.close()
