"""What a verified departure does to a person's cases, one case at a time (the lifecycle's
own fixtures): voluntary departure on time or late, a removal carried out, a closed case,
and a case opened after the departure left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.lifecycle.conftest import Desk
from tests.lifecycle.test_engine import _in_proceedings, _state

from immigrationos.departures.events import Manifest, read_event
from immigrationos.departures.service import apply_departure
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle import service as lc
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase

VD = {"decision_date": "2026-03-02", "stage": "before-conclusion",
      "departure_deadline": "2026-06-20", "alternate_destination": "MEX"}  # fmt: skip


def _manifest(at: str, event_id: str = "DEPFX1") -> Manifest:
    event = read_event(
        {"event_id": event_id, "channel": "manifest", "occurred_at": at, "family_name": "Test",
         "given_name": "Person", "carrier": "AM", "flight": "AM401", "port": "MIA"}
    )  # fmt: skip
    assert isinstance(event, Manifest)
    return event


def _person_of(desk: Desk, case: str) -> str:
    return str(desk.run("system", lambda gw: gw.get(EnforcementCase, case).person_id))


def _leave(desk: Desk, case: str, at: str, event_id: str = "DEPFX1") -> list[dict[str, Any]]:
    person = _person_of(desk, case)
    return list(
        desk.run("system", lambda gw: apply_departure(gw, person, f"dep-{event_id}",
                                                      _manifest(at, event_id)))
    )  # fmt: skip


def _evidence(desk: Desk, case: str, action: str) -> list[dict[str, Any]]:
    def read(gw: Gateway) -> list[dict[str, Any]]:
        rows = gw.select(
            select(CaseEvent).where(CaseEvent.case_id == case, CaseEvent.action == action),
            CaseEvent,
            params={},
        )
        assert len(rows) == 1
        return list(rows[0].evidence)

    return list(desk.run("system", read))


@pytest.mark.parametrize(("left", "timeliness"), [("2026-06-01T12:00:00Z", "on-time"),
                                                  ("2026-06-25T12:00:00Z", "late")])  # fmt: skip
def test_voluntary_departure_is_marked_on_time_or_late(
    desk: Desk, left: str, timeliness: str
) -> None:
    case = _in_proceedings(desk)
    desk.run("officer.miami", lc.perform, case, "grant_voluntary_departure", VD)
    desk.now = datetime(2026, 7, 1, tzinfo=UTC) if timeliness == "late" else desk.now
    [effect] = _leave(desk, case, left)
    assert effect["applied"] and effect["step"] == "voluntary_departure_verified", effect
    assert _state(desk, case) == "DEPARTED_VOLUNTARILY"
    marks = [e for e in _evidence(desk, case, "voluntary_departure_verified") if "timeliness" in e]
    assert [m["timeliness"] for m in marks] == [timeliness]
    assert marks[0]["due_at"].startswith("2026-06-21T00:00")  # the end of the deadline day


def test_other_open_cases_close_as_departed_and_a_later_case_is_left_alone(desk: Desk) -> None:
    case = _in_proceedings(desk)
    [effect] = _leave(desk, case, "2026-04-01T08:00:00Z")
    assert effect["step"] == "closed_as_departed" and _state(desk, case) == "CLOSED_DEPARTED"
    params = desk.run(
        "system",
        lambda gw: gw.select(select(CaseEvent.params).where(CaseEvent.case_id == case,
                             CaseEvent.action == "closed_as_departed"), CaseEvent, params={}),
    )  # fmt: skip
    assert params[0]["departure_id"] == "dep-DEPFX1"

    person = _person_of(desk, case)
    desk.now += timedelta(days=90)
    later = desk.run(
        "officer.miami", lambda gw: lc.open_case(gw, person, office="Miami", reason="back").id
    )
    [skipped] = _leave(desk, later, "2026-04-01T08:00:00Z", "DEPFX2")
    assert not skipped["applied"] and "opened after the departure" in skipped["reason"]
    assert _state(desk, later) == "LEAD"
