"""The audit event of an overstay assessment (the reads and writes are audited by the gateway).

Declared beside the departures package, like :class:`~immigrationos.sources.retention.
RetentionPurged`: :func:`immigrationos.audit.events.all_event_classes` finds every subclass of
:class:`~immigrationos.audit.events.AuditEvent` once its module is imported, so no line in
``audit/events.py`` is needed. Counts only: no person, admission or nationality appears here.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from immigrationos.audit.events import AuditEvent


class OverstaysAssessed(AuditEvent):
    """Every in-scope admission's overstay outcome was assessed as of a date.

    ``written`` new assessments, ``superseded`` earlier ones they revise, ``withdrawn`` ones
    whose admission left the scope (superseded with no successor); ``outcomes`` counts the
    figures now standing, ``exclusions`` the admissions outside the method and why.
    """

    action = "overstay.assessed"
    run_id: str
    as_of: date
    admissions: int
    written: int
    superseded: int
    withdrawn: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    exclusions: dict[str, int] = Field(default_factory=dict)
