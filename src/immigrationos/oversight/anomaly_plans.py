"""The SQL plans of the access-anomaly detector: inspectable before they run, portable across
SQLite and PostgreSQL (they differ only in how an epoch hour is computed), and neither loops over
audit entries in Python, so a log of millions of rows costs two indexed scans of the window.

1. :func:`activity_query`: one aggregate over the window (and the volume baseline before it):
   person reads and refusals per user per UTC hour.
2. :func:`outside_query`: the person reads whose person is in none of the reader's scope
   (cases assigned to them, cases of their office, leads of their office in a priority run),
   grouped per user, hour and person. It joins the audit log with ``cases`` and
   ``priority_scores``, which are personal data, so the caller runs it through the gateway
   (see ``anomalies.plan``), never with a bare session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    or_,
    select,
)

from immigrationos.audit.models import AuditEntry
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.oversight.anomaly_rules import Rules
from immigrationos.priority.models import PriorityScore


def epoch_hour(dialect: str) -> ColumnElement[Any]:
    """Hours since 1970 (UTC) of an entry's time: the one expression that differs by backend."""
    if dialect == "sqlite":  # integer division of the epoch second
        return cast(func.strftime("%s", AuditEntry.at), Integer) / 3600
    return cast(func.floor(extract("epoch", AuditEntry.at) / 3600), BigInteger)


def person_read(rules: Rules) -> ColumnElement[bool]:
    """The audit entries that count as reading a person (successful reads, per the rules)."""
    return and_(
        AuditEntry.action.in_(rules.person_reads.actions),
        AuditEntry.object_type.in_(rules.person_reads.object_types),
        AuditEntry.outcome == "ok",
    )


def refusal(rules: Rules) -> ColumnElement[bool]:
    """The audit entries that count as a refused access."""
    return AuditEntry.action.in_(rules.rules.purpose_refusals.actions)


def activity_query(rules: Rules, dialect: str, start: datetime, until: datetime) -> Select:
    """Person reads and refusals per user per UTC hour in ``[start, until)``."""
    hour = epoch_hour(dialect).label("hour")
    reads, refused = person_read(rules), refusal(rules)
    return (
        select(
            AuditEntry.actor_id,
            AuditEntry.actor_name,
            AuditEntry.actor_role,
            AuditEntry.actor_office,
            hour,
            func.sum(case((reads, 1), else_=0)).label("reads"),
            func.sum(case((refused, 1), else_=0)).label("refusals"),
        )
        .where(
            AuditEntry.at >= start,
            AuditEntry.at < until,
            AuditEntry.actor_id.is_not(None),
            or_(reads, refused),
        )
        .group_by(
            AuditEntry.actor_id,
            AuditEntry.actor_name,
            AuditEntry.actor_role,
            AuditEntry.actor_office,
            hour,
        )
    )


def outside_query(rules: Rules, dialect: str, start: datetime, until: datetime) -> Select:
    """Person reads outside the reader's caseload and office, per user, hour and person.

    In scope: a case assigned to the reader, a case of the reader's office (as the audit
    entry recorded it), or a lead of that office in any priority run (the office worklist).
    """
    person = AuditEntry.object_ids[0].as_string()
    case_in_scope = exists().where(
        EnforcementCase.person_id == person,
        or_(
            EnforcementCase.assigned_to == AuditEntry.actor_id,
            EnforcementCase.office == AuditEntry.actor_office,
        ),
    )
    lead_in_scope = exists().where(
        PriorityScore.person_id == person,
        PriorityScore.office == AuditEntry.actor_office,
        PriorityScore.lead.is_(True),
    )
    hour = epoch_hour(dialect).label("hour")
    return (
        select(
            AuditEntry.actor_id,
            hour,
            person.label("person"),
            func.count().label("reads"),
            func.aggregate_strings(cast(AuditEntry.seq, String), ",").label("seqs"),
        )
        .where(
            AuditEntry.at >= start,
            AuditEntry.at < until,
            person_read(rules),
            AuditEntry.actor_role.in_(sorted(rules.roles_of("outside_caseload"))),
            AuditEntry.actor_office.is_not(None),
            ~case_in_scope,
            ~lead_in_scope,
        )
        .group_by(AuditEntry.actor_id, hour, person)
    )
