"""Keys seen earlier in one input, kept on disk so memory does not grow with the input.

A key that appears twice in one input with different content must be refused the second time
(loading it would make a new version at every re-run of the same file). Remembering every key
of a billion-row input in a Python dict would need more memory than the file; here the keys
and their content hashes live in a DuckDB table that spills to a temporary folder, and each
block is checked and added with one join and one append.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

#: Each row's first hash and whether its key came before. ``seen`` holds each key once (only
#: first sightings are appended), so the join never multiplies rows.
_CHECK = """
SELECT block.k, block.d, coalesce(seen.d, first_value(block.d) OVER w) AS first,
       seen.k IS NOT NULL OR row_number() OVER w > 1 AS repeat
FROM block LEFT JOIN seen USING (k)
WINDOW w AS (PARTITION BY block.k ORDER BY block.i)
ORDER BY block.i
"""


class SeenKeys:
    """Record key → content hash of its first row in this input, on disk."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="immos-seen-")
        # An in-memory database that spills to the temporary folder past its memory limit: as
        # bounded as a database file, without writing every block through to disk.
        self._db = duckdb.connect(":memory:")
        self._db.execute(f"SET temp_directory = '{Path(self._folder.name) / 'spill'}'")
        self._db.execute("SET memory_limit = '64MB'")  # spill, never grow with the input
        self._db.execute("SET threads = 1")
        # No key index: DuckDB keeps indexes in memory, which would grow with the input.
        self._db.execute("CREATE TABLE seen (k VARCHAR, d VARCHAR)")

    def check(self, keys: pa.Array, digests: pa.Array) -> tuple[pa.Array, pa.Array]:
        """For each row: the hash its key had on first sight (its own if new), and whether the
        key was seen before (earlier in this block or in an earlier one); then remember.

        Rows are taken in order, so within the block too the first occurrence wins. One join
        and one append in DuckDB, whatever the block size.
        """
        block = pa.table({"k": keys, "d": digests, "i": pa.array(range(len(keys)), pa.int64())})
        self._db.register("block", block)
        try:
            result = self._db.sql(_CHECK).to_arrow_table()
        finally:
            self._db.unregister("block")
        repeat = result["repeat"].combine_chunks()
        self._db.register("firsts", result.filter(pc.invert(repeat)).select(["k", "d"]))
        try:
            self._db.execute("INSERT INTO seen SELECT k, d FROM firsts")
        finally:
            self._db.unregister("firsts")
        return result["first"].combine_chunks(), repeat

    def first_hashes(self, keys: list[str], digests: list[str]) -> tuple[list[str], list[bool]]:
        """:meth:`check` for Python lists (the row path)."""
        first, repeat = self.check(pa.array(keys, pa.string()), pa.array(digests, pa.string()))
        return first.to_pylist(), repeat.to_pylist()

    def close(self) -> None:
        """Drop the table and its file."""
        self._db.close()
        self._folder.cleanup()

    def __enter__(self) -> SeenKeys:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
