"""The roles of ``shared/domain.md`` §1 and what each may do, as one declarative table.

Which purposes a role may declare, and whether it may see personal data at all, live here and
nowhere else; the gateway and the API's authorization dependency both read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from immigrationos.gateway.purposes import Purpose


class Role(StrEnum):
    """Every role a user can hold."""

    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    COUNSEL = "counsel"
    ANALYST = "analyst"
    PRIVACY_OFFICER = "privacy_officer"
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"
    SYSTEM = "system"


@dataclass(frozen=True)
class RoleSpec:
    """What a role is for, which purposes it may work under, and whether it reads people."""

    role: Role
    description: str
    purposes: frozenset[Purpose]
    reads_personal_data: bool


P = Purpose
ROLES: dict[Role, RoleSpec] = {
    spec.role: spec
    for spec in (
        RoleSpec(
            Role.OFFICER,
            "Works a caseload: reviews leads, records encounters, drafts documents, requests "
            "actions. Never acts without an approved action.",
            frozenset(
                {
                    P.CASE_PROCESSING,
                    P.ENFORCEMENT_PRIORITIZATION,
                    P.CRIMINAL_INVESTIGATION,
                    P.DEPARTURE_VERIFICATION,
                }
            ),
            True,
        ),
        RoleSpec(
            Role.SUPERVISOR,
            "Approves or rejects requested actions (two-person rule) and assigns caseloads. "
            "Never approves their own request. Adopts priority policies registered by others.",
            frozenset(
                {
                    P.CASE_PROCESSING,
                    P.ENFORCEMENT_PRIORITIZATION,
                    P.CRIMINAL_INVESTIGATION,
                    P.DEPARTURE_VERIFICATION,
                }
            ),
            True,
        ),
        RoleSpec(
            Role.COUNSEL,
            "Agency counsel: records, with a supervisor, the decision on a claim or indication "
            "of U.S. citizenship, and reviews legal documents. Requests no enforcement action.",
            frozenset({P.CASE_PROCESSING}),
            True,
        ),
        RoleSpec(
            Role.ANALYST,
            "Runs prioritization and what-if comparisons, reviews uncertain record matches. "
            "Takes no case actions.",
            frozenset(
                {
                    P.ENFORCEMENT_PRIORITIZATION,
                    P.IDENTITY_RESOLUTION,
                    P.DEPARTURE_VERIFICATION,
                    P.STATISTICS,
                }
            ),
            True,
        ),
        RoleSpec(
            Role.PRIVACY_OFFICER,
            "Registers sources and agreements, handles redress, sets retention. Reads case "
            "contents only as far as an agreement review or a redress request needs.",
            frozenset({P.REDRESS, P.DATA_INTEGRATION, P.OVERSIGHT_AUDIT}),
            True,
        ),
        RoleSpec(
            Role.AUDITOR,
            "Reads the audit log, verifies its integrity, reads aggregate oversight reports. "
            "Changes nothing and reads no individual's record.",
            frozenset({P.OVERSIGHT_AUDIT, P.STATISTICS}),
            False,
        ),
        RoleSpec(
            Role.ADMINISTRATOR,
            "Manages accounts and configuration. Reads no personal data (separation of duties).",
            frozenset({P.SYSTEM_ADMINISTRATION}),
            False,
        ),
        RoleSpec(
            Role.SYSTEM,
            "A service account for scheduled and batch work (ingest, resolution, the lifecycle "
            "tick, the departure consumer, audit verification). Cannot sign in interactively.",
            frozenset(
                {
                    P.DATA_INTEGRATION,
                    P.IDENTITY_RESOLUTION,
                    P.DEPARTURE_VERIFICATION,
                    P.CASE_PROCESSING,
                    P.ENFORCEMENT_PRIORITIZATION,
                    P.STATISTICS,
                    P.SYSTEM_ADMINISTRATION,
                    P.OVERSIGHT_AUDIT,
                }
            ),
            True,
        ),
    )
}
