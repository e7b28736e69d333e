"""The group check of incremental linking: a new record against a person's other records.

Batch clustering joins two groups of records only if the joining pair's weight, plus what
the groups disagree on among the things a person has one of (:data:`~immigrationos.
resolution.comparisons.TRAITS`: A-number, passport, birth date, FIN, sex, nationality...),
still reaches the link weight (:class:`~immigrationos.resolution.cluster.Traits`). A new
record linked to the index is a group of one, and the same rule applies to it: when it holds
a trait that its best pair's record lacks (a naturalisation certificate has no A-number) and
the person's other records hold that trait with none of its values, the trait's "different"
weight counts against the pair. Without this, a fresh encounter with an A-number joins a
namesake through a certificate that only carries a name and a birth date, although the
person's court record names another A-number: the batch run would have kept them apart.

:class:`GroupCheck` holds each person's rows (sorted once, records added later in a dict)
and each row's trait values, and computes the penalty of each pair whose weight reaches the
review weight (a penalty only lowers a weight, so lower pairs cannot change a band).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from immigrationos.resolution.columns import FeatureColumns, value_hash
from immigrationos.resolution.comparisons import distinct
from immigrationos.resolution.model import Contribution, Parameters, Score

Rows = npt.NDArray[np.int64]
#: Up to this many pairs reaching the review weight are checked one by one in Python (a few
#: microseconds each); more, as arrays (a few dozen array operations, whatever their number).
FEW = 16
#: What an explanation's contribution of a trait held apart is named after (then the trait).
GROUP = "group: "
#: Each trait in words, for the reason a decision gives.
WORDS = {"a_number": "A-number", "passport": "passport number", "birth_date": "birth date",
         "fin": "FIN", "itin": "ITIN", "national_id": "national id number"}  # fmt: skip


@dataclass(frozen=True)
class Pairs:
    """Pairs of new records and index rows: pair ``i`` is ``lefts[of[i]]`` against row
    ``rows[i]``, a record of person ``codes[i]``."""

    lefts: Sequence[Mapping[str, Any]]
    of: npt.NDArray[np.intp]
    rows: Rows
    codes: npt.NDArray[Any]


@dataclass(frozen=True)
class HeldApart:
    """Each pair's penalty (0 for most), and for penalised pairs the traits behind it."""

    penalty: npt.NDArray[np.float64]
    traits: dict[int, tuple[int, ...]]
    """Pair → indexes into :attr:`GroupCheck.traits` of the traits held apart."""


