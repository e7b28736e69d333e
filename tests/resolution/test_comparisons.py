"""Each comparison level means the same in SQL (what Splink runs) and in Python (what the
incremental linker runs): checked on generated pairs by evaluating the SQL in DuckDB."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from immigrationos.resolution.comparisons import COMPARISONS
from immigrationos.resolution.records import FEATURE_SCHEMA, feature_row

GIVEN = ["José", "Jose Luis", "Pepe", "Mohammed", "Muhammad", "Hassan", "Hussein", "FNU", None,
         "Xiao Ming", "Xiaoming", "Garcia", "Aleksandr", "Alexander", "Sasha", "Jos"]  # fmt: skip
FAMILY = ["García López", "Garcia", "López", "de la Cruz", "Al-Hassan", "Zhang", "Chang",
          "Nguyen", "Jose", "Garsia", None, "Ivanov"]  # fmt: skip
DATES = ["1980-05-04", "1980-04-05", "1980-01-01", "1981-05-04", "1980-05-14", "1900-01-01",
         None, "not a date"]  # fmt: skip
A_NUMBERS = ["A123456789", "A123456788", "A12345678", "A987654321", None]
PASSPORTS = ["X1234567", "X1234568", None]

record = st.fixed_dictionaries(
    {
        "given_name": st.sampled_from(GIVEN),
        "family_name": st.sampled_from(FAMILY),
        "middle_name": st.sampled_from([None, "Luis"]),
        "birth_date": st.sampled_from(DATES),
        "sex": st.sampled_from(["M", "F", None]),
        "nationality": st.sampled_from(["MEX", "SYR", None]),
        "a_number": st.sampled_from(A_NUMBERS),
        "passport_no": st.sampled_from(PASSPORTS),
        "passport_country": st.sampled_from(["MEX", "USA", None]),
        "fin": st.sampled_from(["1234567890", None]),
        "other_ids": st.sampled_from([[], ["state_id:NY1"], ["state_id:NY2"]]),
    }
)


def _sql_levels(left: dict[str, Any], right: dict[str, Any]) -> dict[str, int]:
    con = duckdb.connect()
    con.register("l_t", pa.Table.from_pylist([left], schema=FEATURE_SCHEMA))
    con.register("r_t", pa.Table.from_pylist([right], schema=FEATURE_SCHEMA))
    cols = ", ".join(f'l_t."{c}" AS "{c}_l", r_t."{c}" AS "{c}_r"' for c in FEATURE_SCHEMA.names)
    cases = []
    for comparison in COMPARISONS:
        whens = " ".join(
            f"WHEN {level.expr.sql('duckdb')} THEN {i}"
            for i, level in enumerate(comparison.levels)
            if level.expr is not None
        )
        cases.append(f"CASE {whens} ELSE {len(comparison.levels) - 1} END AS {comparison.name}")
    row = con.execute(f"SELECT {', '.join(cases)} FROM (SELECT {cols} FROM l_t, r_t)").fetchone()
    assert row is not None
    return dict(zip([c.name for c in COMPARISONS], row, strict=True))


@settings(max_examples=150, deadline=None)
@given(record, record)
def test_sql_and_python_agree_on_every_level(a: dict[str, Any], b: dict[str, Any]) -> None:
    left = feature_row({"unique_id": "l", **a})
    right = feature_row({"unique_id": "r", **b})
    python = {c.name: c.level_of(left, right) for c in COMPARISONS}
    assert python == _sql_levels(left, right)


def test_levels_on_known_pairs() -> None:
    def level(comparison: str, a: dict[str, Any], b: dict[str, Any]) -> str:
        c = next(c for c in COMPARISONS if c.name == comparison)
        left, right = feature_row({"unique_id": "l", **a}), feature_row({"unique_id": "r", **b})
        return c.levels[c.level_of(left, right)].label

    assert level("family_name", {"family_name": "García López"}, {"family_name": "Garcia"}) == (
        "a surname shared (double surnames)"
    )
    assert level("given_name", {"given_name": "Muhammad"}, {"given_name": "Mohammed"}) == (
        "name variant (symbol)"
    )
    swapped = (
        {"given_name": "Wei", "family_name": "Zhang"},
        {"given_name": "Zhang", "family_name": "Wei"},
    )
    assert level("given_name", *swapped) == "given and surname swapped"
    assert level("birth_date", {"birth_date": "1980-05-04"}, {"birth_date": "1980-04-05"}) == (
        "day and month swapped"
    )
    assert level("birth_date", {"birth_date": "1980-01-01"}, {"birth_date": "1980-06-17"}) == (
        "one side 1 January, same year (default date)"
    )
    assert level("birth_date", {"birth_date": "1900-01-01"}, {"birth_date": "1980-06-17"}) == (
        "birth date missing or placeholder"
    )
    assert level("a_number", {"a_number": "A123456789"}, {"a_number": "A123456788"}) == (
        "one digit different"
    )
    assert level("given_name", {"given_name": "Hassan"}, {"given_name": "Hussein"}) == (
        "sounds alike only (metaphone)"
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(record, min_size=1, max_size=25))
def test_columnar_features_equal_row_by_row(rows: list[dict[str, Any]]) -> None:
    from immigrationos.resolution.records import RAW_SCHEMA, features

    raw = [{"unique_id": f"r{i}", "source_id": "s", **row} for i, row in enumerate(rows)]
    table = pa.Table.from_pylist(raw, schema=RAW_SCHEMA)
    expected = pa.Table.from_pylist([feature_row(r) for r in raw], schema=FEATURE_SCHEMA)
    assert features(table).equals(expected)


def test_names_swapped_count_once() -> None:
    """Both name comparisons see a swap; only the given name's level weighs it (the
    surname's level is set to weigh nothing after training), so a swapped pair does not
    outweigh one whose given and family names are both exact."""
    import copy

    from immigrationos.resolution import linking
    from immigrationos.resolution.model import Parameters
    from immigrationos.resolution.service import shipped_model

    doc = shipped_model()
    params = Parameters(doc)
    left = feature_row({"unique_id": "l", "given_name": "Wei", "family_name": "Zhang"})
    right = feature_row({"unique_id": "r", "given_name": "Zhang", "family_name": "Wei"})
    same = feature_row({"unique_id": "s", "given_name": "Wei", "family_name": "Zhang"})
    weights = {c.comparison: c for c in params.score(left, right, {}).contributions}
    assert weights["family_name"].level == "given and surname swapped"
    assert weights["family_name"].weight == 0.0 and weights["given_name"].weight > 0
    exact = {c.comparison: c.weight for c in params.score(left, same, {}).contributions}
    assert weights["given_name"].weight < exact["given_name"] + exact["family_name"]

    untrained = copy.deepcopy(doc.splink)
    family = next(c for c in untrained["comparisons"] if c["output_column_name"] == "family_name")
    level = next(x for x in family["comparison_levels"] if "swapped" in x["label_for_charts"])
    level["m_probability"] = 0.034
    assert linking.counted_once(untrained) == [
        "family_name: given and surname swapped (in given_name)",
        "nationality: exact (in the names)",
        "sex: exact (in the names)",
    ]
    assert math.isclose(level["m_probability"], level["u_probability"])


def test_nationality_and_sex_agreeing_add_nothing_to_agreeing_names() -> None:
    """Names that agree already say the culture and the sex: nationality and sex agreeing
    weigh nothing in the shipped model; disagreeing still weighs strongly against."""
    from immigrationos.resolution.model import Parameters
    from immigrationos.resolution.service import shipped_model

    params = Parameters(shipped_model())
    row = {"given_name": "Wei", "family_name": "Zhang", "nationality": "CHN", "sex": "M"}
    left = feature_row({"unique_id": "l", **row})
    same = feature_row({"unique_id": "s", **row})
    other = feature_row({"unique_id": "o", **row, "nationality": "TWN", "sex": "F"})
    agreed = {c.comparison: c for c in params.score(left, same, {}).contributions}
    differ = {c.comparison: c for c in params.score(left, other, {}).contributions}
    for name in ("nationality", "sex"):
        assert agreed[name].level == "exact" and agreed[name].weight == 0.0
        assert differ[name].level == "different" and differ[name].weight < -5


def test_u_leaves_out_the_matching_pairs_among_random_pairs() -> None:
    """u comes from random pairs, some of which match: the expected matches (the prior times
    m) are taken out, so a rare level's weight rises and a common one's barely moves; no u
    leaves [one sampled pair, 1], and no level gains more than three bits (on a small input
    what is left of u would hang on the prior's own estimate)."""
    from immigrationos.resolution import linking

    def level(label: str, m: float | None, u: float | None, null: bool = False) -> dict[str, Any]:
        return {"label_for_charts": label, "m_probability": m, "u_probability": u,
                "is_null_level": null}  # fmt: skip

    levels = [
        level("missing", None, None, null=True),
        level("exact", 0.9, 1.8e-4),  # half the random pairs at this level match
        level("close", 0.05, 0.01),
        level("swapped", 0.5, 1e-5),  # fewer than the expected matches: three bits at most
        level("rarest", 0.5, 2e-6),  # not below one pair of the sample
        level("different", 0.05, 1.0),
    ]
    settings = {
        "probability_two_random_records_match": 1e-4,
        "comparisons": [{"output_column_name": "birth_date", "comparison_levels": levels}],
    }
    changed = linking.u_without_matches(settings, pairs=1e6)
    assert changed == {"birth_date: exact": 1.0, "birth_date: swapped": 3.0,
                       "birth_date: rarest": 1.0}  # fmt: skip
    assert math.isclose(levels[1]["u_probability"], 0.9e-4 / (1 - 1e-4))
    assert math.isclose(levels[2]["u_probability"], (0.01 - 5e-6) / (1 - 1e-4))
    assert math.isclose(levels[3]["u_probability"], 1e-5 / 8)
    assert levels[4]["u_probability"] == 1e-6
    assert levels[5]["u_probability"] == 1.0
    assert levels[0]["u_probability"] is None


def test_shipped_model_has_its_matches_taken_out_of_u() -> None:
    """The shipped model was adjusted as training now does: an exact birth date, A-number
    and passport weigh what random pairs of distinct persons say."""
    from immigrationos.resolution.service import shipped_model

    training = shipped_model().training
    gained = training["u_without_matches"]
    assert gained["birth_date: exact"] > 0.5 and gained["a_number: exact"] > 0.5
    assert training["adjusted_from"] == "pm-8469725c42e06a27"
