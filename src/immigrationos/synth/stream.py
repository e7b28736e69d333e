"""The departure event stream: globally time-ordered JSON Lines.

Chunks produce departures per person, not in time order, so they are staged as Parquet and
sorted once at the end by DuckDB (an external sort that spills to disk, so memory stays bounded)
on ``(occurred_at, event_id)``, a total order, which makes the output deterministic.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def sort_departures(staged: Path, out: Path, threads: int = 2) -> int:
    """Write ``out`` as JSON Lines sorted by occurrence time then event id; returns the rows."""
    con = duckdb.connect()
    try:
        con.execute(f"SET threads={int(threads)}")
        con.execute("SET preserve_insertion_order=true")
        con.execute(f"SET temp_directory='{_quote(staged.parent / 'duckdb_tmp')}'")
        source = f"read_parquet('{_quote(staged)}')"
        query = f"SELECT * FROM {source} ORDER BY occurred_at, event_id"
        con.execute(f"COPY ({query}) TO '{_quote(out)}' (FORMAT JSON)")
        row = con.execute(f"SELECT count(*) FROM {source}").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
