"""The comparisons of the person model, declared once and compiled two ways.

Each comparison is an ordered list of levels; each level's condition is a small expression
(:class:`Expr`) that compiles to SQL for a Splink dialect (DuckDB by default, Spark to scale
out), evaluates in Python on two feature rows, and evaluates on one row against many at once
(:meth:`Expr.many`, NumPy over :class:`Columns`). Splink trains and predicts with the SQL;
the incremental linker (:mod:`immigrationos.resolution.incremental`) and the departure matcher
score with the array form, and single pairs (reviews, explanations) with the Python form, so a
fresh record is scored by exactly the model that built the index (tests check that all three
agree on sampled pairs).

A tiny expression language is written here because Splink's level creators produce SQL only;
nothing maintained gives one definition both a SQL and a Python evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import JaroWinkler, Levenshtein
from rapidfuzz.process import cdist, cpdist

Dialect = Literal["duckdb", "spark"]
Row = Mapping[str, Any]
Bools = npt.NDArray[np.bool_]
Mask = Bools | bool
"""Per right-hand row, whether a condition holds; a plain bool when it holds for all or none
(the left row alone decides it, as when its value is missing)."""


class Columns(Protocol):
    """The right-hand sides of many pairs at once (one record's candidates), column by column.

    Values are compared by their 64-bit hash (:meth:`key`; 0 stands for missing, and for a
    list column :meth:`hashes` numbers its distinct lists, 0 the empty one), so most
    conditions are a few array operations whatever the number of candidates.
    """

    def __len__(self) -> int: ...

    def key(self, value: Any) -> int:
        """The hash of one value, as the columns store it."""
        ...

    def hashes(self, col: str) -> npt.NDArray[np.uint64]:
        """Each row's value hashed (a list: its number); 0 where it is missing or empty."""
        ...

    def where_set(self, col: str, test: Callable[[frozenset[str]], bool]) -> Bools:
        """Whether ``test`` holds for each row's list column as a set (tested once per
        distinct set)."""
        ...

    def scored_text(
        self, col: str, score: Callable[[list[str]], npt.NDArray[Any]]
    ) -> npt.NDArray[Any]:
        """``score`` of the rows' values as text, one result per row (scored once per
        distinct value; "" where missing)."""
        ...

    def flags(self, col: str) -> Bools:
        """Each row's boolean value, false where missing."""
        ...

    def token_lists(self, col: str) -> TokenLists:
        """A list column's distinct lists by the number :meth:`hashes` gives (0: empty)."""
        ...

    def text_codes(self, col: str) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Each row's value of a text column as a number into the distinct values, which
        come second (number 0 is "", missing)."""
        ...


def _any_equal(values: npt.NDArray[np.uint64], keys: Iterable[int]) -> Mask:
    """Whether each value equals one of ``keys``."""
    found: Mask = False
    for k in keys:
        found = found | (values == np.uint64(k))
    return found


class TokenLists:
    """A list column's distinct lists (``sets``, by number; number 0 the empty list) as
    arrays of token numbers, so that whether many pairs' lists share a token is a few array
    operations (:func:`shares`) instead of a set test per pair.

    ``sets`` may grow (lists of records added later): the arrays follow on next use.
    """

    def __init__(self, sets: list[frozenset[str]]) -> None:
        self.sets = sets
        self.number: dict[str, int] = {}
        """Token → its number (tokens of lists seen so far)."""
        self._starts = np.zeros(1, dtype=np.int64)
        self._tokens = np.zeros(0, dtype=np.int64)

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """List ``n``'s tokens are ``tokens[starts[n]:starts[n + 1]]``."""
        done = len(self._starts) - 1
        if done < len(self.sets):
            number = self.number
            tokens = [
                [number.setdefault(token, len(number)) for token in sorted(found)]
                for found in self.sets[done:]
            ]
            sizes = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
            self._starts = np.concatenate([self._starts, self._starts[-1] + np.cumsum(sizes)])
            flat = np.fromiter((n for t in tokens for n in t), np.int64, int(sizes.sum()))
            self._tokens = np.concatenate([self._tokens, flat])
        return self._starts, self._tokens

    def numbering(self) -> dict[str, int]:
        """Token → its number, for every list held (lists added since numbered too): a
        token it lacks is in no list."""
        self.arrays()
        return self.number


def distinct(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The distinct values, sorted: ``np.unique`` by a sort (NumPy 2's ``unique`` hashes
    first, then sorts what it kept: for the few thousand integers of a batch, about twice
    the time)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    first = np.empty(len(ordered), dtype=np.bool_)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def ranges(
    starts: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The positions ``starts[i] .. starts[i] + sizes[i] - 1`` of every ``i``, one range after
    the other, and the ``i`` of each."""
    which = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    if not len(which):
        return which, which
    offsets = np.cumsum(sizes) - sizes
    return which, (starts - offsets)[which] + np.arange(len(which), dtype=np.int64)


def among(values: npt.NDArray[np.integer[Any]], pool: npt.NDArray[np.integer[Any]]) -> Bools:
    """Whether each of ``values`` is in ``pool`` (``np.isin``, by a search of the sorted pool:
    the pools here are a few hundred numbers, the values a few thousand, where ``isin``'s
    sort of both together costs several times more)."""
    if not len(pool):
        return np.zeros(len(values), dtype=np.bool_)
    pool = np.sort(pool)
    at = np.minimum(np.searchsorted(pool, values), len(pool) - 1)
    return np.asarray(pool[at] == values)


def _flatten(
    held: Sequence[Sequence[int]], dtype: type[np.integer[Any]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Every value of every row of ``held`` in one array, with the row of each."""
    sizes = np.fromiter((len(h) for h in held), np.int64, len(held))
    rows = np.repeat(np.arange(len(held), dtype=np.int64), sizes)
    return rows, np.fromiter((v for h in held for v in h), dtype, len(rows))


def member(
    of: npt.NDArray[np.intp], values: npt.NDArray[np.integer[Any]], held: Sequence[Sequence[int]]
) -> Bools:
    """Whether each pair's right value is among its left row's (``held[of[i]]``) values;
    0 stands for missing and is never among them. Exact: values are ranked among the left
    rows' distinct values, and (left row, rank) looked up as one integer."""
    rows, flat = _flatten(held, np.uint64)
    if not len(flat):
        return np.zeros(len(of), dtype=np.bool_)
    found = distinct(flat)
    width = len(found)
    mine = rows * width + np.searchsorted(found, flat)
    values = values.astype(np.uint64)
    rank = np.minimum(np.searchsorted(found, values), width - 1)
    known = (found[rank] == values) & (values != 0)
    return known & among(of.astype(np.int64) * width + rank, mine)


def shares(
    of: npt.NDArray[np.intp],
    numbers: npt.NDArray[np.integer[Any]],
    held: Sequence[Sequence[int]],
    lists: TokenLists,
) -> Bools:
    """Whether each pair's right list (``numbers``, into ``lists``) holds one of its left
    row's tokens (``held[of[i]]``, token numbers of ``lists``). Each distinct (left row,
    list) is tested once: the list's tokens spread out and looked up as (row, token)
    integers among the left rows'."""
    out = np.zeros(len(of), dtype=np.bool_)
    rows, flat = _flatten(held, np.int64)
    lefts = np.bincount(rows, minlength=len(held)) > 0
    numbers = numbers.astype(np.int64)
    pick = np.flatnonzero(lefts[of] & (numbers != 0))
    if not len(pick):
        return out
    starts, tokens = lists.arrays()
    width = len(starts)
    combos, inverse = np.unique(of[pick] * width + numbers[pick], return_inverse=True)
    row, number = np.divmod(combos, width)
    first = starts[number]
    spread, at = ranges(first, starts[number + 1] - first)
    vocabulary = max(len(lists.number), 1)
    theirs = row[spread] * vocabulary + tokens[at]
    mine = rows * vocabulary + flat
    found = np.zeros(len(combos), dtype=np.bool_)
    found[spread[among(theirs, mine)]] = True
    out[pick] = found[inverse.reshape(-1)]
    return out


class Lefts:
    """The left-hand sides of many pairs with different left rows: a few feature rows
    (several records scored at once, each against its own candidates) and which of them
    each pair has (``of``, one entry per right-hand row of the :class:`Columns`).

    What a condition needs of a left row is computed once per row (:meth:`each`) and then
    spread over its pairs, so scoring a batch costs a few array operations for all of its
    pairs instead of a few per record. ``each`` is where the per-row results are kept: the
    same rows over other pairs (a second pass over the same records, the same ``key``) can
    share them.
    """

    def __init__(
        self,
        rows: Sequence[Row],
        of: npt.NDArray[np.intp],
        key: Callable[[Any], int],
        each: dict[tuple[str, ...], Any] | None = None,
    ) -> None:
        self.rows = rows
        self.of = of
        self.key = key
        self._each: dict[tuple[str, ...], Any] = {} if each is None else each
        self._spread: dict[tuple[str, ...], Any] = {}

    def __len__(self) -> int:
        return len(self.of)

    def each(self, name: tuple[str, ...], fn: Callable[[Row], Any]) -> list[Any]:
        """``fn`` of every left row (not per pair), remembered under ``name``."""
        return self._all(name, lambda rows: [fn(row) for row in rows])

    def spread(
        self, name: tuple[str, ...], fn: Callable[[Row], Any], dtype: type[np.generic]
    ) -> npt.NDArray[Any]:
        """``fn`` of every left row, as an array with one entry per pair."""
        return self._spread_all(name, lambda rows: [fn(row) for row in rows], dtype)

    def keys(self, col: str) -> npt.NDArray[np.uint64]:
        """Each pair's left value of ``col`` hashed as the columns hash it (0: missing); the
        values are read and hashed in two passes over the rows, not a call per row."""
        key = self.key

        def hashed(rows: Sequence[Row]) -> list[int]:
            values = [row.get(col) for row in rows]
            return [0 if v is None else key(v) for v in values]

        return self._spread_all(("key", col), hashed, np.uint64)

    def _all(self, name: tuple[str, ...], compute: Callable[[Sequence[Row]], Any]) -> Any:
        """``compute`` of all left rows at once, remembered under ``name``."""
        found = self._each.get(name)
        if found is None:
            found = self._each[name] = compute(self.rows)
        return found

    def _spread_all(
        self,
        name: tuple[str, ...],
        compute: Callable[[Sequence[Row]], Any],
        dtype: type[np.generic],
    ) -> npt.NDArray[Any]:
        """:meth:`_all` as an array with one entry per pair."""
        found = self._spread.get(name)
        if found is None:
            found = self._spread[name] = np.array(self._all(name, compute), dtype=dtype)[self.of]
        return found


class Expr:
    """A condition on a pair of feature rows (left ``l``, right ``r``)."""

    def sql(self, dialect: Dialect) -> str:
        raise NotImplementedError

    def test(self, l: Row, r: Row) -> bool:
        raise NotImplementedError

    def many(self, l: Row, r: Columns) -> Mask:
        """:meth:`test` of ``l`` against every row of ``r`` at once."""
        raise NotImplementedError

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        """:meth:`test` of each pair: left row ``l.of[i]`` against row ``i`` of ``r``."""
        raise NotImplementedError

    def columns(self) -> tuple[str, ...]:
        """The feature columns the condition reads (its ``col`` and ``other``, its parts')."""
        own = [getattr(self, name, None) for name in ("col", "other")]
        parts: tuple[Expr, ...] = getattr(self, "parts", ())
        return (*(c for c in own if isinstance(c, str)), *(c for p in parts for c in p.columns()))


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and not value)


@dataclass(frozen=True)
class Missing(Expr):
    """Either side lacks the value (null or empty list)."""

    col: str
    is_list: bool = False

    def sql(self, dialect: Dialect) -> str:
        c = self.col
        parts = [f"{c}_l IS NULL", f"{c}_r IS NULL"]
        if self.is_list:
            size = "len" if dialect == "duckdb" else "size"
            parts += [f"{size}({c}_l) = 0", f"{size}({c}_r) = 0"]
        return "(" + " OR ".join(parts) + ")"

    def test(self, l: Row, r: Row) -> bool:
        return _empty(l.get(self.col)) or _empty(r.get(self.col))

    def many(self, l: Row, r: Columns) -> Mask:
        return True if _empty(l.get(self.col)) else r.hashes(self.col) == 0

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        """Every pair when no left row has the value (a departure's A-number, FIN, ITIN),
        which ends the comparison at its null level without looking further."""
        col = self.col

        def lacks(row: Row) -> bool:
            return _empty(row.get(col))

        lacking = l.each(("empty", col), lacks)
        if all(lacking):
            return True
        missing = r.hashes(col) == 0
        if not any(lacking):
            return missing
        return l.spread(("empty", col), lacks, np.bool_) | missing


@dataclass(frozen=True)
class Eq(Expr):
    """``l.col = r.other`` (``other`` defaults to ``col``); false when either is missing."""

    col: str
    other: str | None = None

    def sql(self, dialect: Dialect) -> str:
        return f"{self.col}_l = {self.other or self.col}_r"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.other or self.col)
        return a is not None and b is not None and a == b

    def many(self, l: Row, r: Columns) -> Mask:
        a = l.get(self.col)
        return False if a is None else r.hashes(self.other or self.col) == np.uint64(r.key(a))

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        a = l.keys(self.col)
        return (a != 0) & (r.hashes(self.other or self.col) == a)


@dataclass(frozen=True)
class Overlap(Expr):
    """The two lists share an element."""

    col: str

    def sql(self, dialect: Dialect) -> str:
        fn = "list_has_any" if dialect == "duckdb" else "arrays_overlap"
        return f"{fn}({self.col}_l, {self.col}_r)"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col) or (), r.get(self.col) or ()
        return bool(set(a) & set(b))

    def many(self, l: Row, r: Columns) -> Mask:
        a = frozenset(l.get(self.col) or ())
        if not a:
            return False
        return r.where_set(self.col, lambda b: not a.isdisjoint(b))

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        col = self.col
        lists = r.token_lists(col)
        number = lists.numbering()

        def tokens(row: Row) -> list[int]:
            return [number[t] for t in row.get(col) or () if t in number]

        return shares(l.of, r.hashes(col), l.each(("tokens", col), tokens), lists)


