"""The index's key lookups give what NumPy's plain search gives: the directory's bisection
(large arrays) and the sorted search (small ones) find every key's stretch, present or not,
with duplicates and at both ends of the key space; membership by a sorted pool is
``np.isin``; and the uncached hash is the cached one."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from immigrationos.resolution.columns import column_hashes, unique_hash, value_hash
from immigrationos.resolution.comparisons import among
from immigrationos.resolution.incremental import SortedKeys

TOP = 2**64 - 1
keys_of = st.lists(
    st.one_of(st.integers(0, TOP), st.sampled_from([0, 1, TOP - 1, TOP, 2**63, 2**63 - 1])),
    max_size=300,
)


def _check(keys: list[int], repeats: list[int], wanted: list[int], small: int) -> None:
    spread = np.repeat(np.array(keys, dtype=np.uint64), repeats[: len(keys)] or 1)
    ordered = np.sort(spread)
    sorted_keys = SortedKeys(ordered)
    sorted_keys.SMALL = small  # 0: always the directory's bisection
    probe = np.array(wanted + keys, dtype=np.uint64)
    lo, hi = sorted_keys.spans(probe)
    assert lo.tolist() == ordered.searchsorted(probe, "left").tolist()
    assert hi.tolist() == ordered.searchsorted(probe, "right").tolist()
    for key, a, b in zip(probe.tolist(), lo.tolist(), hi.tolist(), strict=True):
        assert sorted_keys.span(key) == (a, b)


@settings(max_examples=150, deadline=None)
@given(keys_of, st.lists(st.integers(1, 40), max_size=300), keys_of)
def test_the_directorys_bisection_finds_what_a_plain_search_finds(
    keys: list[int], repeats: list[int], wanted: list[int]
) -> None:
    _check(keys, [*repeats, *[1] * len(keys)], wanted, small=0)


@settings(max_examples=50, deadline=None)
@given(keys_of, keys_of)
def test_the_sorted_search_of_small_arrays_finds_the_same(
    keys: list[int], wanted: list[int]
) -> None:
    _check(keys, [1] * len(keys), wanted, small=1 << 30)


@pytest.mark.parametrize("duplicates", [1, 7, 400])
def test_a_million_keys_with_runs_of_equal_keys(duplicates: int) -> None:
    """At the directory's full size (2**20 entries) with runs of equal keys, as a blocking
    rule's keys have (many records of a common name born on one day)."""
    rng = np.random.default_rng(duplicates)
    distinct = rng.integers(0, TOP, 1_200_000 // duplicates, dtype=np.uint64, endpoint=True)
    ordered = np.sort(np.repeat(distinct, duplicates))
    sorted_keys = SortedKeys(ordered)
    assert sorted_keys.bits == SortedKeys.MAX_BITS and len(ordered) >= SortedKeys.SMALL
    probe = np.concatenate(
        [rng.choice(ordered, 600), rng.integers(0, TOP, 600, dtype=np.uint64, endpoint=True)]
    )
    lo, hi = sorted_keys.spans(probe)
    assert np.array_equal(lo, ordered.searchsorted(probe, "left"))
    assert np.array_equal(hi, ordered.searchsorted(probe, "right"))
    assert np.all(hi[:600] - lo[:600] == duplicates)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40), max_size=200),
       st.lists(st.integers(-(2**40), 2**40), max_size=50))  # fmt: skip
def test_membership_by_a_sorted_pool_is_numpys_isin(values: list[int], pool: list[int]) -> None:
    a = np.array(values, dtype=np.int64)
    b = np.array(pool, dtype=np.int64)
    assert among(a, b).tolist() == np.isin(a, b).tolist()


def test_the_uncached_hash_is_the_cached_one() -> None:
    values = ["A123456789", "GARCIA", "1980-05-04", 1980, "departures:e-1"]
    assert [unique_hash(v) for v in values] == [value_hash(v) for v in values]
    column = pa.chunked_array([["X1", None, "X2", "X1"]])
    assert column_hashes(column, unique=True).tolist() == column_hashes(column).tolist()
    assert column_hashes(column).tolist()[1] == 0
