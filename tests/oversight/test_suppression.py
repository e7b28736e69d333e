"""Small-cell suppression: withheld counts cannot be recovered from what is published.

The attacker of these tests knows every published cell and total, that counts are
non-negative integers, and that a withheld count is at least 1 (zeros are published). For
tiny tables the tests enumerate every table consistent with the publication (brute force,
independent of the module's max-flow); for larger ones they ask a linear program (SciPy's
HiGHS, in the lock file as a dependency of the analytics stack) for each withheld count's
least and greatest value.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from immigrationos.oversight.suppression import (
    DEFAULT_THRESHOLD,
    Link,
    Range,
    Suppressed,
    Table,
    check,
    classic_rule,
    feasible_ranges,
    protect,
    protect_all,
)

Entry = tuple[int, int]


def table(counts: Sequence[Sequence[int]]) -> Table:
    rows = [f"r{i}" for i in range(len(counts))]
    cols = [f"c{j}" for j in range(len(counts[0]) if counts else 1)]
    return Table.of(rows, cols, counts)


# --- an attacker who enumerates ---------------------------------------------------------


def _row_choices(row: Sequence[int | None], total: int | None, cap: int) -> Iterator[list[int]]:
    """Every way to fill a row's withheld cells (each 1..cap) that meets a published total."""
    unknown = [j for j, v in enumerate(row) if v is None]
    known = sum(v for v in row if v is not None)
    free = unknown[:-1] if total is not None and unknown else unknown
    for values in itertools.product(range(1, cap + 1), repeat=len(free)):
        filled = list(row)
        for j, v in zip(free, values, strict=True):
            filled[j] = v
        if total is not None and unknown:
            last = total - known - sum(values)
            if not 1 <= last <= cap:
                continue
            filled[unknown[-1]] = last
        if total is None or sum(v or 0 for v in filled) == total:
            yield [v or 0 for v in filled]


def consistent_tables(
    published: Sequence[Sequence[int | None]], shape: tuple[int, int], cap: int
) -> Iterator[list[list[int]]]:
    """Every extended matrix agreeing with ``published`` (None: withheld, at least 1), its
    withheld interior cells at most ``cap``; row by row, a published row total fixing the
    row's last withheld cell."""
    r, c = shape
    choices = [list(_row_choices(published[i][:c], published[i][c], cap)) for i in range(r)]
    for m in itertools.product(*choices):
        rows = [sum(row) for row in m]
        cols = [sum(m[i][j] for i in range(r)) for j in range(c)]
        full = [[*m[i], rows[i]] for i in range(r)] + [[*cols, sum(rows)]]
        if all(
            (published[i][j] is None and full[i][j] >= 1) or published[i][j] == full[i][j]
            for i in range(r + 1)
            for j in range(c + 1)
        ):
            yield full


def enough(t: Table) -> int:
    """A cap on withheld cells that loses no answer to "can this count be 11 or more, or
    other than it is?": reaching a value at most ``threshold`` away moves every other cell by
    at most as much (a conformal sum of cycles through the cell). A published grand total
    bounds every cell anyway."""
    ext = t.extended()
    r, c = t.shape
    biggest = max((v for row in ext[:r] for v in row[:c]), default=0)
    return min(biggest + DEFAULT_THRESHOLD, ext[r][c] + DEFAULT_THRESHOLD)


def free_unknowns(s: Suppressed) -> int:
    """Withheld cells the enumeration must try (a published row total fixes one per row)."""
    published = s.published()
    r, c = s.table.shape
    return sum(
        max(0, sum(v is None for v in published[i][:c]) - (published[i][c] is not None))
        for i in range(r)
    )


def brute_ranges(s: Suppressed, cap: int) -> dict[Entry, set[int]]:
    seen: dict[Entry, set[int]] = {e: set() for e in s.withheld}
    for full in consistent_tables(s.published(), s.table.shape, cap):
        for i, j in s.withheld:
            seen[(i, j)].add(full[i][j])
    return seen


# --- an attacker with a linear program --------------------------------------------------


