"""Clustering scored pairs into persons, and keeping person ids stable across runs.

Both steps are pure planning functions over plain data, so tests assert on the plan and the
service only writes what the plan says.

Clustering is greedy and constrained: must-link pairs (human "same person" decisions) join
first; then pairs at or above the link weight join in descending weight order, unless a
cannot-link decision separates the two groups, or the two groups disagree on what a person
has one of (:class:`Traits`: an A-number, a passport, a birth date, sex, nationality) strongly
enough to bring the pair below the link weight. A pair's weight compares two records only;
the group check stops the chains that join two namesakes through records that lack the
identifiers telling them apart (a certificate with a name and a birth date only, say).
Splink's connected components can do neither, which is why this is written here (a
union-find with per-group constraint sets; about a second per million edges).

Stable ids: each new cluster takes the id of the previous person it shares most records
with (ties to the older id); a previous person whose id is not taken is retired with a
redirect to the cluster that took most of its records. Every change is an event: created,
merged (ids retired into a survivor) and split (a person's records now in several persons).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from immigrationos.core.ids import content_id

Held = tuple[str | frozenset[str] | None, ...]
"""A group's values of each trait: none, one, or several (a renewed passport, a typo)."""


@dataclass(frozen=True)
class Traits:
    """What a person has one of, per record, and what a disagreement weighs.

    ``values[record]`` holds the record's value of each trait (aligned with ``weights``;
    ``None`` where the record lacks it); ``weights`` are the model's weights of
    each trait's comparison at its 'different' level (negative). When two groups are about
    to join, a trait that both groups hold but with no value in common counts against the
    joining pair with that weight, unless both records of the pair hold it (the pair's own
    weight has already compared them): the groups are compared as the pair would be had its
    records carried their groups' values.
    """

    weights: tuple[float, ...]
    values: Mapping[str, Held]

    def penalty(self, held_a: Held, held_b: Held, a: str, b: str) -> float:
        """What groups holding ``held_a`` and ``held_b`` disagree on, beyond what records
        ``a`` and ``b`` compared themselves."""
        total = 0.0
        for i, (x, y) in enumerate(zip(held_a, held_b, strict=True)):
            if x is None or y is None or not _apart(x, y):
                continue
            if self.values[a][i] is not None and self.values[b][i] is not None:
                continue  # the pair compared these itself
            total += self.weights[i]
        return total


def _apart(x: str | frozenset[str], y: str | frozenset[str]) -> bool:
    """Whether two groups' values of a trait have none in common."""
    if isinstance(x, str):
        return x != y if isinstance(y, str) else x not in y
    return y not in x if isinstance(y, str) else x.isdisjoint(y)


def _union(
    x: str | frozenset[str] | None, y: str | frozenset[str] | None
) -> str | frozenset[str] | None:
    if x is None or x == y:
        return y
    if y is None:
        return x
    return (x if isinstance(x, frozenset) else frozenset((x,))) | (
        y if isinstance(y, frozenset) else frozenset((y,))
    )