@dataclass(frozen=True)
class Swapped(Expr):
    """Given and family names exchanged: each side's first given name is among the other's
    surnames and its first surname among the other's given names."""

    def columns(self) -> tuple[str, ...]:
        return ("given_first", "family_first", "given_tokens", "family_tokens")

    def sql(self, dialect: Dialect) -> str:
        fn = "list_contains" if dialect == "duckdb" else "array_contains"

        def one(a: str, b: str) -> str:
            return (
                f"(coalesce({fn}(family_tokens_{b}, given_first_{a}), false) AND "
                f"coalesce({fn}(given_tokens_{b}, family_first_{a}), false))"
            )

        return f"({one('l', 'r')} OR {one('r', 'l')})"

    def test(self, l: Row, r: Row) -> bool:
        def one(a: Row, b: Row) -> bool:
            g, f = a.get("given_first"), a.get("family_first")
            return (
                g is not None
                and f is not None
                and g in (b.get("family_tokens") or ())
                and f in (b.get("given_tokens") or ())
            )

        return one(l, r) or one(r, l)

    def many(self, l: Row, r: Columns) -> Mask:
        g, f = l.get("given_first"), l.get("family_first")
        # l's first names among r's tokens, then r's first names among l's tokens.
        forward: Mask = False
        if g is not None and f is not None:
            forward = r.where_set("family_tokens", lambda b: g in b) & r.where_set(
                "given_tokens", lambda b: f in b
            )
        family, given = l.get("family_tokens") or (), l.get("given_tokens") or ()
        backward: Mask = False
        if family and given:
            backward = _any_equal(r.hashes("given_first"), {r.key(t) for t in family}) & (
                _any_equal(r.hashes("family_first"), {r.key(t) for t in given})
            )
        return forward | backward

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        key = l.key
        family, given = r.token_lists("family_tokens"), r.token_lists("given_tokens")
        surname, name = family.numbering(), given.numbering()

        def firsts(row: Row) -> tuple[list[int], list[int]]:
            g, f = row.get("given_first"), row.get("family_first")
            if g is None or f is None or g not in surname or f not in name:
                return [], []
            return [surname[g]], [name[f]]

        def tokens(row: Row) -> tuple[list[int], list[int]]:
            surnames, names = row.get("family_tokens") or (), row.get("given_tokens") or ()
            if not (surnames and names):
                return [], []
            return [key(t) for t in surnames], [key(t) for t in names]

        mine = l.each(("swap", "firsts"), firsts)
        theirs = l.each(("swap", "tokens"), tokens)
        # l's first names among r's tokens, then r's first names among l's tokens.
        forward = shares(l.of, r.hashes("family_tokens"), [m[0] for m in mine], family)
        forward &= shares(l.of, r.hashes("given_tokens"), [m[1] for m in mine], given)
        backward = member(l.of, r.hashes("given_first"), [t[0] for t in theirs])
        backward &= member(l.of, r.hashes("family_first"), [t[1] for t in theirs])
        return forward | backward