def lp_range(s: Suppressed, entry: Entry) -> tuple[float, float]:
    """Least and greatest value of ``entry`` over the LP relaxation (exact here: the
    constraint matrix is totally unimodular)."""
    from scipy.optimize import linprog

    r, c = s.table.shape
    published = s.published()
    cells = [(i, j) for i in range(r + 1) for j in range(c + 1)]
    index = {e: k for k, e in enumerate(cells)}
    a_eq, b_eq = [], []
    for i in range(r + 1):  # each row of the extended matrix: cells minus the total = 0
        row = [0.0] * len(cells)
        for j in range(c):
            row[index[(i, j)]] = 1.0
        row[index[(i, c)]] = -1.0
        a_eq.append(row)
        b_eq.append(0.0)
    for j in range(c + 1):
        row = [0.0] * len(cells)
        for i in range(r):
            row[index[(i, j)]] = 1.0
        row[index[(r, j)]] = -1.0
        a_eq.append(row)
        b_eq.append(0.0)
    bounds = [
        (1, None) if published[i][j] is None else (published[i][j], published[i][j])
        for i, j in cells
    ]
    objective = [0.0] * len(cells)
    objective[index[entry]] = 1.0
    low = linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    high = linprog([-x for x in objective], A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    assert low.status == 0
    upper = float("inf") if high.status == 3 else -high.fun
    return low.fun, upper


# --- properties -------------------------------------------------------------------------


small_tables = st.integers(1, 3).flatmap(
    lambda r: st.integers(1, 3).flatmap(
        lambda c: st.lists(
            st.lists(st.sampled_from([0, 0, 1, 2, 3, 5, 9, 12]), min_size=c, max_size=c),
            min_size=r,
            max_size=r,
        )
    )
)
many_small_cells = st.integers(2, 7).flatmap(
    lambda r: st.integers(2, 6).flatmap(
        lambda c: st.lists(
            st.lists(st.one_of(st.integers(0, 10), st.integers(11, 60)), min_size=c, max_size=c),
            min_size=r,
            max_size=r,
        )
    )
)


def assert_protected(s: Suppressed, ranges: dict[Entry, tuple[float, float]]) -> None:
    assert s.primary <= s.withheld, "every count under the threshold is withheld"
    for entry in s.primary:
        lo, hi = ranges[entry]
        assert hi > lo, f"{entry} is recoverable: {lo}..{hi}"
        assert hi >= DEFAULT_THRESHOLD, f"{entry} is provably small: {lo}..{hi}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_tables)
def test_an_attacker_who_enumerates_cannot_recover_a_small_count(counts: list[list[int]]) -> None:
    t = table(counts)
    s = protect(t)
    if free_unknowns(s) > 4:
        return  # too many to enumerate in a test; the linear program covers such patterns
    seen = brute_ranges(s, enough(t))
    truth = t.extended()
    ranges: dict[Entry, tuple[float, float]] = {}
    for (i, j), values in seen.items():
        assert truth[i][j] in values, "the true table is consistent with the publication"
        ranges[(i, j)] = (min(values), max(values))
    assert_protected(s, ranges)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(many_small_cells)
def test_linear_programming_cannot_recover_a_small_count(counts: list[list[int]]) -> None:
    s = protect(table(counts))
    ranges = {e: lp_range(s, e) for e in s.primary}
    assert_protected(s, ranges)
    for e in s.primary:  # the module's exact ranges are the LP's
        lo, hi = ranges[e]
        mine = s.ranges[e]
        assert (mine.lo, mine.hi if mine.hi is not None else float("inf")) == (lo, hi)


@settings(max_examples=200, deadline=None)
@given(small_tables, st.data())
def test_feasible_ranges_are_exact_for_any_withheld_pattern(
    counts: list[list[int]], data: st.DataObject
) -> None:
    """Theorem 2 against enumeration, for arbitrary (not only protective) patterns."""
    t = table(counts)
    ext = t.extended()
    r, c = t.shape
    positive = [(i, j) for i in range(r + 1) for j in range(c + 1) if ext[i][j] > 0]
    positive = [e for e in positive if e != (r, c)]  # a withheld grand total is unbounded
    if not positive:
        return
    withheld = data.draw(st.sets(st.sampled_from(positive), min_size=1))
    if sum(1 for i, j in withheld if i < r and j < c) > 3:
        return
    s = Suppressed(t, DEFAULT_THRESHOLD, frozenset(), frozenset(withheld))
    seen = brute_ranges(s, ext[r][c])  # the published grand total bounds every cell
    for entry, rng in feasible_ranges(t, withheld).items():
        assert (rng.lo, rng.hi) == (min(seen[entry]), max(seen[entry])), entry


# --- edge cases --------------------------------------------------------------------------


def test_all_cells_small_withholds_everything_but_zeros() -> None:
    s = protect(table([[1, 2], [3, 0]]))
    ext = s.table.extended()
    positive = {(i, j) for i in range(3) for j in range(3) if ext[i][j] > 0}
    assert s.withheld == positive
    assert s.published()[1][1] == 0, "a zero is published as 0"
    assert all(rng.hi is None for rng in s.ranges.values()), "nothing bounds them"


def test_a_row_with_one_small_cell_gets_a_partner_in_its_row_and_column() -> None:
    counts = [[40, 30, 5], [50, 60, 70], [45, 35, 80]]
    s = protect(table(counts))
    assert (0, 2) in s.primary
    assert sum(1 for i, j in s.withheld if i == 0) >= 2
    assert sum(1 for i, j in s.withheld if j == 2) >= 2
    assert not any(i == 3 or j == 3 for i, j in s.withheld), "totals stay published"
    assert s.ranges[(0, 2)].width >= 1 and s.ranges[(0, 2)].hi >= 11  # type: ignore[operator]


def test_zero_rows_publish_an_empty_table() -> None:
    s = protect(Table.of([], ["a", "b"], []))
    assert s.withheld == frozenset() and s.published() == ((0, 0, 0),)


def test_a_small_total_is_withheld_and_protected() -> None:
    s = protect(table([[3, 4], [50, 60]]))
    assert (0, 2) in s.primary and (0, 2) in s.withheld  # row total 7
    assert s.ranges[(0, 2)].width >= 1


def test_the_classic_rule_alone_can_leave_a_bridge_that_the_exact_check_finds() -> None:
    """Two 2×2 blocks of withheld cells joined by one cell: every line holds two withheld
    cells, yet the joining cell is a bridge and is determined."""
    counts = [
        [20, 20, 0, 0, 30],
        [20, 20, 0, 0, 0],
        [0, 0, 20, 20, 0],
        [0, 0, 20, 20, 0],
        [0, 0, 0, 5, 0],
    ]
    withheld = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (0, 4)}
    withheld |= {(4, 3), (4, 5)}
    t = table(counts)
    grown = set(withheld)
    classic_rule(t, grown)
    problems = check(t, grown, {(4, 3)})
    assert problems and "exactly" in problems[0].reason
    s = protect(t)
    assert s.ranges[(4, 3)].width >= 1