class _Groups:
    """Union-find over record ids with cannot-link constraints between groups, and each
    group's :class:`Traits` values (kept by root for groups of more than one record)."""

    def __init__(self, ids: Iterable[str], traits: Traits | None = None) -> None:
        self.parent = {i: i for i in ids}
        self.apart: dict[str, set[str]] = defaultdict(set)
        self.traits = traits
        self.held: dict[str, Held] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def forbid(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        self.apart[ra].add(rb)
        self.apart[rb].add(ra)

    def _values(self, root: str) -> Held:
        assert self.traits is not None
        return self.held.get(root) or self.traits.values[root]

    def penalty(self, ra: str, rb: str, a: str, b: str) -> float:
        """What the groups with roots ``ra`` and ``rb`` disagree on (see :class:`Traits`)."""
        assert self.traits is not None
        return self.traits.penalty(self._values(ra), self._values(rb), a, b)

    def join(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if rb in self.apart.get(ra, ()):
            return False
        if len(self.apart.get(ra, ())) < len(self.apart.get(rb, ())):
            ra, rb = rb, ra
        if self.traits is not None:
            joined = zip(self._values(ra), self._values(rb), strict=True)
            self.held[ra] = tuple(_union(x, y) for x, y in joined)
            self.held.pop(rb, None)
        self.parent[rb] = ra
        moved = self.apart.pop(rb, set())
        for other in moved:
            self.apart[other].discard(rb)
            self.apart[other].add(ra)
        self.apart[ra] |= moved
        return True


@dataclass
class Clustering:
    """Record id → cluster key, and the link pairs refused by a cannot-link decision."""

    cluster_of: dict[str, str]
    blocked_pairs: list[tuple[str, str]] = field(default_factory=list)
    held: frozenset[str] = frozenset()
    """Records whose links the model may not make alone (a disputed record link under
    redress): their pairs above the link weight go to review instead."""
    conflicted: set[tuple[str, str]] = field(default_factory=set)
    """Pairs at or above the link weight left apart because their groups disagree on a
    trait (see :class:`Traits`): uncertain, so they go to review like pairs below it."""

    def members(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for record, key in self.cluster_of.items():
            out[key].append(record)
        return {k: sorted(v) for k, v in out.items()}


def cluster(
    record_ids: Iterable[str],
    edges: Iterable[tuple[str, str, float]],
    link_weight: float,
    must_link: Iterable[tuple[str, str]] = (),
    cannot_link: Iterable[tuple[str, str]] = (),
    held: Iterable[str] = (),
    traits: Traits | None = None,
) -> Clustering:
    """Group records: must-links, then edges >= ``link_weight`` by weight, cannot-links kept.

    An edge touching a ``held`` record never joins by weight alone (a person's must-link
    still does): it is left to review. With ``traits``, an edge joins only if its weight plus
    what the two groups disagree on (:meth:`Traits.penalty`) still reaches the link weight.
    """
    groups = _Groups(record_ids, traits)
    hold = frozenset(held)
    known = groups.parent
    for a, b in cannot_link:
        if a in known and b in known:
            groups.forbid(a, b)
    blocked: list[tuple[str, str]] = []
    for a, b in must_link:
        if a in known and b in known and not groups.join(a, b):
            blocked.append((a, b))
    strong = sorted(
        (
            (w, a, b)
            for a, b, w in edges
            if w >= link_weight and a in known and b in known and a not in hold and b not in hold
        ),
        key=lambda e: (-e[0], e[1], e[2]),
    )
    conflicted: set[tuple[str, str]] = set()
    find = groups.find
    for w, a, b in strong:
        if traits is not None:
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            if w + groups.penalty(ra, rb, a, b) < link_weight:
                conflicted.add((a, b))
                continue
        if not groups.join(a, b):
            blocked.append((a, b))
    return Clustering({r: groups.find(r) for r in known}, blocked, hold, conflicted)


# -- stable ids -------------------------------------------------------------------------------


@dataclass
class IdPlan:
    """What a run changes in the person index."""

    person_of: dict[str, str]
    """Record id → person id after the run."""
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    merged: dict[str, str] = field(default_factory=dict)
    """Retired person id → the person id it now redirects to."""
    splits: dict[str, list[str]] = field(default_factory=dict)
    """Previous person id → every person id its records are in now (when more than one)."""
    moved_records: int = 0


def new_person_id(members: list[str], taken: set[str]) -> str:
    """A content-derived id from the cluster's first record (salted only on collision)."""
    seed = min(members)
    candidate = content_id("per", seed, length=20)
    salt = 0
    while candidate in taken:
        salt += 1
        candidate = content_id("per", seed, salt, length=20)
    return candidate


def plan_ids(
    clusters: Mapping[str, list[str]],
    previous: Mapping[str, str],
    existing_ids: set[str],
) -> IdPlan:
    """Assign person ids to ``clusters`` (key → record ids) given ``previous`` (record → id).

    ``existing_ids`` holds every person id ever used (active or retired), so a new id never
    reuses one.
    """
    overlaps: list[tuple[int, str, str]] = []
    for key, members in clusters.items():
        counts = Counter(previous[r] for r in members if r in previous)
        overlaps.extend((n, old, key) for old, n in counts.items())
    overlaps.sort(key=lambda t: (-t[0], t[1], t[2]))
    id_of: dict[str, str] = {}
    used: set[str] = set()
    for _, old, key in overlaps:
        if key not in id_of and old not in used:
            id_of[key] = old
            used.add(old)
    taken = set(existing_ids) | used
    plan = IdPlan(person_of={})
    for key in sorted(clusters, key=lambda k: min(clusters[k])):
        if key not in id_of:
            id_of[key] = new_person_id(clusters[key], taken)
            taken.add(id_of[key])
            plan.created.append(id_of[key])
        else:
            plan.kept.append(id_of[key])
        for record in clusters[key]:
            plan.person_of[record] = id_of[key]
    _changes(plan, previous)
    return plan


def _changes(plan: IdPlan, previous: Mapping[str, str]) -> None:
    spread: dict[str, Counter[str]] = defaultdict(Counter)
    for record, old in previous.items():
        new = plan.person_of.get(record)
        if new is not None:
            spread[old][new] += 1
            if new != old:
                plan.moved_records += 1
    kept = set(plan.kept)
    for old, targets in sorted(spread.items()):
        if len(targets) > 1:
            plan.splits[old] = sorted(targets)
        if old not in kept:
            plan.merged[old] = sorted(targets.items(), key=lambda t: (-t[1], t[0]))[0][0]
