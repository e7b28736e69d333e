"""Constrained clustering and stable person ids (pure planning functions)."""

from __future__ import annotations

from immigrationos.resolution.cluster import cluster, new_person_id, plan_ids


def test_edges_above_the_link_weight_join() -> None:
    c = cluster(["a", "b", "c", "d"], [("a", "b", 9.0), ("c", "d", 2.0)], link_weight=4.0)
    assert c.cluster_of["a"] == c.cluster_of["b"]
    assert c.cluster_of["c"] != c.cluster_of["d"]


def test_cannot_link_stops_a_chain_and_must_link_joins() -> None:
    edges = [("a", "b", 20.0), ("b", "c", 10.0), ("c", "d", 9.0)]
    c = cluster(["a", "b", "c", "d", "e"], edges, 4.0, must_link=[("d", "e")],
                cannot_link=[("a", "d")])  # fmt: skip
    groups = sorted(sorted(m) for m in c.members().values())
    # a-b-c join (strongest first); c-d would put d with a, which a decision forbids.
    assert groups == [["a", "b", "c"], ["d", "e"]]
    assert ("c", "d") in c.blocked_pairs


def test_rerun_with_the_same_clusters_keeps_every_id() -> None:
    first = plan_ids({"x": ["r1", "r2"], "y": ["r3"]}, {}, set())
    again = plan_ids({"k1": ["r1", "r2"], "k2": ["r3"]}, first.person_of, set(first.created))
    assert again.person_of == first.person_of
    assert again.created == [] and sorted(again.kept) == sorted(first.created)


def test_merge_retires_an_id_with_a_redirect() -> None:
    before = {"r1": "P1", "r2": "P1", "r3": "P2"}
    plan = plan_ids({"k": ["r1", "r2", "r3"]}, before, {"P1", "P2"})
    assert set(plan.person_of.values()) == {"P1"}
    assert plan.merged == {"P2": "P1"}


def test_split_keeps_the_id_on_the_larger_part_and_records_the_split() -> None:
    before = {"r1": "P1", "r2": "P1", "r3": "P1"}
    plan = plan_ids({"k1": ["r1", "r2"], "k2": ["r3"]}, before, {"P1"})
    assert plan.person_of["r1"] == "P1" and plan.person_of["r3"] != "P1"
    assert plan.splits == {"P1": sorted(["P1", plan.person_of["r3"]])}
    assert plan.moved_records == 1


def test_new_ids_never_reuse_a_taken_id() -> None:
    first = new_person_id(["r1"], set())
    assert new_person_id(["r1"], {first}) != first
    assert new_person_id(["r1"], set()) == first
