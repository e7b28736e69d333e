"""The event schema: what each channel must carry, and the reasons given for what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from immigrationos.departures.events import (
    SCHEMA_FILE,
    LandExit,
    Malformed,
    Manifest,
    SelfReport,
    json_schema,
    read_event,
)

MANIFEST: dict[str, Any] = {
    "event_id": "DEP000000000001", "channel": "manifest", "occurred_at": "2026-09-01T10:00:00Z",
    "family_name": "López", "given_name": "Juan", "birth_date": "1980-02-03", "sex": "M",
    "citizenship": "ECU", "document_type": "passport", "document_no": "A21778646",
    "document_expiry": "2030-06-01", "document_country": "ECU", "carrier": "PR",
    "flight": "PR6792", "port": "ORD", "reported_at": None,
}  # fmt: skip


def test_each_channel_reads_into_its_model() -> None:
    assert isinstance(read_event(json.dumps(MANIFEST)), Manifest)
    exit_ = {**MANIFEST, "channel": "land_exit", "carrier": None, "flight": None, "port": "SYS"}
    assert isinstance(read_event(exit_), LandExit)
    report = {**exit_, "channel": "self_report", "port": None,
              "reported_at": "2026-09-03T08:00:00Z"}  # fmt: skip
    event = read_event(report)
    assert isinstance(event, SelfReport)
    assert event.reported_at.isoformat().startswith("2026-09-03")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"channel": "bus"}, "unknown channel 'bus'"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-09-01T10:00:00"}, "time zone"),
        ({"document_no": "a-1"}, "document_no"),
        ({"sex": "male"}, "sex"),
        ({"family_name": None, "given_name": None}, "names its person"),
        ({"carrier": None}, "carrier"),
        ({"citizenship": "Ecuador"}, "citizenship"),
        ({"birth_date": "2027-01-01"}, "birth_date is after occurred_at"),
        ({"passenger_seat": "12A"}, "passenger_seat"),
        ({"event_id": ""}, "event_id"),
    ],
)
def test_what_is_wrong_is_said(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        read_event({**MANIFEST, **change})
    assert reason in caught.value.reason
    if change.get("event_id", "x"):
        assert caught.value.event_id == MANIFEST["event_id"]


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(Malformed, match="not JSON"):
        read_event(b"{oops")
    with pytest.raises(Malformed, match="JSON object, not list"):
        read_event(b"[1, 2]")


def test_a_self_report_needs_its_report_time() -> None:
    report = {**MANIFEST, "channel": "self_report", "carrier": None, "flight": None}
    with pytest.raises(Malformed, match="reported_at"):
        read_event(report)


def test_the_shipped_schema_file_is_the_models_schema() -> None:
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == json.loads(json.dumps(json_schema(), sort_keys=True))
    assert shipped["title"].endswith("version 1")
    channels = {m["properties"]["channel"]["const"] for m in shipped["$defs"].values()}
    assert channels == {"manifest", "land_exit", "self_report"}
