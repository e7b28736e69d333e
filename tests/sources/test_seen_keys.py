"""The record of keys seen earlier in one input: exact, whatever its filter lets through."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from immigrationos.sources.seen import SeenKeys, _Bloom

# Keys from a small alphabet repeat often, within a block and across blocks.
KEYS = st.text(alphabet="abcd", min_size=0, max_size=3)
BLOCKS = st.lists(
    st.lists(st.tuples(KEYS, st.sampled_from(["1", "2"])), min_size=1, max_size=30),
    min_size=1,
    max_size=6,
)


def _reference(blocks: list[list[tuple[str, str]]]) -> list[tuple[list[str], list[bool]]]:
    """The first hash of each row's key and whether it came before, with a Python dict."""
    first: dict[str, str] = {}
    out = []
    for block in blocks:
        hashes, repeats = [], []
        for key, digest in block:
            repeats.append(key in first)
            hashes.append(first.setdefault(key, digest))
        out.append((hashes, repeats))
    return out


@settings(max_examples=60, deadline=None)
@given(BLOCKS)
def test_seen_keys_agree_with_a_dict_whatever_the_filter_lets_through(
    blocks: list[list[tuple[str, str]]],
) -> None:
    # 64 bits: a full filter sends nearly every key to the join; the default rules most out.
    for bits in (64, 2**20):
        with SeenKeys(filter_bits=bits) as seen:
            got = []
            for block in blocks:
                keys = pa.array([k for k, _ in block], pa.string())
                digests = pa.array([d for _, d in block], pa.string())
                first, repeat = seen.check(keys, digests)
                got.append((first.to_pylist(), repeat.to_pylist()))
        assert got == _reference(blocks), bits


def test_a_key_seen_in_an_earlier_block_is_a_repeat_even_when_the_block_is_all_distinct() -> None:
    with SeenKeys() as seen:
        seen.check(pa.array(["k1", "k2"]), pa.array(["h1", "h2"]))
        first, repeat = seen.check(pa.array(["k3", "k2"]), pa.array(["h3", "h9"]))
    assert first.to_pylist() == ["h3", "h2"]
    assert repeat.to_pylist() == [False, True]


def test_the_filter_never_forgets_a_key_and_rules_out_most_others() -> None:
    rng = np.random.default_rng(7)
    bloom = _Bloom(2**20)
    added = rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64)
    bloom.add(added[:10_000])
    bloom.add(added[10_000:])
    assert bloom.maybe(added).all()
    others = rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64)
    assert bloom.maybe(others).mean() < 0.01


def test_a_filter_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        SeenKeys(filter_bits=1000)
