"""Survivorship: the value most records agree on, with provenance; conflicts stay visible."""

from __future__ import annotations

from immigrationos.resolution.golden import golden_record, person_columns

DAY = "1980-05-04"


def _rec(uid: str, source: str, **values: str) -> dict[str, str]:
    return {"unique_id": uid, "source_id": source, "record_key": uid, **values}


def test_majority_wins_with_provenance_and_conflicts() -> None:
    golden = golden_record(
        [
            _rec(
                "r1", "encounters", given_name="Jose", family_name="Garcia", birth_date="1980-05-04"
            ),
            _rec(
                "r2", "arrivals", given_name="José", family_name="García", birth_date="1980-05-04"
            ),
            _rec("r3", "visas", given_name="Pepe", family_name="Garcia", birth_date="1980-04-05"),
        ]
    )
    given = golden["given_name"]
    assert given["value"] == "José" and given["source_id"] == "arrivals"
    assert given["support"] == 2
    assert [c["value"] for c in given["conflicts"]] == ["Pepe"]
    assert golden["birth_date"]["conflicts"][0]["value"] == "1980-04-05"


def test_a_1_january_default_loses_to_a_real_date_of_the_same_year() -> None:
    golden = golden_record(
        [
            _rec("r1", "court", birth_date="1980-01-01"),
            _rec("r2", "court", birth_date="1980-01-01"),
            _rec("r3", "arrivals", birth_date="1980-07-19"),
        ]
    )
    assert golden["birth_date"]["value"] == "1980-07-19"
    assert golden["birth_date"]["conflicts"][0]["value"] == "1980-01-01"
    assert person_columns(golden)["birth_date"] == "1980-07-19"