@dataclass(frozen=True)
class JaroWinklerAtLeast(Expr):
    """Jaro-Winkler similarity of the two values at least ``threshold``."""

    col: str
    threshold: float

    def sql(self, dialect: Dialect) -> str:
        fn = "jaro_winkler_similarity" if dialect == "duckdb" else "jaro_winkler"
        return f"{fn}({self.col}_l, {self.col}_r) >= {self.threshold}"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.col)
        if a is None or b is None:
            return False
        return bool(JaroWinkler.similarity(a, b) >= self.threshold)

    def many(self, l: Row, r: Columns) -> Mask:
        a = l.get(self.col)
        if a is None:
            return False
        similar = r.scored_text(self.col, _distances(a, JaroWinkler.similarity, np.float64))
        return (similar >= self.threshold) & (r.hashes(self.col) != 0)

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        similar = _pair_distances(l, r, self.col, JaroWinkler.similarity, np.float64)
        return similar is not False and similar >= self.threshold


@dataclass(frozen=True)
class EditsAtMost(Expr):
    """Levenshtein distance of the two values at most ``edits``."""

    col: str
    edits: int

    def sql(self, dialect: Dialect) -> str:
        return f"levenshtein({self.col}_l, {self.col}_r) <= {self.edits}"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.col)
        return a is not None and b is not None and Levenshtein.distance(a, b) <= self.edits

    def many(self, l: Row, r: Columns) -> Mask:
        a = l.get(self.col)
        if a is None:
            return False
        edits = r.scored_text(self.col, _distances(a, Levenshtein.distance, np.int64))
        return (edits <= self.edits) & (r.hashes(self.col) != 0)

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        edits = _pair_distances(l, r, self.col, Levenshtein.distance, np.int64, missing=1 << 30)
        return edits is not False and edits <= self.edits


