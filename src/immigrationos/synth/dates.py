"""Dates as int32 day numbers (days since 1970-01-01), vectorised.

Day numbers keep the generator in numpy: comparisons, offsets and sorting are plain integer
operations, and conversion to Arrow ``date32`` is zero-copy. ``NULL`` marks an absent date.
"""

from __future__ import annotations

from datetime import date

import numpy as np

NULL = np.int32(np.iinfo(np.int32).min)
YEAR = 365.25
EPOCH = date(1970, 1, 1)


def day(d: date) -> int:
    """Day number of a date."""
    return (d - EPOCH).days


def ymd(year: np.ndarray, month: np.ndarray, dom: np.ndarray) -> np.ndarray:
    """Day numbers from year, month and day-of-month arrays (assumed valid)."""
    months = (year.astype(np.int64) - 1970) * 12 + (month.astype(np.int64) - 1)
    first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return (first + dom.astype(np.int64) - 1).astype(np.int32)


def parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day-of-month of day numbers."""
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    dom = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, dom


def uniform(
    rng: np.random.Generator, low: np.ndarray | int, high: np.ndarray | int, n: int
) -> np.ndarray:
    """Uniform day numbers in ``[low, high)`` (``high`` is raised to ``low + 1`` if needed)."""
    lo = np.broadcast_to(np.asarray(low, dtype=np.int64), (n,))
    hi = np.maximum(np.broadcast_to(np.asarray(high, dtype=np.int64), (n,)), lo + 1)
    return (lo + np.floor(rng.random(n) * (hi - lo)).astype(np.int64)).astype(np.int32)


def years(n: float) -> int:
    """Whole days in ``n`` years."""
    return round(n * YEAR)


def iso(days: np.ndarray) -> np.ndarray:
    """ISO strings (object array, ``None`` for NULL)."""
    out = days.astype("datetime64[D]").astype(str).astype(object)
    out[days == NULL] = None
    return out
