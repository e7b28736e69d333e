"""``store.checkpoint.WalCheckpointer``: on SQLite a thread copies what commits wrote to the
log into the database file, the engine's connections checkpoint only past the backstop while
it runs (SQLite's default again after it stops), and nothing happens on PostgreSQL or an
in-memory database. A long-lived departure processor starts it."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from immigrationos.departures.service import Processor
from immigrationos.runtime import Runtime
from immigrationos.store.checkpoint import BACKSTOP_PAGES, DEFAULT_PAGES, WalCheckpointer
from immigrationos.store.engine import make_engine


def _autocheckpoint(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def _write(runtime: Runtime, rows: int) -> None:
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS ckpt_rows (id INTEGER PRIMARY KEY, v)")
        conn.execute(text("INSERT INTO ckpt_rows (v) VALUES (:v)"), [{"v": "x" * 200}] * rows)


def _rows_in_file_alone(db: Path, copy: Path) -> int:
    """The rows a copy of the database file holds without its log (what was checkpointed)."""
    shutil.copyfile(db, copy)
    conn = sqlite3.connect(copy)
    try:
        found = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'ckpt_rows'"
        ).fetchone()[0]
        return int(conn.execute("SELECT count(*) FROM ckpt_rows").fetchone()[0]) if found else 0
    finally:
        conn.close()


def _until(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_commits_reach_the_database_file_through_the_thread(
    runtime: Runtime, tmp_path: Path
) -> None:
    if runtime.backend != "sqlite":
        assert runtime.checkpoint_in_background() is False
        assert runtime.checkpointer is not None and not runtime.checkpointer.running
        return
    db = Path(str(runtime.engine.url.database))
    _write(runtime, 10)  # a small commit: SQLite's own checkpoint waits for 1,000 pages
    assert _rows_in_file_alone(db, tmp_path / "before.db") == 0
    assert runtime.checkpoint_in_background() is True
    assert runtime.checkpoint_in_background() is True  # once
    checkpointer = runtime.checkpointer
    assert checkpointer is not None and checkpointer.running
    _until(lambda: _rows_in_file_alone(db, tmp_path / "after.db") == 10)
    assert checkpointer.passes > 0 and checkpointer.copied > 0
    _write(runtime, 2_000)  # more pages than SQLite's default checkpoints at
    _until(lambda: _rows_in_file_alone(db, tmp_path / "later.db") == 2_010)


def test_connections_checkpoint_only_past_the_backstop_while_it_runs(runtime: Runtime) -> None:
    if runtime.backend != "sqlite":  # PostgreSQL checkpoints by itself: no listener, no thread
        assert runtime.checkpoint_in_background() is False
        assert runtime.checkpointer is not None and not runtime.checkpointer._listening
        return
    assert _autocheckpoint(runtime) == DEFAULT_PAGES
    runtime.checkpoint_in_background()
    assert _autocheckpoint(runtime) == BACKSTOP_PAGES
    assert runtime.checkpointer is not None
    runtime.checkpointer.stop()
    assert not runtime.checkpointer.running
    assert _autocheckpoint(runtime) == DEFAULT_PAGES
    assert runtime.checkpoint_in_background() is True  # started again
    runtime.close()
    assert not runtime.checkpointer.running


def test_nothing_for_an_in_memory_database() -> None:
    engine = make_engine("sqlite:///:memory:")
    try:
        checkpointer = WalCheckpointer(engine)
        assert checkpointer.path is None
        assert checkpointer.start() is False and not checkpointer.running
    finally:
        engine.dispose()


def test_a_long_lived_departure_processor_checkpoints_in_the_background(
    runtime: Runtime,
) -> None:
    Processor(runtime, "http", long_lived=True)
    checkpointer = runtime.checkpointer
    assert checkpointer is not None
    assert checkpointer.running is (runtime.backend == "sqlite")
