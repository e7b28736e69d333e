"""SQLite: the write-ahead log copied into the database by a thread of its own.

In WAL mode a commit appends the changed pages to the log; a *checkpoint* copies them into
the database file and syncs both files (two ``fsync`` calls at ``synchronous=NORMAL``). By
default the connection that commits runs the checkpoint, inside its commit, once the log
holds 1,000 pages. A long-lived writer that commits many pages per transaction (the
departure processor: about ten random-keyed index entries per event, hundreds of pages a
batch) then checkpoints on nearly every commit and waits for the disk each time.

:class:`WalCheckpointer` moves that work to a background thread with its own connection:
every :data:`POLL_SECONDS` it runs a ``PASSIVE`` checkpoint, which copies what is committed
while the writer goes on (SQLite lets a checkpoint run beside one writer and any readers;
Python's driver releases the GIL meanwhile). The engine's own connections checkpoint only
past :data:`BACKSTOP_PAGES`, a bound on the log should the thread fall behind; by then the
thread has copied nearly everything, so that checkpoint is short.

Nothing changes for durability or for readers: commits are written to the log exactly as
before, and a checkpoint, whoever runs it, is the same operation. For services only (the
API server, the departure consumers), started by
:meth:`immigrationos.runtime.Runtime.checkpoint_in_background`; a command that commits once
and exits gains nothing. Nothing is done on PostgreSQL or for an in-memory database.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

#: How often the thread checkpoints (a pass with nothing to copy costs microseconds).
POLL_SECONDS = 0.05
#: The log size (pages of 4 KiB: 64 MiB) from which a committing connection checkpoints
#: itself while the thread runs.
BACKSTOP_PAGES = 16_384
#: SQLite's own default, restored for connections checked out after the thread stops.
DEFAULT_PAGES = 1_000
_INFO_KEY = "immos.wal_autocheckpoint"


class WalCheckpointer:
    """Checkpoints ``engine``'s SQLite file from a daemon thread (see the module's text)."""

    def __init__(
        self, engine: Engine, poll: float = POLL_SECONDS, backstop: int = BACKSTOP_PAGES
    ) -> None:
        self.engine = engine
        self.poll = poll
        self.backstop = backstop
        self.passes = 0
        """Checkpoints the thread ran."""
        self.copied = 0
        """Log frames it copied into the database, as SQLite reports them after each pass (a
        log that a writer restarted and filled past its last size between two passes is
        counted short: a figure for monitoring, not an account)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = False
        self._last = (0, 0)  # (frames in the log, frames checkpointed) after the last pass

    @property
    def path(self) -> str | None:
        """The database file, or None where there is nothing to do (not a SQLite file)."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return str(url.database)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the thread (once); False where it does not apply."""
        path = self.path
        if path is None:
            return False
        if self.running:
            return True
        if not self._listening:
            event.listen(self.engine, "checkout", self._on_checkout)
            self._listening = True
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("PRAGMA synchronous=NORMAL")  # as the engine's: sync on checkpoint
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(connection,), name="immos-wal-checkpoint", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop the thread after its current pass (connections go back to SQLite's default)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def checkpoint(self, connection: sqlite3.Connection) -> int:
        """One ``PASSIVE`` checkpoint; returns the frames it copied."""
        _busy, frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        before_frames, before_done = self._last
        # A log that holds fewer frames than last time was restarted by a writer.
        copied = done - before_done if frames >= before_frames else done
        self._last = (frames, done)
        self.passes += 1
        self.copied += max(copied, 0)
        return max(copied, 0)

    def _run(self, connection: sqlite3.Connection) -> None:
        warned = False
        try:
            while not self._stop.wait(self.poll):
                try:
                    self.checkpoint(connection)
                except sqlite3.Error as exc:  # busy or locked: the next pass tries again
                    if not warned:
                        log.warning("background WAL checkpoint failed (will retry): %s", exc)
                        warned = True
        finally:
            connection.close()

    def _on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """Each connection the engine hands out checkpoints only past the backstop while the
        thread runs, and from SQLite's default otherwise (one pragma when that changes)."""
        want = self.backstop if self.running else DEFAULT_PAGES
        if record.info.get(_INFO_KEY) != want:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(want)}")
            cursor.close()
            record.info[_INFO_KEY] = want