@dataclass(frozen=True)
class YearsApart(Expr):
    """The integer columns differ by exactly ``years``."""

    col: str
    years: int

    def sql(self, dialect: Dialect) -> str:
        return f"abs({self.col}_l - {self.col}_r) = {self.years}"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.col)
        return a is not None and b is not None and abs(a - b) == self.years

    def many(self, l: Row, r: Columns) -> Mask:
        a = l.get(self.col)
        if a is None:
            return False
        return _any_equal(r.hashes(self.col), {r.key(a - self.years), r.key(a + self.years)})

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        col, years, key = self.col, self.years, l.key

        def apart(sign: int) -> Callable[[Row], int]:
            return lambda row: 0 if row.get(col) is None else key(row[col] + sign * years)

        theirs = r.hashes(col)
        below = l.spread(("years", col, str(-years)), apart(-1), np.uint64)
        above = l.spread(("years", col, str(years)), apart(1), np.uint64)
        return (below != 0) & ((theirs == below) | (theirs == above))


@dataclass(frozen=True)
class Flag(Expr):
    """A boolean column is true on the left side, on either side, or on neither."""

    col: str
    side: Literal["left", "either", "neither"]

    def sql(self, dialect: Dialect) -> str:
        c = self.col
        if self.side == "left":
            return f"coalesce({c}_l, false)"
        if self.side == "either":
            return f"(coalesce({c}_l, false) OR coalesce({c}_r, false))"
        return f"NOT (coalesce({c}_l, false) OR coalesce({c}_r, false))"

    def test(self, l: Row, r: Row) -> bool:
        a, b = bool(l.get(self.col)), bool(r.get(self.col))
        if self.side == "left":
            return a
        return (a or b) if self.side == "either" else not (a or b)

    def many(self, l: Row, r: Columns) -> Mask:
        a = bool(l.get(self.col))
        if self.side == "left" or a:
            return a if self.side != "neither" else False
        b = r.flags(self.col)
        return b if self.side == "either" else ~b

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        col = self.col
        a = l.spread(("flag", col), lambda row: bool(row.get(col)), np.bool_)
        if self.side == "left":
            return a
        either = a | r.flags(col)
        return either if self.side == "either" else ~either