def test_one_column_tables_protect_their_rows() -> None:
    s = protect(table([[7], [30], [25]]))
    assert {(0, 0), (0, 1)} <= s.withheld
    assert s.ranges[(0, 0)].width >= 1


def test_a_count_shared_by_two_tables_is_withheld_in_both_and_checked_jointly() -> None:
    closed = Table.of(["removed", "other"], ["all"], [[7], [30]])
    removals = Table.of(["MEX", "POL"], ["240", "expedited"], [[4, 1], [2, 0]])
    link = Link("closed", (0, 1), "removals", (2, 2))
    out = protect_all({"closed": closed, "removals": removals}, [link])
    assert (0, 1) in out["closed"].withheld and (2, 2) in out["removals"].withheld
    for s in out.values():
        for e in s.primary:
            assert s.ranges[e].width >= 1


def test_links_must_agree_and_form_a_tree() -> None:
    a = Table.of(["x"], ["y"], [[12]])
    b = Table.of(["x"], ["y"], [[13]])
    with pytest.raises(ValueError, match="differ"):
        protect_all({"a": a, "b": b}, [Link("a", (1, 1), "b", (1, 1))])
    with pytest.raises(ValueError, match="tree"):
        protect_all(
            {"a": a, "b": a},
            [Link("a", (1, 1), "b", (1, 1)), Link("a", (0, 0), "b", (0, 0))],
        )


def test_ranges_report_no_upper_bound_as_none() -> None:
    assert Range(1, None).width == float("inf")
    assert Range(2, 5).width == 3
