"""History facts: admissions, addresses, encounters, convictions, benefits and the court.

Each row keeps its provenance (the source record it came from). ``person_id`` is empty until
entity resolution attaches the fact to a person.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.store.base import Base, PersonalData, Provenance


def _person_fk() -> Mapped[str | None]:
    return mapped_column(String(40), ForeignKey("persons.id"), index=True)


class Admission(PersonalData, Provenance, Base):
    """One admission (I-94): an entry with its class and authorized stay."""

    __tablename__ = "admissions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = _person_fk()
    admission_no: Mapped[str] = mapped_column(String(16), index=True)
    class_of_admission: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str | None] = mapped_column(String(8))
    port: Mapped[str | None] = mapped_column(String(64))
    admitted_on: Mapped[date] = mapped_column()
    admitted_until: Mapped[date | None] = mapped_column()


class Address(PersonalData, Provenance, Base):
    """An address seen for a person. ``placeholder`` marks values never usable as evidence."""

    __tablename__ = "addresses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = _person_fk()
    line: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2))
    postcode: Mapped[str | None] = mapped_column(String(10))
    observed_on: Mapped[date | None] = mapped_column()
    placeholder: Mapped[bool] = mapped_column(default=False)
    flag_reason: Mapped[str | None] = mapped_column(String(200))


class Encounter(PersonalData, Provenance, Base):
    """An enforcement encounter (I-213-like record) at a field office."""

    __tablename__ = "encounters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = _person_fk()
    encounter_no: Mapped[str] = mapped_column(String(32), index=True)
    occurred_on: Mapped[date] = mapped_column()
    office: Mapped[str] = mapped_column(String(64))
    disposition: Mapped[str | None] = mapped_column(String(64))


class Conviction(PersonalData, Provenance, Base):
    """A criminal court disposition: offense category and level, date and sentence."""

    __tablename__ = "convictions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = _person_fk()
    disposition_id: Mapped[str] = mapped_column(String(32), index=True)
    offense_category: Mapped[str] = mapped_column(String(48))
    offense_level: Mapped[str] = mapped_column(String(24))
    conviction_date: Mapped[date] = mapped_column()
    sentence_days: Mapped[int | None] = mapped_column(Integer)
    jurisdiction: Mapped[str | None] = mapped_column(String(8))


class BenefitApplication(PersonalData, Provenance, Base):
    """An application for a benefit or relief (I-589, I-821, I-821D, I-485, I-918, …)."""

    __tablename__ = "benefit_applications"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = _person_fk()
    receipt_no: Mapped[str] = mapped_column(String(16), index=True)
    form: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    filed_on: Mapped[date] = mapped_column()
    decided_on: Mapped[date | None] = mapped_column()
    valid_until: Mapped[date | None] = mapped_column()


class CourtCase(PersonalData, Provenance, Base):
    """An immigration court case; one person may have several."""

    __tablename__ = "court_cases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = _person_fk()
    case_no: Mapped[str] = mapped_column(String(32), index=True)
    charge: Mapped[str | None] = mapped_column(String(64))
    nta_served_on: Mapped[date | None] = mapped_column()


class Proceeding(PersonalData, Provenance, Base):
    """A proceeding within a court case (240 removal, expedited removal, reinstatement)."""

    __tablename__ = "proceedings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    court_case_id: Mapped[str] = mapped_column(String(64), ForeignKey("court_cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    opened_on: Mapped[date | None] = mapped_column()
    closed_on: Mapped[date | None] = mapped_column()


class Hearing(PersonalData, Provenance, Base):
    """A scheduled hearing (master calendar or individual/merits)."""

    __tablename__ = "hearings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    proceeding_id: Mapped[str] = mapped_column(String(64), ForeignKey("proceedings.id"), index=True)
    scheduled_at: Mapped[datetime] = mapped_column()
    hearing_type: Mapped[str] = mapped_column(String(16))
    location: Mapped[str | None] = mapped_column(String(200))


class CourtDecision(PersonalData, Provenance, Base):
    """A judge's decision in a proceeding, with what it implies (deadline, protected country)."""

    __tablename__ = "court_decisions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    proceeding_id: Mapped[str] = mapped_column(String(64), ForeignKey("proceedings.id"), index=True)
    decision_type: Mapped[str] = mapped_column(String(32))
    decided_on: Mapped[date] = mapped_column()
    vd_deadline: Mapped[date | None] = mapped_column()
    protected_country: Mapped[str | None] = mapped_column(String(3))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Appeal(PersonalData, Provenance, Base):
    """An appeal of a decision to the board, pending or decided."""

    __tablename__ = "appeals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("court_decisions.id"), index=True
    )
    filed_on: Mapped[date] = mapped_column()
    decided_on: Mapped[date | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
