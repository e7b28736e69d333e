"""Keys seen earlier in one input, kept on disk so memory does not grow with the input.

A key that appears twice in one input with different content must be refused the second time
(loading it would make a new version at every re-run of the same file). Remembering every key
of a billion-row input in a Python dict would need more memory than the file; here the keys
and their content hashes live in a DuckDB table that spills to a temporary folder, and each
block is checked and added with one join and one append.

The join scans every key seen so far, so checking each block that way grows with the input
(quadratic over a file). A Bloom filter of fixed size (:data:`FILTER_BITS`, 32 MiB) sits in
front: a key it has never been given was certainly not seen, so a block whose keys all miss
it (every block of an ordinary first load) is checked within itself alone; only a block with
a possible repeat is joined, and then only against the keys the filter let through. Exact
either way: the filter can only send a new key to the join, never pass a seen one. Past a
few tens of millions of keys it fills and more blocks take the join, as before.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import TracebackType

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Size of the filter in bits (a power of two): 32 MiB. Measured on random hashes: after a
#: million distinct keys a new key is a false "maybe" about once in 700,000, after ten
#: million once in 1,400 (a block of 25,000 then takes the join, limited to those keys).
FILTER_BITS = 2**28
#: Bit positions per key.
_PROBES = 6

#: Each row's first hash and whether its key came before. ``seen`` holds each key once (only
#: first sightings are appended), so the join never multiplies rows; it is limited to the
#: keys the filter could not rule out (``maybe``).
_CHECK = """
SELECT block.k, block.d, coalesce(seen.d, first_value(block.d) OVER w) AS first,
       seen.k IS NOT NULL OR row_number() OVER w > 1 AS repeat
FROM block LEFT JOIN (SELECT k, d FROM seen WHERE k IN (SELECT k FROM maybe)) AS seen USING (k)
WINDOW w AS (PARTITION BY block.k ORDER BY block.i)
ORDER BY block.i
"""
#: The same within the block alone (no key of it can have been seen before).
_CHECK_WITHIN = """
SELECT block.k, block.d, first_value(block.d) OVER w AS first, row_number() OVER w > 1 AS repeat
FROM block
WINDOW w AS (PARTITION BY block.k ORDER BY block.i)
ORDER BY block.i
"""


class _Bloom:
    """A blocked Bloom filter over 64-bit key hashes: ``add`` them, then ``maybe`` says which
    might have been added (never a false negative). Each key sets :data:`_PROBES` bits of one
    64-bit word (its low bits choose the word, its high bits the bits): one read per key."""

    def __init__(self, bits: int) -> None:
        if bits < 64 or bits & (bits - 1):
            raise ValueError(f"a filter's size must be a power of two of at least 64 bits: {bits}")
        self._words = np.zeros(bits // 64, np.uint64)
        self._mask = np.uint64(bits // 64 - 1)

    def _place(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bits = np.zeros(len(hashes), np.uint64)
        for probe in range(_PROBES):
            shift = np.uint64(64 - 6 * (probe + 1))
            bits |= np.uint64(1) << ((hashes >> shift) & np.uint64(63))
        return hashes & self._mask, bits

    def maybe(self, hashes: np.ndarray) -> np.ndarray:
        words, bits = self._place(hashes)
        return np.asarray((self._words[words] & bits) == bits)

    def add(self, hashes: np.ndarray) -> None:
        words, bits = self._place(hashes)
        np.bitwise_or.at(self._words, words, bits)  # unbuffered: repeated words all count


class SeenKeys:
    """Record key → content hash of its first row in this input, on disk."""

    def __init__(self, filter_bits: int = FILTER_BITS) -> None:
        self._filter = _Bloom(filter_bits)
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

        Rows are taken in order, so within the block too the first occurrence wins. At most
        one join (only when the filter cannot rule a repeat out) and one append in DuckDB,
        whatever the block size.
        """
        block = pa.table({"k": keys, "d": digests, "i": pa.array(range(len(keys)), pa.int64())})
        self._db.register("block", block)
        try:
            hashes = self._db.sql("SELECT hash(k) AS h FROM block ORDER BY i").fetchnumpy()["h"]
            maybe = self._filter.maybe(hashes)
            if maybe.any():
                self._db.register("maybe", pa.table({"k": pc.filter(keys, pa.array(maybe))}))
                try:
                    result = self._db.sql(_CHECK).to_arrow_table()
                finally:
                    self._db.unregister("maybe")
            elif pc.count_distinct(keys).as_py() == len(keys):  # all new, none twice
                self._remember(pa.table({"k": keys, "d": digests}))
                self._filter.add(hashes)
                return digests, pa.array(np.zeros(len(keys), np.bool_))
            else:
                result = self._db.sql(_CHECK_WITHIN).to_arrow_table()
        finally:
            self._db.unregister("block")
        repeat = result["repeat"].combine_chunks()
        self._remember(result.filter(pc.invert(repeat)).select(["k", "d"]))
        self._filter.add(hashes[~repeat.to_numpy(zero_copy_only=False)])
        return result["first"].combine_chunks(), repeat

    def _remember(self, firsts: pa.Table) -> None:
        self._db.register("firsts", firsts)
        try:
            self._db.execute("INSERT INTO seen SELECT k, d FROM firsts")
        finally:
            self._db.unregister("firsts")

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
