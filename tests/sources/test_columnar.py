"""The columnar fast path agrees with the row validator on every value it does not doubt.

The row validator is the reference. For any input, a row the vector checks accept must clean
to exactly what the row validator gives (payload and placeholder flags), and a row the row
validator refuses must be doubted by the vector checks (so it reaches the row validator).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from immigrationos.sources import columnar
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.validate import RowInvalid, RowValidator

DEFINITION = SourceDefinition.model_validate(
    {
        "id": "mixed",
        "name": "Every field type",
        "format": "csv",
        "record_key": "key",
        "fields": {
            "key": {"type": "string", "required": True, "pattern": r"[A-Z]\d{3}"},
            "family_name": "name",
            "given_name": {"type": "name", "max_length": 12},
            "birth_date": "date",
            "issued": {"type": "date", "formats": ["%d/%m/%Y"]},
            "sex": {"type": "code", "codes": ["M", "F", "X"]},
            "status": {"type": "code", "codes": {"1": "pending", "2": "granted"}},
            "nationality": "country",
            "a_number": "a_number",
            "count": "integer",
            "seen_at": "timestamp",
            "note": {"type": "string", "required": True},
        },
        "agreement": {
            "legal_authority": "Synthetic test authority",
            "retention_days": 1,
            "permitted_purposes": ["data-integration"],
            "allowed_fields": [
                "key",
                "family_name",
                "given_name",
                "birth_date",
                "issued",
                "sex",
                "status",
                "nationality",
                "a_number",
                "count",
                "seen_at",
                "note",
            ],
        },
    }
)
VALIDATOR = RowValidator(DEFINITION)

tricky = st.sampled_from(
    [
        "",
        " ",
        "NA",
        "na na",
        "UNKNOWN",
        "XXX",
        "1900-01-01",
        "=SUM(A1)",
        "+1",
        "-x",
        "-5",
        "@a",
        "\u00a0José\u00a0",
        "  Ana  María ",
        "A12345678",
        "012-345-678",
        "A000000000",
        "USA",
        "usa",
        "U",
        "M",
        "1",
        "3",
        "2023-02-30",
        "2024-02-29",
        "2023-1-5",
        "31/12/2020",
        "30/02/2021",
        "2000-02-06T11:14:54Z",
        "2000-02-06T11:14:54.5Z",
        "2000-02-30T11:14:54Z",
        "2000-02-06T11:14:54+02:00",
        "1899-12-31",
        "2101-01-01",
        "٣",
        "1_000",
        "007",
        "A123",
        "a\x00b",
        "x" * 13,
        "B999",
        "\tT",
        "Nguyễn",
        "O'Brien",
        "ß",
    ]
)
value = st.one_of(tricky, st.text(max_size=14), st.none())
row_strategy = st.fixed_dictionaries({name: value for name in DEFINITION.fields})


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {name: pa.array([r[name] for r in rows], pa.string()) for name in DEFINITION.fields}
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, min_size=1, max_size=12))
def test_vector_checks_agree_with_the_row_validator(rows: list[dict[str, Any]]) -> None:
    checked = columnar.validate_table(_table(rows), DEFINITION)
    doubt = checked.doubt.to_pylist()
    columns = [a.to_pylist() for a in checked.values]
    for i, row in enumerate(rows):
        try:
            reference = VALIDATOR(row)
        except RowInvalid:
            assert doubt[i], f"row validator refuses {row!r}; vector checks accepted it"
            continue
        if doubt[i]:
            continue  # the row validator will decide; nothing to compare
        payload = {name: column[i] for name, column in zip(checked.names, columns, strict=True)}
        assert payload == reference.payload, row
        flagged = {n for n, mask in checked.placeholders.items() if mask[i].as_py()}
        assert flagged == set(reference.flags), row
