"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

The request or command boundary owns the transaction (:func:`transaction`); services never
commit. On SQLite every transaction begins ``IMMEDIATE``: almost every unit of work appends to
the audit chain, so taking the write lock up front avoids deadlocking upgrades between
concurrent readers-turned-writers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from immigrationos.core.settings import get_settings

#: How much of a SQLite file its connections read through a memory map (SQLite caps it at
#: its own maximum, 2 GiB in Debian's build). A connection drops its page cache whenever
#: another connection (another process) committed since its last transaction; pages read
#: through the map come from the operating system's cache without a system call each, so
#: two departure consumers writing in turn spend less re-reading (0.26 CPU ms an event
#: against 0.30 at 1M persons; one writer alone is unchanged).
MMAP_BYTES = 2**31


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the begin hook below control transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB: ingest writes random-key indexes
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _json_loads(text: str | bytes) -> Any:
    """JSON columns parsed by orjson (several times faster than the standard library, which a
    request's reads felt); text it refuses (``NaN``, integers past 64 bits) by the standard
    library, as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json_dumps(value: Any) -> str:
    """JSON columns written by orjson (compact; keys that are not strings become strings, as
    the standard library makes them)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: the configured database), tuned for its backend."""
    url = url or get_settings().effective_database_url
    kwargs.setdefault("json_deserializer", _json_loads)
    kwargs.setdefault("json_serializer", _json_dumps)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose sessions keep objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises."""
    with factory() as session, session.begin():
        yield session
