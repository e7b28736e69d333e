"""The story of a late departure record, on SQLite and on PostgreSQL (one body, both stores):
the first figure, its revision, the history kept, and a repeated assessment adding nothing."""

from __future__ import annotations

from datetime import date

from immigrationos.departures import overstays

from .conftest import Agency, at, count_rows

ON, UNTIL = date(2025, 11, 1), date(2026, 5, 1)
D1, D2 = date(2026, 6, 1), date(2026, 7, 15)


def test_late_records_revise_earlier_figures(any_agency: Agency) -> None:
    agency = any_agency
    late, gone, stays = agency.person("IND"), agency.person("CHN"), agency.person(None)
    late_adm = agency.admission(late, ON, UNTIL)
    agency.admission(gone, ON, UNTIL, klass="F1", mode="sea")
    agency.admission(stays, ON, UNTIL)
    agency.departure(gone, date(2026, 4, 30), at(date(2026, 5, 1)))
    agency.filing(stays, "I-485", date(2026, 3, 1), status="approved")

    first = agency.assess(D1, now=at(D1, 20))
    agency.departure(late, date(2026, 5, 20), at(date(2026, 7, 10)))
    second = agency.assess(D2, now=at(D2, 20))
    again = agency.assess(D2, now=at(D2, 21))

    assert first.outcomes == {
        "departed-on-time": 1,
        "departed-late": 0,
        "no-departure-record": 1,
        "not-an-overstay": 1,
        "in-status": 0,
    }
    assert (second.written, second.superseded, again.written) == (1, 1, 0)
    assert agency.run(count_rows) == 4
    report = agency.report(2026)
    assert [
        (h["as_of"], h["no-departure-record"], h["departed-late"], h["overstay_rate_pct"])
        for h in report["history"]
    ] == [(D1, 1, 0, 50.0), (D2, 0, 1, 50.0)]
    assert report["totals"]["expected_departures"] == 2  # the adjusted stay is not expected
    classes = {r["class_of_admission"]: r["expected_departures"] for r in report["by_class"]}
    assert classes == {"B2": 1, "F1": 1}
    assert {r["nationality"] for r in report["by_nationality"]} == {"IND", "CHN", "unknown"}
    kept = agency.history(late_adm)
    assert kept[1]["basis"]["revises"] == kept[0]["id"] and kept[1]["days_over"] == 19
    assert kept[1]["basis"]["departure"]["on"] == "2026-05-20"
    assert [h["outcome"] for h in kept] == [
        "no-departure-record",
        "departed-late",
    ]
    assert agency.report(2026, D1)["totals"]["departed-late"] == 0
    assert overstays.fiscal_year_of(UNTIL) == 2026
