"""Small-cell suppression for published two-way tables of counts, with an exact check.

A published table is a cross-tabulation of counts with its row, column and grand totals. A
count from 1 to ``threshold - 1`` (1–10 by default: "under 11") could single a person out,
so it is withheld (*primary suppression*). Zeros are published as 0: an empty cell describes
nobody, and withholding zeros would force far more complementary suppression for no
protection. The cost of that choice is stated, not hidden: a reader learns that every
withheld cell holds at least 1, and the check below assumes exactly that reader.

Withholding the small cells alone is not enough, because the totals give them away: a row
total minus the published cells of its row is the one withheld cell. *Complementary
suppression* withholds further cells (and, where needed, totals) so that no withheld count
can be recovered from what is published.

The model: the table and its margins as one bipartite graph
---------------------------------------------------------------
Extend the R×C table with its totals to an (R+1)×(C+1) matrix E: row R holds the column
totals, column C the row totals, E[R][C] the grand total. Take one node per row of E and one
per column of E; every entry E[i][j] is an edge between row node i and column node j. Each
node is one published equation ("the interior cells of row i add up to its total" is the
equation of row node i, with the total entering with a minus sign; likewise for columns and
for the two total lines). Writing ``w = s·v`` with ``s = +1`` for interior cells and the
grand total and ``s = -1`` for row and column totals, every equation reads "the ``w`` of
the edges at this node add up to 0" — the incidence matrix of a bipartite graph.

An attacker knows every published entry, so the unknowns are the withheld entries: the
edges of the *suppression graph* G (the withheld entries only). Their feasible values are
the non-negative integer points ``x + k`` where ``k`` lies in the kernel of G's incidence
matrix and the bounds hold.

**Theorem 1 (which entries are determined).** A withheld entry is fixed by the published
equations (over the reals) exactly when its edge is a *bridge* of G.
*Proof.* The kernel of the incidence matrix of a bipartite graph is spanned by its even
cycles with alternating ±1 signs, so an edge on a cycle carries a nonzero kernel vector and
can move. Conversely, if edge e = (u, v) is a bridge, removing it splits u's component into
sides A ∋ u and B ∋ v; add up the equations of the nodes of A with sign +1 for row nodes and
-1 for column nodes: every edge inside A appears once at a row node and once at a column
node and cancels, so the sum is ±w_e = a combination of published numbers. ∎

So the classic rule — every row and column that has a withheld entry has at least two —
is necessary (a line with one withheld entry makes it hang from a node of degree 1, a
bridge) but not sufficient: two blocks of suppressed cells joined through one cell leave
that cell a bridge although every line holds two. This module therefore applies the classic
rule first (cheap, usually enough) and then checks every entry exactly.

**Theorem 2 (exact feasible ranges).** Constraint matrices of bipartite incidence are
totally unimodular, so every vertex of the feasible polytope is integral and, moving one
unit along one alternating cycle at a time (a conformal cycle decomposition of the
difference of two solutions), every integer between the least and the greatest feasible
value of an entry is itself feasible. The range of entry e is therefore
``[x_e - dec, x_e + inc]`` where ``inc`` and ``dec`` are maximum flows: orient every edge
from its row node to its column node, let edge f carry a change of ``w_f`` within its
bounds (a withheld entry may fall to the floor, 1 by default, and rise without limit; a
published one cannot change), and push flow around e through the rest of G. This module
computes them with Edmonds–Karp on the residual network (tiny: one node per row and column).
*Reason for a hand-written max-flow:* SciPy (which has one) is not a declared dependency of
the project, and these graphs have a few dozen nodes.

What the published report guarantees
------------------------------------
For every primary-suppressed entry (a count from 1 to ``threshold - 1``, a total included),
the range of values consistent with everything published — all published cells and totals,
non-negative integers, withheld entries at least 1 — (a) is wider than zero: the count
cannot be recovered exactly; and (b) when ``interval`` protection is on (the default),
reaches at least ``threshold``: nobody can even prove the count is small. Complementary
cells are not themselves protected (they are not small), but they are never zeros, so the
"at least 1" floor holds for every withheld entry.

How complementary cells are chosen
----------------------------------
1. The classic rule to a fixpoint: a line of E (table rows and columns, and the total row
   and column) holding exactly one withheld entry gets its smallest positive published entry
   withheld too (interior cells before totals on ties).
2. The exact check; for an entry that fails it, withhold the smallest published positive
   entry that makes it pass, else the one that widens its range most, else the smallest
   one touching its component of G; then back to 1.
Each round withholds at least one more entry, and withholding every positive entry always
passes (each interior cell then lies on the 4-cycle cell–row total–grand total–column total,
all of which may grow together), so the loop ends. Choosing the fewest cells is NP-hard in
general; this greedy choice is not optimal, but the published result is always checked
exactly, so its protection does not depend on the heuristic.

Several tables
--------------
Each table is one pair of dimensions (one cross-tabulation of one population); three-way
breakdowns are never published as several overlapping two-way tables, because the
protection of linked tables is not the protection of each one. When two tables share one
count (the grand total of "removals by nationality" is the "removed" total of "cases closed
by reason"), declare it as a :class:`Link`: :func:`protect_all` withholds a shared count in
both tables or in neither, and checks each table with the shared count bounded by the range
the other table allows. That check is exact when each pair of tables shares at most one
count and the links form no cycle (projections of these polytopes onto one entry are
integer intervals, so interval propagation along a tree loses nothing); :func:`protect_all`
refuses any other arrangement.

Limits
------
- Protection is against an attacker holding this report only. Earlier reports of
  overlapping periods, or other publications of the same counts, are outside the check:
  differencing a year against its four quarters can reveal a quarter's withheld cell. The
  transparency report publishes each period on its own terms, and that limit is documented.
- The floor of 1 for withheld entries reflects that zeros are published; an attacker who
  also knows a population bound (say, "this office has at most 20 cases") can narrow ranges
  further than the check assumes.
- Rounding or noise (differential privacy) is a different technique with different
  guarantees; this module suppresses, it does not perturb.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Counts from 1 to ``DEFAULT_THRESHOLD - 1`` are withheld ("under 11").
DEFAULT_THRESHOLD = 11
#: What a reader may assume about every withheld entry (zeros are published as 0).
FLOOR = 1
INF = math.inf

Entry = tuple[int, int]
"""A position in the extended table: (row, column); row R is the column totals, column C the
row totals, (R, C) the grand total."""


@dataclass(frozen=True)
class Table:
    """A two-way table of counts: ``counts[i][j]`` for row label i and column label j."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.rows):
            raise ValueError(f"{len(self.rows)} row labels but {len(self.counts)} rows")
        for row in self.counts:
            if len(row) != len(self.columns):
                raise ValueError(f"a row has {len(row)} cells for {len(self.columns)} columns")
            if any(n < 0 for n in row):
                raise ValueError("counts are never negative")

    @classmethod
    def of(
        cls, rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]]
    ) -> Table:
        """A table from any sequences."""
        return cls(tuple(rows), tuple(columns), tuple(tuple(int(n) for n in r) for r in counts))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) without the totals."""
        return len(self.rows), len(self.columns)

    def extended(self) -> tuple[tuple[int, ...], ...]:
        """The (R+1)×(C+1) matrix: the cells with their row totals, then the column totals."""
        body = [(*row, sum(row)) for row in self.counts]
        n_cols = len(self.columns) + 1
        totals = tuple(sum(r[j] for r in body) for j in range(n_cols))
        return (*body, totals)


@dataclass(frozen=True)
class Range:
    """The values of a withheld entry consistent with everything published (``hi`` None:
    no upper bound)."""

    lo: int
    hi: int | None

    @property
    def width(self) -> float:
        """``hi - lo`` (infinite without an upper bound)."""
        return INF if self.hi is None else self.hi - self.lo


@dataclass(frozen=True)
class Suppressed:
    """A table as published: which entries are withheld, and why."""

    table: Table
    threshold: int
    primary: frozenset[Entry]
    withheld: frozenset[Entry]
    ranges: Mapping[Entry, Range] = field(default_factory=dict)

    @property
    def complementary(self) -> frozenset[Entry]:
        """Entries withheld only to protect others."""
        return self.withheld - self.primary

    def published(self) -> tuple[tuple[int | None, ...], ...]:
        """The extended matrix as published: withheld entries are None."""
        ext = self.table.extended()
        return tuple(
            tuple(None if (i, j) in self.withheld else v for j, v in enumerate(row))
            for i, row in enumerate(ext)
        )


@dataclass(frozen=True)
class Link:
    """One count published in two tables (``entry`` positions in their extended matrices)."""

    table_a: str
    entry_a: Entry
    table_b: str
    entry_b: Entry


@dataclass(frozen=True)
class Problem:
    """A protected entry whose feasible range is too narrow."""

    entry: Entry
    range: Range
    reason: str


# --- the exact check ----------------------------------------------------------------------


def _sign(entry: Entry, shape: tuple[int, int]) -> int:
    """+1 for interior cells and the grand total, -1 for row and column totals."""
    r, c = shape
    i, j = entry
    return 1 if (i < r) == (j < c) else -1


def _flow_bounds(
    entry: Entry, value: int, shape: tuple[int, int], bounds: Range
) -> tuple[float, float]:
    """The change of ``w`` this entry may take, given its value bounds."""
    lo = bounds.lo - value
    hi = INF if bounds.hi is None else bounds.hi - value
    return (lo, hi) if _sign(entry, shape) > 0 else (-hi, -lo)


def _max_flow(capacity: dict[int, dict[int, float]], source: int, sink: int) -> float:
    """Edmonds–Karp maximum flow from ``source`` to ``sink`` (infinite when unbounded)."""
    residual = {u: dict(vs) for u, vs in capacity.items()}
    total = 0.0
    while True:
        parent = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            u = queue.popleft()
            for v, cap in residual.get(u, {}).items():
                if cap > 0 and v not in parent:
                    parent[v] = u
                    queue.append(v)
        if sink not in parent:
            return total
        path, v = [], sink
        while v != source:
            path.append((parent[v], v))
            v = parent[v]
        push = min(residual[u][w] for u, w in path)
        if push == INF:
            return INF
        for u, w in path:
            residual[u][w] -= push
            back = residual.setdefault(w, {})
            back[u] = back.get(u, 0.0) + push
        total += push


class _Graph:
    """The suppression graph of one table, ready to answer range questions."""

    def __init__(
        self,
        table: Table,
        withheld: Iterable[Entry],
        bounds: Mapping[Entry, Range] | None = None,
        floor: int = FLOOR,
    ) -> None:
        self.shape = table.shape
        self.values = table.extended()
        self.withheld = frozenset(withheld)
        self.bounds = dict(bounds or {})
        self.floor = floor

    def _node(self, entry: Entry) -> tuple[int, int]:
        i, j = entry
        return i, self.shape[0] + 1 + j

    def value(self, entry: Entry) -> int:
        """The true value of an entry."""
        return self.values[entry[0]][entry[1]]

    def bound(self, entry: Entry) -> Range:
        """What a reader may assume about a withheld entry before the equations."""
        own = Range(self.floor, None)
        given = self.bounds.get(entry)
        if given is None:
            return own
        hi = given.hi
        return Range(max(own.lo, given.lo), hi)

    def _residual(self, without: Entry) -> dict[int, dict[int, float]]:
        capacity: dict[int, dict[int, float]] = {}
        for entry in self.withheld:
            if entry == without:
                continue
            lo, hi = _flow_bounds(entry, self.value(entry), self.shape, self.bound(entry))
            u, v = self._node(entry)
            capacity.setdefault(u, {})[v] = hi
            capacity.setdefault(v, {})[u] = -lo
        return capacity

    def range_of(self, entry: Entry) -> Range:
        """Exact least and greatest values of a withheld entry (Theorem 2)."""
        value = self.value(entry)
        u, v = self._node(entry)
        residual = self._residual(entry)
        up = _max_flow(residual, v, u)  # more w on e comes back from v to u
        down = _max_flow(residual, u, v)
        lo_w, hi_w = _flow_bounds(entry, value, self.shape, self.bound(entry))
        w_min, w_max = max(lo_w, -down), min(hi_w, up)
        if _sign(entry, self.shape) < 0:
            w_min, w_max = -w_max, -w_min
        lo = value + w_min
        hi = None if w_max == INF else int(value + w_max)
        return Range(int(lo), hi)


def feasible_ranges(
    table: Table,
    withheld: Iterable[Entry],
    bounds: Mapping[Entry, Range] | None = None,
    floor: int = FLOOR,
) -> dict[Entry, Range]:
    """The range of every withheld entry given everything else is published (exact)."""
    graph = _Graph(table, withheld, bounds, floor)
    return {e: graph.range_of(e) for e in sorted(graph.withheld)}


def _problem(entry: Entry, rng: Range, threshold: int, interval: bool) -> Problem | None:
    if rng.width < 1:
        return Problem(entry, rng, "recoverable exactly from the published numbers")
    if interval and rng.hi is not None and rng.hi < threshold:
        return Problem(entry, rng, f"provably under {threshold} from the published numbers")
    return None


def check(
    table: Table,
    withheld: Iterable[Entry],
    protected: Iterable[Entry],
    *,
    threshold: int = DEFAULT_THRESHOLD,
    interval: bool = True,
    bounds: Mapping[Entry, Range] | None = None,
    first: bool = False,
) -> list[Problem]:
    """Protected entries whose feasible range is a single value (or, with ``interval``,
    stays under ``threshold``); with ``first``, stop at the first."""
    graph = _Graph(table, withheld, bounds)
    outside = set(protected) - graph.withheld
    if outside:
        raise ValueError(f"protected entries must be withheld: {sorted(outside)}")
    problems = []
    for entry in sorted(protected):
        found = _problem(entry, graph.range_of(entry), threshold, interval)
        if found:
            problems.append(found)
            if first:
                break
    return problems


# --- choosing what to withhold ------------------------------------------------------------


def primary_entries(table: Table, threshold: int = DEFAULT_THRESHOLD) -> frozenset[Entry]:
    """Every entry (cell or total) from 1 to ``threshold - 1``."""
    return frozenset(
        (i, j)
        for i, row in enumerate(table.extended())
        for j, v in enumerate(row)
        if 0 < v < threshold
    )


def _is_total(entry: Entry, shape: tuple[int, int]) -> bool:
    return entry[0] == shape[0] or entry[1] == shape[1]


def _order(
    entry: Entry, values: Sequence[Sequence[int]], shape: tuple[int, int]
) -> tuple[int, bool, Entry]:
    """Smallest first, interior cells before totals, then by position (deterministic)."""
    return (values[entry[0]][entry[1]], _is_total(entry, shape), entry)


def _lines(shape: tuple[int, int]) -> list[list[Entry]]:
    r, c = shape
    rows = [[(i, j) for j in range(c + 1)] for i in range(r + 1)]
    cols = [[(i, j) for i in range(r + 1)] for j in range(c + 1)]
    return rows + cols


def classic_rule(table: Table, withheld: set[Entry]) -> None:
    """Every line with a withheld entry gets a second one (its smallest positive entry),
    to a fixpoint. Changes ``withheld`` in place."""
    values, shape = table.extended(), table.shape
    changed = True
    while changed:
        changed = False
        for line in _lines(shape):
            if sum(e in withheld for e in line) != 1:
                continue
            open_ = [e for e in line if e not in withheld and values[e[0]][e[1]] > 0]
            if open_:
                withheld.add(min(open_, key=lambda e: _order(e, values, shape)))
                changed = True


def _candidates(table: Table, withheld: set[Entry]) -> list[Entry]:
    values, shape = table.extended(), table.shape
    found = [
        (i, j)
        for i, row in enumerate(values)
        for j, v in enumerate(row)
        if v > 0 and (i, j) not in withheld
    ]
    return sorted(found, key=lambda e: _order(e, values, shape))


def _score(rng: Range, threshold: int) -> tuple[float, float]:
    """How well protected a range is (larger is better)."""
    return (min(rng.width, 1.0), INF if rng.hi is None else min(rng.hi, threshold))


def _repair(
    table: Table,
    withheld: set[Entry],
    problem: Problem,
    threshold: int,
    bounds: Mapping[Entry, Range] | None,
) -> Entry | None:
    """The published entry to withhold next for ``problem``'s entry (see the module doc).

    Only entries touching the entry's component of G can change its range (any other joins
    another component), so only they are tried."""
    candidates = _candidates(table, withheld)
    if not candidates:
        return None
    rows, cols = _component(table.shape, withheld, problem.entry)
    near = [c for c in candidates if c[0] in rows or c[1] in cols]
    base = _score(problem.range, threshold)
    best: tuple[tuple[float, float], Entry] | None = None
    for candidate in near:
        rng = _Graph(table, withheld | {candidate}, bounds).range_of(problem.entry)
        if _problem(problem.entry, rng, threshold, interval=True) is None:
            return candidate
        score = _score(rng, threshold)
        if score > base and (best is None or score > best[0]):
            best = (score, candidate)
    if best:
        return best[1]
    return (near or candidates)[0]


def _component(
    shape: tuple[int, int], withheld: set[Entry], start: Entry
) -> tuple[set[int], set[int]]:
    """Row and column indices of the component of G holding ``start``."""
    rows, cols = {start[0]}, {start[1]}
    grew = True
    while grew:
        grew = False
        for i, j in withheld:
            if (i in rows) != (j in cols):
                rows.add(i)
                cols.add(j)
                grew = True
    return rows, cols


def _settle(
    table: Table,
    withheld: set[Entry],
    protected: set[Entry],
    threshold: int,
    interval: bool,
    bounds: Mapping[Entry, Range] | None = None,
) -> bool:
    """Withhold more until every protected entry passes the check (or nothing is left to
    withhold: then the caller decides); True if anything changed.

    Withholding more only widens ranges (what was published stays one feasible value), so
    an entry that passed is not checked again."""
    changed = False
    pending = set(protected)
    while True:
        classic_rule(table, withheld)
        problems = check(
            table, withheld, pending, threshold=threshold, interval=interval, bounds=bounds,
            first=True,
        )  # fmt: skip
        if not problems:
            return changed
        pending = {e for e in pending if e >= problems[0].entry}
        extra = _repair(table, withheld, problems[0], threshold if interval else 0, bounds)
        if extra is None:
            return changed
        withheld.add(extra)
        changed = True


def protect(
    table: Table, threshold: int = DEFAULT_THRESHOLD, *, interval: bool = True
) -> Suppressed:
    """Primary and complementary suppression of one table, checked exactly."""
    return protect_all({"table": table}, (), threshold, interval=interval)["table"]


# --- several tables -----------------------------------------------------------------------


def _check_links(tables: Mapping[str, Table], links: Sequence[Link]) -> None:
    """Refuse links the interval check cannot handle exactly (see the module doc)."""
    pairs: set[frozenset[str]] = set()
    parent = {name: name for name in tables}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for link in links:
        a, b = link.table_a, link.table_b
        if a not in tables or b not in tables or a == b:
            raise ValueError(f"a link joins two different known tables, not {a!r} and {b!r}")
        va = tables[a].extended()[link.entry_a[0]][link.entry_a[1]]
        vb = tables[b].extended()[link.entry_b[0]][link.entry_b[1]]
        if va != vb:
            raise ValueError(
                f"linked counts differ: {a}{link.entry_a}={va}, {b}{link.entry_b}={vb}"
            )
        if frozenset((a, b)) in pairs or root(a) == root(b):
            raise ValueError(f"tables {a!r} and {b!r}: links must form a tree, one count per pair")
        pairs.add(frozenset((a, b)))
        parent[root(a)] = root(b)


def _link_bounds(
    tables: Mapping[str, Table], withheld: Mapping[str, set[Entry]], links: Sequence[Link]
) -> dict[str, dict[Entry, Range]]:
    """For each table, the ranges the other tables allow its shared counts (propagated to a
    fixpoint; exact on a tree of single links)."""
    bounds: dict[str, dict[Entry, Range]] = {name: {} for name in tables}
    ends = [
        (end, other)
        for link in links
        if link.entry_a in withheld[link.table_a] and link.entry_b in withheld[link.table_b]
        for end, other in (
            ((link.table_a, link.entry_a), (link.table_b, link.entry_b)),
            ((link.table_b, link.entry_b), (link.table_a, link.entry_a)),
        )
    ]
    for _ in range(2 * len(ends) + 1):
        moved = False
        for (name, entry), (other, other_entry) in ends:
            graph = _Graph(tables[other], withheld[other], bounds[other])
            rng = graph.range_of(other_entry)
            if bounds[name].get(entry) != rng:
                bounds[name][entry] = rng
                moved = True
        if not moved:
            break
    return bounds


def protect_all(
    tables: Mapping[str, Table],
    links: Sequence[Link] = (),
    threshold: int = DEFAULT_THRESHOLD,
    *,
    interval: bool = True,
) -> dict[str, Suppressed]:
    """Protect several tables whose shared counts are declared as ``links``; raises
    :class:`RuntimeError` if some protected entry cannot be protected (never expected: see
    the module doc)."""
    _check_links(tables, links)
    primary = {name: primary_entries(t, threshold) for name, t in tables.items()}
    withheld = {name: set(p) for name, p in primary.items()}
    protected = {name: set(p) for name, p in primary.items()}
    for link in links:  # a count small in one table is small in both
        if link.entry_a in primary[link.table_a] or link.entry_b in primary[link.table_b]:
            for name, entry in ((link.table_a, link.entry_a), (link.table_b, link.entry_b)):
                protected[name].add(entry)
                withheld[name].add(entry)
    while True:
        bounds = _link_bounds(tables, withheld, links)
        changed = False
        for name, table in tables.items():
            changed |= _settle(
                table, withheld[name], protected[name], threshold, interval, bounds[name]
            )
        for link in links:  # a shared count is withheld in both tables or in neither
            if (link.entry_a in withheld[link.table_a]) != (link.entry_b in withheld[link.table_b]):
                withheld[link.table_a].add(link.entry_a)
                withheld[link.table_b].add(link.entry_b)
                changed = True
        if not changed:
            break
    bounds = _link_bounds(tables, withheld, links)
    for name, table in tables.items():
        problems = check(
            table, withheld[name], protected[name], threshold=threshold, interval=interval,
            bounds=bounds[name],
        )  # fmt: skip
        if problems:
            raise RuntimeError(f"{name}: cannot protect {problems[0].entry}: {problems[0].reason}")
    return {
        name: Suppressed(
            table,
            threshold,
            primary[name],
            frozenset(withheld[name]),
            feasible_ranges(table, withheld[name], bounds[name]),
        )
        for name, table in tables.items()
    }