class GroupCheck:
    """Per person, the rows of the index; per pair, what the person's other records say."""

    def __init__(self, params: Parameters, features: FeatureColumns, codes: npt.NDArray[Any],
                 built: int) -> None:  # fmt: skip
        self.traits = params.traits()
        """(comparison, feature column, weight of its 'different' level) of each trait."""
        self._weight_list = [t[2] for t in self.traits]
        self._features = features
        self._slots = [features.slot[column] for _, column, _ in self.traits]
        self._dob = next((i for i, t in enumerate(self.traits) if t[1] == "dob"), None)
        self._default = features.slot.get("flag:dob_default")
        self._values = self._held_of(0, built)
        """Each row's trait values (a copy of those columns: a few rows read from it cost a
        few microseconds, from the feature matrix several times that)."""
        said = "another value on the person's other records"
        self._contributions = [
            Contribution(f"{GROUP}{name}", said, -1, weight) for name, _, weight in self.traits
        ]
        built_codes = np.asarray(codes[:built])
        self._order = np.argsort(built_codes, kind="stable")
        self._persons = int(built_codes.max(initial=-1)) + 1
        """Person codes ``0 .. _persons - 1`` have rows in the build; later ones only added."""
        starts = np.searchsorted(built_codes[self._order], np.arange(self._persons + 1))
        # Person ``c``'s built rows are ``_order[_starts[c]:_starts[c + 1]]``; a code past the
        # build reads the empty range at the end.
        self._starts = np.append(starts, starts[-1])
        self._added: dict[int, list[int]] = {}

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays."""
        return int(self._values.nbytes + self._order.nbytes + self._starts.nbytes)

    def add_many(self, first: int, codes: Sequence[int]) -> None:
        """Records added to the index after the build (their features already appended), as
        rows ``first``, ``first + 1``, … of persons ``codes``, read in one slice."""
        stop = first + len(codes)
        if stop > len(self._values):
            grown = np.zeros((int(stop * 1.25) + 1024, len(self.traits)), dtype=np.uint64)
            grown[: len(self._values)] = self._values
            self._values = grown
        self._values[first:stop] = self._held_of(first, stop)
        for row, code in enumerate(codes, start=first):
            self._added.setdefault(code, []).append(row)

    def trait_keys(self, rows: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.uint64]:
        """The trait values of feature rows as the index holds them (0: none; a birth date
        defaulted to 1 January counts as none, as in clustering)."""
        return np.array([self._keys(row) for row in rows], dtype=np.uint64).reshape(
            len(rows), len(self.traits)
        )

    def _keys(self, row: Mapping[str, Any]) -> list[int]:
        """:meth:`trait_keys` of one row, as a list."""
        out = []
        for t, (_, column, _) in enumerate(self.traits):
            value = row.get(column)
            missing = value is None or value == "" or (t == self._dob and row.get("dob_default"))
            out.append(0 if missing else value_hash(value))
        return out

    def _held_of(self, start: int, stop: int) -> npt.NDArray[np.uint64]:
        """The trait values of index rows ``start`` to ``stop`` (0: none, or a defaulted
        birth date), read from the feature matrix."""
        matrix = self._features.matrix
        out = matrix[start:stop][:, self._slots]
        if self._dob is not None and self._default is not None:
            out[matrix[start:stop, self._default] != 0, self._dob] = 0
        return out

    def _members(self, codes: npt.NDArray[Any]) -> tuple[Rows, npt.NDArray[np.intp]]:
        """Every row of each person in ``codes``, and for each row the position in ``codes``
        it belongs to (grouped by position)."""
        known = np.minimum(codes, self._persons)
        starts = self._starts[known]
        lengths = self._starts[known + 1] - starts
        owner = np.repeat(np.arange(len(codes)), lengths)
        offsets = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = self._order[np.repeat(starts, lengths) + offsets].astype(np.int64)
        extra = [(i, r) for i, c in enumerate(codes.tolist()) for r in self._added.get(c, ())]
        if extra:
            more_owner, more_rows = zip(*extra, strict=True)
            owner = np.concatenate([owner, np.array(more_owner, dtype=owner.dtype)])
            rows = np.concatenate([rows, np.array(more_rows, dtype=np.int64)])
            order = np.argsort(owner, kind="stable")
            owner, rows = owner[order], rows[order]
        return rows, owner

    def check(
        self, pairs: Pairs, weights: npt.NDArray[np.float64], review_weight: float
    ) -> HeldApart | None:
        """The penalty of each of ``pairs``, weighing ``weights``; None when no pair has one.
        Only pairs reaching ``review_weight`` are checked. A few such pairs (the usual case)
        are checked in Python, many as arrays: both add a pair's trait weights in the same
        order, so the penalties are equal to the bit."""
        if not self.traits:
            return None
        chosen = np.flatnonzero(weights >= review_weight)
        if not len(chosen):
            return None
        if len(chosen) <= FEW:
            found = self._check_few(pairs, chosen.tolist())
        else:
            found = self._check_many(pairs, chosen)
        if not found:
            return None
        penalty = np.zeros(len(weights), dtype=np.float64)
        for pair, traits in found.items():
            total = 0.0
            for t in traits:
                total += self._weight_list[t]
            penalty[pair] = total
        return HeldApart(penalty, found)

    def _check_few(self, pairs: Pairs, chosen: list[int]) -> dict[int, tuple[int, ...]]:
        """:meth:`check` of a few pairs, one by one in Python."""
        lefts, of, rows, codes = pairs.lefts, pairs.of, pairs.rows, pairs.codes
        found: dict[int, tuple[int, ...]] = {}
        keys: dict[int, list[int]] = {}
        held = self._values
        for pair in chosen:
            record = int(of[pair])
            mine = keys.get(record)
            if mine is None:
                mine = keys[record] = self._keys(lefts[record])
            own = held[int(rows[pair])].tolist()
            open_ = [t for t, (m, o) in enumerate(zip(mine, own, strict=True)) if m and not o]
            if not open_:
                continue
            values = [held[r].tolist() for r in self._member_list(int(codes[pair]))]
            apart = tuple(
                t for t in open_
                if any(v[t] for v in values) and not any(v[t] == mine[t] for v in values)
            )  # fmt: skip
            if apart:
                found[pair] = apart
        return found

    def _check_many(self, pairs: Pairs, chosen: npt.NDArray[np.intp]) -> dict[int, tuple[int, ...]]:
        """:meth:`check` of many pairs as arrays."""
        lefts, of, rows, codes = pairs.lefts, pairs.of, pairs.rows, pairs.codes
        records = distinct(of[chosen])
        keys = self.trait_keys([lefts[i] for i in records.tolist()])
        mine = keys[np.searchsorted(records, of[chosen])]
        # A trait counts when the new record holds it and the pair's own record does not
        # (when both hold it, the pair's weight has already compared it).
        open_ = (mine != 0) & (self._values[rows[chosen]] == 0)
        some = open_.any(axis=1)
        if not some.any():
            return {}
        chosen, mine, open_ = chosen[some], mine[some], open_[some]
        members, owner = self._members(codes[chosen])
        values = self._values[members]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        held = np.logical_or.reduceat(values != 0, starts, axis=0)
        same = np.logical_or.reduceat(values == mine[owner], starts, axis=0)
        apart = open_ & held & ~same
        return {
            pair: tuple(np.flatnonzero(flags).tolist())
            for pair, flags in zip(chosen.tolist(), apart, strict=True)
            if flags.any()
        }

    def _member_list(self, code: int) -> list[int]:
        """Every row of person ``code``."""
        known = min(code, self._persons)
        found: list[int] = self._order[self._starts[known] : self._starts[known + 1]].tolist()
        return found + self._added.get(code, [])

    def applied(self, score: Score, traits: tuple[int, ...], weight: float) -> Score:
        """``score`` with the traits held apart as contributions, weighing ``weight``."""
        return Score(weight, (*score.contributions,
                              *(self._contributions[t] for t in traits)))  # fmt: skip


def held_back(comparisons: Iterable[str]) -> str:
    """What a decision's reason adds when its best person was held back by the check, from
    the names of its pair's contributions ("" when none is the check's)."""
    apart = [c[len(GROUP) :] for c in comparisons if c.startswith(GROUP)]
    if not apart:
        return ""
    words = ", ".join(WORDS.get(a, a) for a in apart)
    return f"; the group check held the best person back: their other records hold another {words}"
