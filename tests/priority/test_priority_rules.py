"""Hand-built persons whose tier is known from each policy's text, and the engine's invariants."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from immigrationos.priority import conditions as c
from immigrationos.priority.catalogue import FEATURES, Kind
from immigrationos.priority.evaluate import evaluate, evidence_items, evidence_one, score_one
from immigrationos.priority.policy import Policy, load_policy, shipped_policies
from immigrationos.priority.service import score

POLICIES = {load_policy(p).name: load_policy(p) for p in shipped_policies()}
BLANK: dict[str, Any] = {
    name: (False if f.kind is Kind.BOOLEAN else None) for name, f in FEATURES.items()
} | {"misdemeanor_count": 0, "conviction_count": 0, "prior_removals": 0, "age_years": 40.0,
     "years_in_country": 12.0}  # fmt: skip


def person(**values: Any) -> dict[str, Any]:
    return BLANK | values


def tiers(policy: Policy, people: dict[str, dict[str, Any]]) -> dict[str, tuple[str, float]]:
    rows = [{"person_id": k} | v for k, v in people.items()]
    out = evaluate(policy, pa.Table.from_pylist(rows)).to_pylist()
    return {r["person_id"]: (r["tier"], r["score"]) for r in out}


def test_2014_tiers_follow_the_memorandum() -> None:
    got = tiers(POLICIES["dhs-2014-priorities"], {
        "aggravated felon": person(aggravated_felony=True, felony=True),
        "felon": person(felony=True),
        "border": person(border_apprehension=True, no_admission_record=True,
                         last_entry_date=date(2025, 6, 1)),
        "three misdemeanors": person(misdemeanor_count=3),
        "significant misdemeanor": person(significant_misdemeanor=True, misdemeanor_count=1),
        "entered unlawfully in 2015": person(no_admission_record=True,
                                             last_entry_date=date(2015, 3, 1)),
        "final order 2016": person(final_order=True, final_order_date=date(2016, 2, 1)),
        "final order 2012": person(final_order=True, final_order_date=date(2012, 2, 1)),
        "overstay only": person(overstay_days=400),
        "elderly felon": person(felony=True, age_years=70.0),
    })  # fmt: skip
    assert got == {
        "aggravated felon": ("priority-1", 18.0), "felon": ("priority-1", 8.0),
        "border": ("priority-1", 12.0), "three misdemeanors": ("priority-2", 5.0),
        "significant misdemeanor": ("priority-2", 5.0),
        "entered unlawfully in 2015": ("priority-2", 4.0),
        "final order 2016": ("priority-3", 2.0), "final order 2012": ("not-a-priority", 0.0),
        "overstay only": ("not-a-priority", 0.0), "elderly felon": ("priority-1", 6.0),
    }  # fmt: skip


def test_2021_weighs_the_totality_and_removability_alone_is_not_a_basis() -> None:
    got = tiers(POLICIES["dhs-2021-guidelines"], {
        "violent felon, long sentence": person(felony=True, violent_offense=True,
                                               max_sentence_days=730, years_in_country=3.0),
        "old felon, long presence": person(felony=True, age_years=70.0, years_in_country=30.0),
        "felon, pending relief": person(felony=True, years_in_country=2.0, pending_relief=True),
        "crossed 2021": person(no_admission_record=True, years_in_country=4.0,
                               last_entry_date=date(2021, 6, 1)),
        "crossed 2019": person(no_admission_record=True, years_in_country=6.0,
                               last_entry_date=date(2019, 6, 1)),
        "final order only": person(final_order=True, final_order_date=date(2023, 1, 1)),
        "overstay only": person(overstay_days=900),
    })  # fmt: skip
    assert got == {
        "violent felon, long sentence": ("public-safety", 9.0),
        "old felon, long presence": ("not-a-priority", -2.0),
        "felon, pending relief": ("not-a-priority", 1.0),
        "crossed 2021": ("border-security", 5.0), "crossed 2019": ("not-a-priority", 0.0),
        "final order only": ("not-a-priority", -3.0), "overstay only": ("not-a-priority", -3.0),
    }  # fmt: skip


def test_2025_reaches_every_removable_person() -> None:
    got = tiers(POLICIES["dhs-2025-enforcement"], {
        "misdemeanant": person(misdemeanor_count=1),
        "final order": person(final_order=True),
        "recent crosser": person(no_admission_record=True, years_in_country=1.0),
        "overstay": person(overstay_days=30),
        "permanent resident": person(lawful_permanent_resident=True, overstay_days=0),
        "nothing on record": person(),
    })  # fmt: skip
    assert got == {
        "misdemeanant": ("criminal", 2.0), "final order": ("final-order", 4.0),
        "recent crosser": ("expedited", 4.0), "overstay": ("removable", 1.0),
        "permanent resident": ("not-a-priority", 0.0), "nothing on record": ("not-a-priority", 0.0),
    }  # fmt: skip


def test_evidence_names_the_records_behind_each_fired_rule() -> None:
    ev = [{"t": "convictions", "id": "c1", "src": "convictions", "d": date(2020, 1, 2)}]
    row = {"person_id": "p"} | person(felony=True) | {"ev_felony": ev}
    out = evaluate(POLICIES["dhs-2014-priorities"], pa.Table.from_pylist([row])).to_pylist()[0]
    assert orjson.loads(out["evidence"]) == {
        "felony": [{"t": "convictions", "id": "c1", "src": "convictions", "d": "2020-01-02"}]
    }
    assert evidence_items(out["evidence"]) == [
        {"t": "convictions", "id": "c1", "src": "convictions", "d": "2020-01-02", "rule": "felony"}
    ]
    assert orjson.loads(out["rules"]) == ["felony"]


# -- properties ---------------------------------------------------------------------------------

_DATES = st.dates(date(1990, 1, 1), date(2026, 3, 1))


def _value(kind: Kind) -> st.SearchStrategy[Any]:
    return {
        Kind.BOOLEAN: st.booleans(),
        Kind.INTEGER: st.one_of(st.none(), st.integers(0, 4000)),
        Kind.NUMBER: st.one_of(st.none(), st.floats(0, 90).map(lambda x: round(x, 2))),
        Kind.DATE: st.one_of(st.none(), _DATES),
    }[kind]


persons = st.fixed_dictionaries({n: _value(f.kind) for n, f in FEATURES.items() if f.collected})
_RECORD = st.fixed_dictionaries(
    {"t": st.sampled_from(["convictions", "admissions"]), "id": st.text("abc12", min_size=1,
     max_size=4), "src": st.sampled_from(["court", "visas"]), "d": st.one_of(st.none(), _DATES)}
)  # fmt: skip
#: Evidence lists for some features (a missing ``ev_`` column, an empty list and a null too).
evidence = st.fixed_dictionaries(
    {},
    optional={f"ev_{n}": st.one_of(st.none(), st.lists(_RECORD, max_size=3))
              for n, f in FEATURES.items() if f.collected},
)  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(persons, evidence), min_size=1, max_size=30))
def test_sql_and_python_agree(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    columns = sorted({k for _, ev in rows for k in ev})
    dicts = [{"person_id": f"p{i}"} | BLANK | r | {c: ev.get(c) for c in columns}
             for i, (r, ev) in enumerate(rows)]  # fmt: skip
    record = pa.struct([("t", pa.string()), ("id", pa.string()), ("src", pa.string()),
                        ("d", pa.date32())])  # fmt: skip
    table = pa.Table.from_pylist(dicts)
    for column in columns:  # a column of only nulls or empty lists still has the record type
        i = table.column_names.index(column)
        typed = pa.array([d[column] for d in dicts], pa.list_(record))
        table = table.set_column(i, column, typed)
    for policy in POLICIES.values():
        got = {o["person_id"]: o for o in evaluate(policy, table).to_pylist()}
        for row in table.to_pylist():
            out = got[row["person_id"]]
            tier, total, fired = score_one(policy, row)
            assert (out["tier"], out["score"], orjson.loads(out["rules"])) == (tier, total, fired)
            assert orjson.loads(out["evidence"]) == evidence_one(policy, row, fired)


def _mitigate(cond: c.Cond, row: dict[str, Any]) -> dict[str, Any]:
    """The row with the fact that makes a mitigating condition hold (when it is that simple)."""
    if isinstance(cond, c.Test) and cond.value is True:
        return row | {cond.feature: True}
    if isinstance(cond, c.Test) and cond.op in (">=", ">"):
        return row | {cond.feature: float(cond.value) + (1 if cond.op == ">" else 0)}
    return row


@settings(max_examples=100, deadline=None)
@given(persons)
def test_adding_a_mitigating_fact_never_raises_a_score_or_a_tier(values: dict[str, Any]) -> None:
    row = BLANK | values
    for policy in POLICIES.values():
        tier, before, _ = score_one(policy, row)
        for rule in (r for r in policy.rules if r.kind == "mitigating"):
            after_tier, after, _ = score_one(policy, _mitigate(rule.cond, row))
            assert after <= before
            assert policy.tier(after_tier).rank >= policy.tier(tier).rank


_BLOCKS = st.lists(st.sampled_from(["not_a_citizen", "not_departed", "no_stay",
                                    "not_in_citizenship_review"]), max_size=2)  # fmt: skip


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(persons, _BLOCKS), min_size=1, max_size=20))
def test_a_blocked_person_is_never_actionable(rows: list[tuple[dict[str, Any], list[str]]]) -> None:
    table = pa.Table.from_pylist([
        {"person_id": f"p{i}", "office": "Miami", "nationality": "MEX"} | BLANK | r
        | {"blocks": [{"guard": g, "message": g} for g in b]}
        for i, (r, b) in enumerate(rows)
    ], schema=None)  # fmt: skip
    for policy in POLICIES.values():
        for out in score(policy, table).table.to_pylist():
            blocked = orjson.loads(out["blocks"])
            assert not (blocked and out["actionable"])
            assert out["actionable"] == (out["lead"] and not blocked)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_the_plan_can_be_read_before_it_runs(name: str) -> None:
    from immigrationos.priority.evaluate import plan

    sql = plan(POLICIES[name])
    assert all(f'"r_{r.id}"' in sql for r in POLICIES[name].rules)
