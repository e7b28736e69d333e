"""``store.engine``: the settings every SQLite connection gets, and that reads through the
memory map still see what another connection committed."""

from __future__ import annotations

from pathlib import Path

from immigrationos.store.engine import MMAP_BYTES, make_engine


def test_a_sqlite_connection_is_set_up_for_the_store(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "foreign_keys", "synchronous", "mmap_size")
            }
    finally:
        engine.dispose()
    assert pragma["journal_mode"] == "wal" and pragma["foreign_keys"] == 1
    assert pragma["synchronous"] == 1  # NORMAL
    # SQLite caps the map at its build's maximum (2 GiB here); it is on either way.
    assert 0 < pragma["mmap_size"] <= MMAP_BYTES


def test_reads_through_the_map_see_another_connections_commits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    reader, writer = make_engine(url), make_engine(url)
    try:
        with writer.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            conn.exec_driver_sql("INSERT INTO t (v) VALUES ('first')")
        with reader.connect() as conn:  # kept open: its cache holds the table's pages
            assert conn.exec_driver_sql("SELECT v FROM t").scalars().all() == ["first"]
            conn.commit()
            with writer.begin() as other:
                other.exec_driver_sql("UPDATE t SET v = 'changed'")
                other.exec_driver_sql("INSERT INTO t (v) VALUES ('second')")
            seen = conn.exec_driver_sql("SELECT v FROM t ORDER BY id").scalars().all()
            assert seen == ["changed", "second"]
    finally:
        reader.dispose()
        writer.dispose()
