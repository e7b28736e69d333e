"""Removal logistics: flights, manifests that re-check every passenger, and departure.

Seats are taken by the ``schedule_removal`` action (request, approval, execution, each with
the removal guards); travel documents by the ``request_travel_document`` and
``record_travel_document`` steps. This module plans flights, prints manifests with every
passenger re-checked as of now, and departs a flight: each passenger is checked once more,
anyone who fails comes off the manifest with the reason, and each one who flies is handed
to departure verification as a departure record, which closes the case as removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from immigrationos.audit.events import FlightChanged
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.core.ids import content_id, new_id
from immigrationos.departures.models import Departure
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle import service
from immigrationos.lifecycle.engine import plan
from immigrationos.lifecycle.facts import gather
from immigrationos.lifecycle.guards import Check
from immigrationos.lifecycle.models import EnforcementCase, FlightSeat, RemovalFlight
from immigrationos.lifecycle.table import load_table
from immigrationos.persons.models import Person

PASSENGER_GUARDS = ("removal", "warrant_of_removal_signed", "travel_document_issued")


def create_flight(
    gw: Gateway,
    *,
    kind: str,
    carrier: str,
    flight_no: str,
    origin: str,
    destination: str,
    departs_at: datetime,
    capacity: int,
) -> RemovalFlight:
    """Plan a removal flight (charter or commercial seats)."""
    if kind not in ("charter", "commercial"):
        raise ValidationFailed("a flight is 'charter' or 'commercial'")
    if capacity < 1:
        raise ValidationFailed("a flight needs at least one seat")
    if departs_at.tzinfo is None:
        raise ValidationFailed("give the departure time with its time zone")
    if len(destination) != 3 or not destination.isalpha():
        raise ValidationFailed("destination is a three-letter country code")
    flight = RemovalFlight(
        id=new_id("flt"),
        kind=kind,
        carrier=carrier,
        flight_no=flight_no,
        origin=origin,
        destination=destination.upper(),
        departs_at=departs_at,
        capacity=capacity,
        created_by=gw.ctx.actor.user_id,
    )
    gw.session.add(flight)
    gw.session.flush()
    gw._audit(
        FlightChanged(object_type="removal_flights", object_ids=[flight.id], change="planned")
    )
    return flight


def flight(gw: Gateway, flight_id: str) -> RemovalFlight:
    found = gw.session.get(RemovalFlight, flight_id)
    if found is None:
        raise NotFound(f"no removal flight {flight_id!r}")
    return found


def list_flights(gw: Gateway, status: str | None = None) -> list[RemovalFlight]:
    stmt = select(RemovalFlight).order_by(RemovalFlight.departs_at)
    if status:
        stmt = stmt.where(RemovalFlight.status == status)
    return list(gw.session.scalars(stmt).all())


def passenger_checks(gw: Gateway, case_id: str, f: RemovalFlight, now: datetime) -> list[Check]:
    """Every passenger check for one case on one flight, as of ``now``."""
    facts = gather(gw, case_id, (f.id,))
    step = load_table().transition("removal_verified")
    probe = step.model_copy(update={"guards": PASSENGER_GUARDS})
    result = plan(facts, probe, {"destination": f.destination, "flight_id": f.id}, now)
    return result.checks


@dataclass
class ManifestLine:
    seat_id: str
    case_id: str
    person_id: str
    name: str
    checks: list[Check] = field(default_factory=list)

    @property
    def cleared(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seat_id": self.seat_id,
            "case_id": self.case_id,
            "person_id": self.person_id,
            "name": self.name,
            "cleared": self.cleared,
            "blocked_by": [c.as_dict() for c in self.checks if not c.ok],
        }


def manifest(gw: Gateway, flight_id: str, now: datetime | None = None) -> list[ManifestLine]:
    """The flight's passengers, each re-checked now (final order, no stay, no protection for
    the destination, travel document, not in citizenship review, …)."""
    now = now or utcnow()
    f = flight(gw, flight_id)
    seats = gw.rows(
        select(FlightSeat.id, FlightSeat.case_id, EnforcementCase.person_id)
        .join(EnforcementCase, EnforcementCase.id == FlightSeat.case_id)
        .where(FlightSeat.flight_id == f.id, FlightSeat.status == "assigned")
        .order_by(FlightSeat.assigned_at),
        FlightSeat,
        params={"manifest": f.id},
    )
    lines = []
    for seat_id, case_id, person_id in seats:
        person = gw.get(Person, person_id)
        name = f"{person.family_name or ''}, {person.given_name or ''}".strip(", ")
        lines.append(
            ManifestLine(seat_id, case_id, person_id, name, passenger_checks(gw, case_id, f, now))
        )
    return lines


def depart(gw: Gateway, flight_id: str, departed_at: datetime | None = None) -> dict[str, Any]:
    """The flight left: re-check everyone, take off who fails, verify the others' departure."""
    departed_at = departed_at or utcnow()
    f = flight(gw, flight_id)
    if f.status != "planned":
        raise ValidationFailed(f"flight {f.id} is {f.status}")
    lines = manifest(gw, f.id, departed_at)
    dropped: dict[str, str] = {}
    flown: list[str] = []
    for line in lines:
        if not line.cleared:
            dropped[line.case_id] = "; ".join(
                f"{c.guard}: {c.message}" for c in line.checks if not c.ok
            )
            _off_manifest(gw, line, dropped[line.case_id], departed_at)
            continue
        departure = _departure(gw, f, line, departed_at)
        service.perform(
            gw,
            line.case_id,
            "removal_verified",
            {
                "departure_id": departure.id,
                "departed_at": departed_at.isoformat(),
                "port": f.origin,
            },
            now=departed_at,
        )
        flown.append(line.case_id)
    f.status, f.departed_at = "departed", departed_at
    gw.session.flush()
    gw._audit(
        FlightChanged(
            object_type="removal_flights",
            object_ids=[f.id],
            change="departed",
            passengers=len(flown),
            dropped=dropped,
        )
    )
    return {"flight": f.id, "removed": flown, "taken_off": dropped}


def _off_manifest(gw: Gateway, line: ManifestLine, reason: str, now: datetime) -> None:
    gw.execute(
        update(FlightSeat)
        .where(FlightSeat.id == line.seat_id)
        .values(status="removed", left_at=now, reason=reason),
        FlightSeat,
        params={"seat": line.seat_id},
    )


def _departure(gw: Gateway, f: RemovalFlight, line: ManifestLine, at: datetime) -> Departure:
    """The departure record handed to departure verification (verified by the manifest)."""
    departure = Departure(
        id=content_id("dep", f.id, line.case_id),
        event_id=content_id("evt", "removal-flight", f.id, line.case_id),
        person_id=line.person_id,
        channel="removal",
        occurred_at=at,
        reported_at=at,
        port=f.origin,
        carrier=f.carrier,
        flight=f.flight_no,
        match_band="verified",
        match_probability=1.0,
        explanation={"basis": "removal flight manifest", "flight": f.id, "case": line.case_id},
        payload={"flight": f.id, "seat": line.seat_id},
    )
    gw.add(departure)
    return departure