@dataclass(frozen=True)
class All(Expr):
    parts: tuple[Expr, ...]

    def sql(self, dialect: Dialect) -> str:
        return "(" + " AND ".join(p.sql(dialect) for p in self.parts) + ")"

    def test(self, l: Row, r: Row) -> bool:
        return all(p.test(l, r) for p in self.parts)

    def many(self, l: Row, r: Columns) -> Mask:
        out: Mask = True
        for part in self.parts:
            out = out & part.many(l, r)
            if out is False:
                break
        return out

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        out: Mask = True
        for part in self.parts:
            out = out & part.pairs(l, r)
        return out


@dataclass(frozen=True)
class AnyOf(Expr):
    parts: tuple[Expr, ...]

    def sql(self, dialect: Dialect) -> str:
        return "(" + " OR ".join(p.sql(dialect) for p in self.parts) + ")"

    def test(self, l: Row, r: Row) -> bool:
        return any(p.test(l, r) for p in self.parts)

    def many(self, l: Row, r: Columns) -> Mask:
        out: Mask = False
        for part in self.parts:
            out = out | part.many(l, r)
            if out is True:
                break
        return out

    def pairs(self, l: Lefts, r: Columns) -> Mask:
        out: Mask = False
        for part in self.parts:
            out = out | part.pairs(l, r)
        return out


