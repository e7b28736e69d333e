"""The record book: what each source system recorded about whom, before identity rendering.

Lifecycle code says *that* a source holds a record (person, day, source-specific fields); the
book gathers these batches column-wise, and later the noise step adds the identity fields
(names, birth date, documents) as that source would have written them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from immigrationos.synth import dates

#: Columns holding day numbers (NULL when absent) and second timestamps.
DAY_COLUMNS = frozenset(
    {
        "admitted_on",
        "admitted_until",
        "issued_on",
        "filed_on",
        "decided_on",
        "valid_until",
        "nta_served_on",
        "encounter_date",
        "conviction_date",
    }
)
SECOND_COLUMNS = frozenset({"occurred_at", "reported_at"})
INT_COLUMNS = frozenset({"sentence_days", "tax_year"})
NULL_SECONDS = np.int64(np.iinfo(np.int64).min)


def _fill(column: str, n: int) -> np.ndarray:
    if column in DAY_COLUMNS:
        return np.full(n, dates.NULL, dtype=np.int32)
    if column in SECOND_COLUMNS:
        return np.full(n, NULL_SECONDS, dtype=np.int64)
    if column in INT_COLUMNS:
        return np.zeros(n, dtype=np.int64)
    return np.full(n, None, dtype=object)


def _column(column: str, value: Any, n: int) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.shape == (n,):
        if column in DAY_COLUMNS:
            return value.astype(np.int32)
        if column in SECOND_COLUMNS | INT_COLUMNS:
            return value.astype(np.int64)
        return value if value.dtype == object else value.astype(object)
    out = _fill(column, n)
    out[:] = value
    return out


class Book:
    """Record batches per source; ``rows`` concatenates and orders them."""

    def __init__(self) -> None:
        self._parts: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)

    def add(self, source: str, person: np.ndarray, on: np.ndarray, **cols: Any) -> None:
        """Record that ``source`` holds one record per element of ``person`` (dated ``on``)."""
        n = len(person)
        if n == 0:
            return
        batch: dict[str, np.ndarray] = {
            "person": person.astype(np.int64),
            "on": np.broadcast_to(on, (n,)).astype(np.int32),
        }
        batch.update({k: _column(k, v, n) for k, v in cols.items()})
        self._parts[source].append(batch)

    def rows(self, source: str) -> dict[str, np.ndarray]:
        """All records of a source, ordered by person then day, with a per-person rank."""
        parts = self._parts.get(source, [])
        names = sorted({k for part in parts for k in part})
        total = sum(len(part["person"]) for part in parts)
        cols = {
            k: np.concatenate([p[k] if k in p else _fill(k, len(p["person"])) for p in parts])
            if parts
            else _fill(k, 0)
            for k in names
        }
        if total == 0:
            return {
                "person": np.zeros(0, np.int64),
                "on": np.zeros(0, np.int32),
                "rank": np.zeros(0, np.int64),
            }
        order = np.lexsort((np.arange(total), cols["on"], cols["person"]))
        cols = {k: v[order] for k, v in cols.items()}
        cols["rank"] = _rank(cols["person"])
        return cols


def _rank(person: np.ndarray) -> np.ndarray:
    """0, 1, 2... within runs of equal (sorted) person indices."""
    n = len(person)
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.arange(n) - run_start
