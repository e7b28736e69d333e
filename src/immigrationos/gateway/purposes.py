"""The controlled vocabulary of purposes a read or write of personal data may declare.

Agreements permit purposes from this list; roles may work under some of them
(:mod:`immigrationos.accounts.roles`). A purpose not in this list cannot be declared.
"""

from __future__ import annotations

from enum import StrEnum


class Purpose(StrEnum):
    """Why data is being read or written. Every gateway call names one."""

    CASE_PROCESSING = "case-processing"
    ENFORCEMENT_PRIORITIZATION = "enforcement-prioritization"
    DEPARTURE_VERIFICATION = "departure-verification"
    CRIMINAL_INVESTIGATION = "criminal-investigation"
    REDRESS = "redress"
    OVERSIGHT_AUDIT = "oversight-audit"
    STATISTICS = "statistics"
    DATA_INTEGRATION = "data-integration"
    IDENTITY_RESOLUTION = "identity-resolution"
    SYSTEM_ADMINISTRATION = "system-administration"


PURPOSE_DESCRIPTIONS: dict[Purpose, str] = {
    Purpose.CASE_PROCESSING: "Working a named enforcement case through its lifecycle.",
    Purpose.ENFORCEMENT_PRIORITIZATION: "Scoring persons under a published priority policy.",
    Purpose.DEPARTURE_VERIFICATION: "Matching departure events and recording departures.",
    Purpose.CRIMINAL_INVESTIGATION: "A named non-tax criminal investigation (tax data rules).",
    Purpose.REDRESS: "Handling a person's correction or redress request.",
    Purpose.OVERSIGHT_AUDIT: "Inspecting the system's use and integrity.",
    Purpose.STATISTICS: "Aggregate statistics with no decision about an individual.",
    Purpose.DATA_INTEGRATION: "Ingesting and validating records from a source system.",
    Purpose.IDENTITY_RESOLUTION: "Deciding which records describe the same person.",
    Purpose.SYSTEM_ADMINISTRATION: "Managing accounts and configuration (no personal data).",
}