@dataclass(frozen=True)
class Level:
    """One level of a comparison; ``tf`` names the column for term-frequency adjustment."""

    label: str
    expr: Expr | None
    """None for the final 'everything else' level."""
    is_null: bool = False
    tf: str | None = None
    counted_in: str | None = None
    """What already weighs this same event: this level then weighs nothing (m set to u after
    training), so the event is not counted twice. Names swapped is one event that both name
    comparisons see; nationality and sex agreeing are implied by names that agree (a culture's
    names, a given name's sex): among the pairs blocking puts forward, non-matches agree on
    them 94 % and 99.7 % of the time, not the 3 % and 50 % of random pairs that their u
    comes from (docs/resolution.md)."""


@dataclass(frozen=True)
class Comparison:
    name: str
    description: str
    levels: tuple[Level, ...]

    def level_of(self, l: Row, r: Row) -> int:
        """The index of the first level whose condition holds (the last is 'else')."""
        for i, level in enumerate(self.levels):
            if level.expr is None or level.expr.test(l, r):
                return i
        return len(self.levels) - 1

    def level_masks(
        self, l: Row, r: Columns, width: int, seen: dict[int, Mask] | None = None
    ) -> list[Bools]:
        """:meth:`level_of` of ``l`` against every row of ``r``, as ``width`` masks (at least
        the number of levels): mask ``n`` says where level ``n``'s condition holds, and the
        level of a pair is the first mask that holds for it (the masks after the last level,
        and after a level that holds everywhere, hold everywhere). ``seen`` keeps conditions
        already evaluated for the same ``l`` and ``r`` (given and family names share
        :class:`Swapped`)."""
        return self._masks(lambda expr: expr.many(l, r), len(r), width, seen)

    def pair_masks(
        self, l: Lefts, r: Columns, width: int, seen: dict[int, Mask] | None = None
    ) -> list[Bools]:
        """:meth:`level_masks` of each pair of left rows ``l`` and right rows ``r``."""
        return self._masks(lambda expr: expr.pairs(l, r), len(r), width, seen)

    def pair_weights(
        self, l: Lefts, r: Columns, weights: Sequence[float], seen: dict[int, Mask] | None = None
    ) -> npt.NDArray[np.float64]:
        """Each pair's ``weights[level]``, its level found as :meth:`pair_masks` finds it (the
        first whose condition holds), without stacking the masks: for many pairs and a
        comparison with few conditions that hold anywhere (identifiers a departure lacks),
        a fraction of the array work."""
        seen = {} if seen is None else seen
        found: list[tuple[int, Bools]] = []
        last = len(self.levels) - 1
        for k, level in enumerate(self.levels):
            expr = level.expr
            if expr is None:
                last = k
                break
            key = _SAME.get(id(expr), id(expr))
            if key not in seen:
                seen[key] = expr.pairs(l, r)
            holds = seen[key]
            if holds is True:
                last = k
                break
            if holds is not False:
                found.append((k, holds))
        out = np.full(len(r), weights[last])
        for k, holds in reversed(found):
            out[holds] = weights[k]
        return out

    def _masks(
        self,
        evaluate: Callable[[Expr], Mask],
        count: int,
        width: int,
        seen: dict[int, Mask] | None,
    ) -> list[Bools]:
        seen = {} if seen is None else seen
        masks: list[Bools] = []
        for level in self.levels:
            expr = level.expr
            if expr is None:
                break
            key = _SAME.get(id(expr), id(expr))
            if key not in seen:
                seen[key] = evaluate(expr)
            holds = seen[key]
            if holds is True:
                break
            masks.append(_constant(count, False) if holds is False else holds)
        return masks + [_constant(count, True)] * (width - len(masks))


