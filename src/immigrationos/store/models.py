"""Every mapped model, imported in data-flow order so metadata and migrations see them all.

sources → records → persons → facts → priorities and cases → departures → oversight;
plus accounts and audit.
"""

from immigrationos.accounts.models import ApiToken, RoleRow, User, WebSession
from immigrationos.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from immigrationos.departures.models import DeadLetter, Departure, InboxEntry, OverstayAssessment
from immigrationos.facts.models import (
    Address,
    Admission,
    Appeal,
    BenefitApplication,
    Conviction,
    CourtCase,
    CourtDecision,
    Encounter,
    Hearing,
    Proceeding,
)
from immigrationos.lifecycle.models import (
    ActionRequest,
    Approval,
    CaseCondition,
    CaseDeadline,
    CaseEvent,
    Document,
    EnforcementCase,
    EnforcementOperation,
    FlightSeat,
    RemovalFlight,
    TravelDocument,
)
from immigrationos.oversight.models import (
    AccessAlert,
    DisputedFact,
    RedressLetter,
    RedressRequest,
)
from immigrationos.persons.models import (
    CitizenshipChange,
    Identifier,
    Person,
    RecordLink,
    StatusEpisode,
)
from immigrationos.priority.models import (
    PriorityOverride,
    PriorityPolicy,
    PriorityRun,
    PriorityScore,
)
from immigrationos.resolution.models import (
    MatchReview,
    PersonEvent,
    ResolutionModel,
    ResolutionRun,
)
from immigrationos.sources.models import (
    DataSharingAgreement,
    DisclosureRequest,
    IngestBatch,
    QuarantinedRow,
    Source,
    SourceRecord,
    Tombstone,
)
from immigrationos.store.base import Base

__all__ = [
    "AccessAlert",
    "ActionRequest",
    "Address",
    "Admission",
    "ApiToken",
    "Appeal",
    "Approval",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "Base",
    "BenefitApplication",
    "CaseCondition",
    "CaseDeadline",
    "CaseEvent",
    "CitizenshipChange",
    "Conviction",
    "CourtCase",
    "CourtDecision",
    "DataSharingAgreement",
    "DeadLetter",
    "Departure",
    "DisclosureRequest",
    "DisputedFact",
    "Document",
    "Encounter",
    "EnforcementCase",
    "EnforcementOperation",
    "FlightSeat",
    "Hearing",
    "Identifier",
    "InboxEntry",
    "IngestBatch",
    "MatchReview",
    "OverstayAssessment",
    "Person",
    "PersonEvent",
    "PriorityOverride",
    "PriorityPolicy",
    "PriorityRun",
    "PriorityScore",
    "Proceeding",
    "QuarantinedRow",
    "RecordLink",
    "RedressLetter",
    "RedressRequest",
    "RemovalFlight",
    "ResolutionModel",
    "ResolutionRun",
    "RoleRow",
    "Source",
    "SourceRecord",
    "StatusEpisode",
    "Tombstone",
    "TravelDocument",
    "User",
    "WebSession",
]  # fmt: skip
