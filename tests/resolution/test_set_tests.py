"""The batch scorer's set tests (:func:`comparisons.shares`, :func:`comparisons.member`)
against plain Python sets: the same answer for every pair, whatever the left rows, lists and
pairs, and for lists added after the token arrays were made."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from immigrationos.resolution.comparisons import TokenLists, member, shares

TOKENS = st.sampled_from(["ana", "maria", "jose", "luis", "garcia", "lopez", "zhang", "x"])
LISTS = st.lists(st.frozensets(TOKENS, min_size=1, max_size=5), max_size=12)
LEFTS = st.lists(st.lists(TOKENS, max_size=4), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(lists=LISTS, later=LISTS, lefts=LEFTS, data=st.data())
def test_shares_is_a_set_intersection(
    lists: list[frozenset[str]],
    later: list[frozenset[str]],
    lefts: list[list[str]],
    data: st.DataObject,
) -> None:
    sets = [frozenset(), *lists]
    token_lists = TokenLists(sets)
    token_lists.arrays()
    sets.extend(later)  # lists of records added after the arrays were made
    number = token_lists.numbering()
    held = [[number[t] for t in left if t in number] for left in lefts]
    count = data.draw(st.integers(0, 40))
    of = np.array(data.draw(st.lists(st.integers(0, len(lefts) - 1), min_size=count,
                                     max_size=count)), dtype=np.intp)  # fmt: skip
    numbers = np.array(data.draw(st.lists(st.integers(0, len(sets) - 1), min_size=count,
                                          max_size=count)), dtype=np.uint64)  # fmt: skip
    found = shares(of, numbers, held, token_lists)
    expected = [
        bool(set(lefts[i]) & sets[n]) for i, n in zip(of.tolist(), numbers.tolist(), strict=True)
    ]
    assert found.tolist() == expected


@settings(max_examples=200, deadline=None)
@given(
    held=st.lists(st.lists(st.integers(1, 9), max_size=4), min_size=1, max_size=6),
    data=st.data(),
)
def testmember_is_setmembership(held: list[list[int]], data: st.DataObject) -> None:
    count = data.draw(st.integers(0, 40))
    of = np.array(data.draw(st.lists(st.integers(0, len(held) - 1), min_size=count,
                                     max_size=count)), dtype=np.intp)  # fmt: skip
    values = np.array(data.draw(st.lists(st.integers(0, 12), min_size=count, max_size=count)),
                      dtype=np.uint64)  # fmt: skip
    found = member(of, values, held)
    expected = [v != 0 and v in held[i] for i, v in zip(of.tolist(), values.tolist(), strict=True)]
    assert found.tolist() == expected