@lru_cache(maxsize=64)
def _constant(count: int, value: bool) -> Bools:
    """A read-only array of ``count`` times ``value`` (shared: made once per size)."""
    out = np.full(count, value, dtype=np.bool_)
    out.flags.writeable = False
    return out


def _distances(
    value: str, scorer: Any, dtype: type[np.generic]
) -> Callable[[Sequence[str]], npt.NDArray[Any]]:
    """``scorer`` of ``value`` against many (rapidfuzz's batch call, the same scorer)."""
    return lambda others: cdist([value], others, scorer=scorer, dtype=dtype, workers=1)[0]


def _pair_distances(
    l: Lefts,
    r: Columns,
    col: str,
    scorer: Any,
    dtype: type[np.generic],
    missing: float | int = 0,
) -> npt.NDArray[Any] | Literal[False]:
    """``scorer`` of each pair's two values of a text column (rapidfuzz's pairwise batch
    call), ``missing`` where either side lacks one; False when no pair has both."""
    lefts = l.each(("text", col), lambda row: row.get(col))
    codes, values = r.text_codes(col)
    both = np.flatnonzero((l.keys(col) != 0) & (codes != 0))
    if not len(both):
        return False
    # Each distinct (left row, right value) scored once: candidates repeat common names.
    combos, inverse = np.unique(l.of[both] * len(values) + codes[both], return_inverse=True)
    row, code = np.divmod(combos, len(values))
    mine = [lefts[i] for i in row.tolist()]
    scored = cpdist(mine, [values[c] for c in code.tolist()], scorer=scorer, dtype=dtype,
                    workers=1)  # fmt: skip
    out = np.full(len(l), missing, dtype=dtype)
    out[both] = scored[inverse.reshape(-1)]
    return out


def _null(col: str, label: str, is_list: bool = False) -> Level:
    return Level(label, Missing(col, is_list), is_null=True)


def _else(label: str = "different") -> Level:
    return Level(label, None)


def _identifier(name: str, col: str, description: str, agreed_in: str | None = None) -> Comparison:
    exact = Level("exact", Eq(col), counted_in=agreed_in)
    return Comparison(name, description, (_null(col, f"{name} missing"), exact, _else()))


GIVEN = Comparison(
    "given_name",
    "Given name: exact, same first name or same letters, a transliteration or nickname variant "
    "(shared name symbol), a typo, swapped with the surname, then sound-alike only.",
    (
        _null("given_first", "given name missing"),
        Level("exact", Eq("given"), tf="given"),
        Level("same first name or spacing", AnyOf((Eq("given_first"), Eq("given_joined")))),
        Level("name variant (symbol)", Overlap("given_symbols")),
        Level("typo (Jaro-Winkler >= 0.9)", JaroWinklerAtLeast("given_first", 0.9)),
        Level("given and surname swapped", Swapped()),
        Level("sounds alike only (metaphone)", Eq("given_phonetic")),
        _else(),
    ),
)

FAMILY = Comparison(
    "family_name",
    "Surname: exact, one of two surnames shared, a transliteration variant, a typo, swapped "
    "with the given name, then sound-alike only.",
    (
        _null("family", "surname missing"),
        Level("exact", Eq("family"), tf="family"),
        Level("a surname shared (double surnames)", Overlap("family_tokens")),
        Level("surname variant (symbol)", Overlap("family_symbols")),
        Level("typo (Jaro-Winkler >= 0.9)", JaroWinklerAtLeast("family", 0.9)),
        Level("given and surname swapped", Swapped(), counted_in="given_name"),
        Level("sounds alike only (metaphone)", Overlap("family_phonetic")),
        _else(),
    ),
)

BIRTH_DATE = Comparison(
    "birth_date",
    "Birth date: exact, exact but 1 January (a common default, down-weighted), day and month "
    "swapped, one side defaulted to 1 January of the same year, one year apart.",
    (
        _null("dob", "birth date missing or placeholder"),
        Level("exact", All((Eq("dob"), Flag("dob_default", "neither")))),
        Level("exact, 1 January (default date)", Eq("dob")),
        Level("day and month swapped", Eq("dob", "dob_swap")),
        Level(
            "one side 1 January, same year (default date)",
            All((Eq("dob_year"), Flag("dob_default", "either"))),
        ),
        Level("same day, one year apart", All((Eq("dob_md"), YearsApart("dob_year", 1)))),
        _else(),
    ),
)

