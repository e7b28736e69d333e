"""Constrained clustering and stable person ids (pure planning functions)."""

from __future__ import annotations

from immigrationos.resolution.cluster import Traits, cluster, new_person_id, plan_ids


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


def _traits(values: dict[str, tuple[str | None, str | None]]) -> Traits:
    """Two traits: an A-number (a disagreement weighs -7) and a birth date (-9)."""
    return Traits(weights=(-7.0, -9.0), values=values)


def test_groups_that_disagree_on_a_trait_do_not_join_through_a_record_lacking_it() -> None:
    # Two namesakes, each with an A-number on one record; a certificate (names and birth
    # date only) matches both. Pairwise, every edge passes; joined, the group would hold
    # two A-numbers with no record sharing one.
    values = {"a1": ("A1", "1980-01-02"), "a2": (None, "1980-01-02"),
              "b1": ("B1", "1980-01-02"), "cert": (None, "1980-01-02")}  # fmt: skip
    edges = [("a1", "a2", 12.0), ("b1", "cert", 11.0), ("a2", "cert", 9.0)]
    plain = cluster(list(values), edges, 3.0)
    assert len(set(plain.cluster_of.values())) == 1  # the chain merges both people
    checked = cluster(list(values), edges, 3.0, traits=_traits(values))
    groups = sorted(sorted(m) for m in checked.members().values())
    assert groups == [["a1", "a2"], ["b1", "cert"]]
    assert checked.conflicted == {("a2", "cert")}


def test_a_disagreement_the_pair_compared_itself_is_not_counted_twice() -> None:
    # The pair's own weight already holds its A-numbers' disagreement (a second A-number
    # issued to the same person): the groups' check adds nothing for that trait.
    values = {"x": ("A1", "1980-01-02"), "y": ("A2", "1980-01-02")}
    checked = cluster(["x", "y"], [("x", "y", 4.0)], 3.0, traits=_traits(values))
    assert checked.cluster_of["x"] == checked.cluster_of["y"] and not checked.conflicted


def test_a_strong_pair_outweighs_a_group_disagreement() -> None:
    # Same person, passport renewed: the group disagreement (-7) leaves 13 - 7 >= 3.
    values = {"p": ("A1", None), "q": ("A1", "1980-01-02"), "r": (None, "1980-01-02"),
              "s": ("A9", None)}  # fmt: skip
    edges = [("p", "q", 20.0), ("r", "s", 13.0), ("q", "r", 12.0)]
    checked = cluster(list(values), edges, 3.0, traits=_traits(values))
    assert len(set(checked.cluster_of.values())) == 1
    weak = [("p", "q", 20.0), ("r", "s", 13.0), ("q", "r", 9.0)]
    apart = cluster(list(values), weak, 3.0, traits=_traits(values))
    assert apart.cluster_of["q"] != apart.cluster_of["r"]  # 9 - 7 < 3


def test_groups_sharing_one_of_several_values_agree() -> None:
    # A group holding two birth dates (a typo) agrees with a record holding either: "k"
    # (no birth date) joins "o" at 5, which a disagreement (-9) would bring below 3.
    values = {"m": (None, "1980-01-02"), "n": (None, "1980-02-01"), "k": (None, None),
              "o": ("A1", "1980-02-01")}  # fmt: skip
    edges = [("m", "n", 15.0), ("m", "k", 14.0), ("k", "o", 5.0)]
    checked = cluster(list(values), edges, 3.0, traits=_traits(values))
    assert len(set(checked.cluster_of.values())) == 1 and not checked.conflicted


def test_the_shipped_model_keeps_namesakes_with_different_a_numbers_apart() -> None:
    """Through the shipped model at the scale of a million records: two people with the same
    name and birth date, each with an A-number, and a certificate naming that name and
    date. The certificate scores above the link weight with both; the group check lets it
    join one of them only."""
    from itertools import combinations

    import pyarrow as pa

    from immigrationos.resolution.model import Parameters
    from immigrationos.resolution.records import RAW_SCHEMA, features
    from immigrationos.resolution.service import shipped_model, traits_of

    base = {"given_name": "Mariama", "family_name": "Okafor", "birth_date": "1963-06-15"}
    rows = [
        {"unique_id": "ben-1", "source_id": "benefits", "a_number": "A348262390", **base},
        {"unique_id": "enc-2", "source_id": "encounters", "a_number": "A271100485", **base},
        {"unique_id": "cert", "source_id": "citizenship_evidence", **base},
    ]
    feats = features(pa.Table.from_pylist(rows, schema=RAW_SCHEMA))
    doc = shipped_model().for_records(1_000_000)
    params = Parameters(doc)
    by_id = {r["unique_id"]: r for r in feats.to_pylist()}
    edges = [(a, b, params.score(by_id[a], by_id[b], {}).match_weight)
             for a, b in combinations(sorted(by_id), 2)]  # fmt: skip
    weight = {frozenset((a, b)): w for a, b, w in edges}
    assert weight[frozenset(("ben-1", "cert"))] >= doc.link_weight
    assert weight[frozenset(("enc-2", "cert"))] >= doc.link_weight
    assert weight[frozenset(("ben-1", "enc-2"))] < doc.link_weight
    plain = cluster(list(by_id), edges, doc.link_weight)
    assert len(set(plain.cluster_of.values())) == 1  # the certificate chains them
    checked = cluster(list(by_id), edges, doc.link_weight, traits=traits_of(feats, doc))
    assert checked.cluster_of["ben-1"] != checked.cluster_of["enc-2"]
    assert len(checked.conflicted) == 1
