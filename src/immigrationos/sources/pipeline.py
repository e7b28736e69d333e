"""Read and validate the next blocks of an input while the current one is written.

Ingest alternates two kinds of work: reading, checking, serialising and hashing a block (Arrow,
DuckDB) and writing it (the database driver, waiting on SQLite's engine or the PostgreSQL
server). Done one after the other, each waits for the other; here the first kind runs ahead
of the writer by a bounded number of blocks, so the two overlap, and memory stays bounded by
``depth`` blocks.

Two forms, one interface. :class:`Prefetch` produces in a background thread: no start-up
cost, but the threads share the GIL, and the SQLite driver takes it back after every row it
steps, so a busy producer slows the writer. :class:`ProcessPrefetch` produces in a separate
Python process that hands over finished blocks as pickled frames on a pipe (Arrow arrays
pickle without copying row by row): about a second to start (its imports and the first
block), then no shared lock at all. Ingest uses the process for large inputs and the thread
for the rest.

A hand-written piece, not a dependency: the standard library's executors would submit the
whole input at once (unbounded memory) or need one task per block with ordering bookkeeping;
this is one producer, one bounded queue and a stop flag.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
#: How long the consumer waits for a stopped producer process before terminating it.
_STOP_SECONDS = 10.0


class ReaderUnavailable(RuntimeError):
    """The producer process could not start, or ended before handing over anything (say,
    the interpreter failed to start or to import the work); nothing was consumed, so the
    caller may produce in a thread instead."""


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


#: A frame on the reading process's standard output: the pickled item's length, then it.
_FRAME = struct.Struct("<Q")
#: The reading process: takes the parent's import path, then its work, from standard input.
_CHILD = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
    "from immigrationos.sources.pipeline import _child_main; _child_main()"
)


def _frame(item: object) -> bytes:
    try:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an error that does not pickle still reaches the parent, as text
        if not isinstance(item, _Failed):
            raise
        error = item.error
        data = pickle.dumps(_Failed(RuntimeError(f"{type(error).__name__}: {error}")))
    return _FRAME.pack(len(data)) + data


def _child_main() -> None:
    """The reading process: produce the items, hand each over as a frame on standard output,
    at most ``depth`` ahead of the parent (a thread writes; a full pipe holds it back). The
    parent closing the pipe is the signal to stop."""
    produce, args, depth = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever the work prints must not end up among the frames
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over() -> None:
        try:
            while True:
                item = items.get()
                out.write(_frame(item))
                out.flush()
                if isinstance(item, _Done | _Failed):
                    return
        except OSError:  # the parent stopped reading (a broken pipe): the producer sees it
            stop.set()

    writer = threading.Thread(target=hand_over, name="immos-ingest-hand-over", daemon=True)
    writer.start()
    _produce(produce(*args), items, stop, _vm_hwm_mib)
    writer.join()


class ProcessPrefetch(Generic[T]):
    """:class:`Prefetch` with the producer, ``produce(*args)``, in a separate process.

    ``produce`` must be a module-level function and ``args`` and the items picklable. The
    process is a fresh interpreter that imports only what ``produce`` needs: unlike
    :mod:`multiprocessing`'s spawn, it does not import the caller's ``__main__`` again (for
    ``immos`` that was the whole command line, 2.8 s before the first block). Items come back
    as pickled frames on its standard output. After the items are exhausted,
    :attr:`peak_rss_mib` holds the producer process's peak memory.
    """

    def __init__(
        self, produce: Callable[..., Iterator[T]], args: tuple[Any, ...], depth: int = 2
    ) -> None:
        self._work = (produce, args, depth)
        self._process: subprocess.Popen[bytes] | None = None
        self.peak_rss_mib: float | None = None
        self._delivered = 0

    def _get(self) -> object:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        header = stream.read(_FRAME.size)
        data = stream.read(_FRAME.unpack(header)[0]) if len(header) == _FRAME.size else b""
        if not data:
            self._process.wait()
            if not self._delivered:
                raise ReaderUnavailable("the ingest reading process did not start")
            raise RuntimeError("the ingest reading process ended unexpectedly")
        self._delivered += 1
        item = pickle.loads(data)
        if isinstance(item, _Done):
            self.peak_rss_mib = item.peak_rss_mib
        return item

    def __iter__(self) -> Iterator[T]:
        return _received(self._get)

    def __enter__(self) -> ProcessPrefetch[T]:
        work = pickle.dumps(self._work, protocol=pickle.HIGHEST_PROTOCOL)  # fails here, if so
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        except OSError as error:  # no interpreter to start (an embedded Python, say)
            raise ReaderUnavailable(f"the ingest reading process did not start: {error}") from error
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it died at once: the first read says so
            pickle.dump(list(sys.path), self._process.stdin)
            self._process.stdin.write(work)
            self._process.stdin.close()
        return self

    def __exit__(self, *_exc: object) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdout is not None
        process.stdout.close()  # a producer still writing gets a broken pipe and stops
        try:
            process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