A_NUMBER = Comparison(
    "a_number",
    "A-number: exact, or one digit different (a typo).",
    (
        _null("a_number", "A-number missing"),
        Level("exact", Eq("a_number")),
        Level("one digit different", EditsAtMost("a_number", 1)),
        _else(),
    ),
)

PASSPORT = Comparison(
    "passport",
    "Passport number with issuing country: both equal, or the number alone.",
    (
        _null("passport_no", "passport number missing"),
        Level("number and issuing country", All((Eq("passport_no"), Eq("passport_country")))),
        Level("number only", Eq("passport_no")),
        _else(),
    ),
)

COMPARISONS: tuple[Comparison, ...] = (
    GIVEN,
    FAMILY,
    BIRTH_DATE,
    A_NUMBER,
    PASSPORT,
    _identifier("fin", "fin", "FIN (biometric identity number): exact."),
    _identifier("itin", "itin", "ITIN: exact."),
    _identifier("national_id", "national_id", "A generic national identity number: exact."),
    Comparison(
        "other_ids",
        "Any other identifier of the same kind and value.",
        (
            _null("other_ids", "no other identifiers", True),
            Level("shared", Overlap("other_ids")),
            _else(),
        ),
    ),
    _identifier(
        "nationality",
        "nationality",
        "Nationality (an immigration fact): exact (weighs "
        "nothing: the names already say it), or different.",
        agreed_in="the names",
    ),
    _identifier(
        "sex",
        "sex",
        "Sex: exact (weighs nothing: the given name already says it), or different.",
        agreed_in="the names",
    ),
)


#: What a person has one of at a time, as (comparison, feature column): clustering checks whole
#: groups of records on these before joining them (:class:`~immigrationos.resolution.cluster.
#: Traits`), each disagreement weighing what the comparison's 'different' level weighs. Birth
#: dates defaulted to 1 January are left out (a default says nothing against another date).
TRAITS: tuple[tuple[str, str], ...] = (
    ("birth_date", "dob"),
    ("a_number", "a_number"),
    ("passport", "passport_no"),
    ("fin", "fin"),
    ("itin", "itin"),
    ("national_id", "national_id"),
    ("nationality", "nationality"),
    ("sex", "sex"),
)


def compared_columns() -> tuple[str, ...]:
    """Every feature column some level reads."""
    found = [c for comparison in COMPARISONS for level in comparison.levels
             for c in (*(level.expr.columns() if level.expr else ()),
                       *([level.tf] if level.tf else []))]  # fmt: skip
    return tuple(dict.fromkeys(found))


def text_columns() -> tuple[str, ...]:
    """The columns some level reads as text: edit distances, Jaro-Winkler, term frequency,
    and first names looked up among the other side's name tokens."""

    def walk(expr: Expr | None) -> Iterable[str]:
        if isinstance(expr, (JaroWinklerAtLeast, EditsAtMost)):
            yield expr.col
        elif isinstance(expr, Swapped):
            yield from ("given_first", "family_first")
        elif isinstance(expr, (All, AnyOf)):
            for part in expr.parts:
                yield from walk(part)

    found = [c for comparison in COMPARISONS for level in comparison.levels
             for c in (*walk(level.expr), *([level.tf] if level.tf else []))]  # fmt: skip
    return tuple(dict.fromkeys(found))


def _same_conditions() -> dict[int, int]:
    """Each level condition of :data:`COMPARISONS` (by object) → the first equal one's."""
    first: dict[Expr, int] = {}
    return {
        id(level.expr): first.setdefault(level.expr, id(level.expr))
        for comparison in COMPARISONS
        for level in comparison.levels
        if level.expr is not None
    }


_SAME = _same_conditions()


def comparison_dicts(dialect: Dialect) -> list[dict[str, Any]]:
    """The comparisons as Splink settings dictionaries for ``dialect``."""
    out = []
    for comparison in COMPARISONS:
        levels = []
        for level in comparison.levels:
            entry: dict[str, Any] = {
                "sql_condition": level.expr.sql(dialect) if level.expr else "ELSE",
                "label_for_charts": level.label,
            }
            if level.is_null:
                entry["is_null_level"] = True
            if level.tf:
                entry["tf_adjustment_column"] = level.tf
                entry["tf_adjustment_weight"] = 1.0
                entry["disable_tf_exact_match_detection"] = True
            levels.append(entry)
        out.append(
            {
                "output_column_name": comparison.name,
                "comparison_description": comparison.description,
                "comparison_levels": levels,
            }
        )
    return out
