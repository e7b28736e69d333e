"""Keys seen earlier in one input, kept on disk so memory does not grow with the input.

A key that appears twice in one input with different content must be refused the second time
(loading it would make a new version at every re-run of the same file). Remembering every key
of a billion-row input in a Python dict would need more memory than the file; here the keys
and their content hashes live in a DuckDB table in a temporary file, and each block is checked
and added with one join and one append.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa


class SeenKeys:
    """Record key → content hash of its first row in this input, on disk."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="immos-seen-")
        self._db = duckdb.connect(str(Path(self._folder.name) / "seen.duckdb"))
        self._db.execute("SET memory_limit = '64MB'")  # spill to the file, never grow with input
        self._db.execute("CREATE TABLE seen (k VARCHAR PRIMARY KEY, d VARCHAR)")

    def first_hashes(self, keys: list[str], digests: list[str]) -> list[str]:
        """For each row, the hash its key had on first sight (its own if new); then remember.

        Rows are taken in order, so within the block too the first occurrence wins.
        """
        within: dict[str, str] = {}
        for key, digest in zip(keys, digests, strict=True):
            within.setdefault(key, digest)
        block = pa.table({"k": list(within), "d": list(within.values())})
        self._db.register("block", block)
        try:
            earlier = dict(
                self._db.execute("SELECT seen.k, seen.d FROM seen JOIN block USING (k)").fetchall()
            )
            self._db.execute(
                "INSERT INTO seen SELECT k, d FROM block WHERE k NOT IN (SELECT k FROM seen)"
            )
        finally:
            self._db.unregister("block")
        first = {**within, **earlier}
        return [first[key] for key in keys]

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
