"""Every auditable event is a typed class with a docstring, emitted through :func:`emit`.

An event says *what* happened (its class and fields); the :class:`~immigrationos.gateway.
context.AccessContext` says *who*, in which role, for which purpose and why. Personal values
never go into an event: only object ids, field names, search parameters and counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class AuditEvent(BaseModel):
    """Base of every audit event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The ``action`` name stored in the audit log; unique per class.
    action: ClassVar[str]
    #: ``ok`` for something done, ``refused`` for something the rules stopped.
    outcome: ClassVar[str] = "ok"

    object_type: str | None = None
    object_ids: list[str] = Field(default_factory=list)

    def details(self) -> dict[str, Any]:
        """Event-specific fields, stored in the entry's ``details``."""
        return self.model_dump(
            mode="json",
            exclude={"object_type", "object_ids", "search_params", "result_count"},
        )


class RecordRead(AuditEvent):
    """Personal data was read: one or more rows of one table, by id."""

    action = "record.read"


class RecordsSearched(AuditEvent):
    """Personal data was searched; the parameters and the number of results are kept."""

    action = "records.searched"
    search_params: dict[str, Any] = Field(default_factory=dict)
    result_count: int = 0
    #: Sources left out of the search because the purpose may not read them, with why.
    withheld_sources: dict[str, str] = Field(default_factory=dict)


class RecordCreated(AuditEvent):
    """Rows holding personal data were created."""

    action = "record.created"
    count: int = 1


class RecordUpdated(AuditEvent):
    """Rows holding personal data were changed; the changed field names are kept (not values).

    A bulk change has no id list: ``criteria`` says which rows, ``count`` how many.
    """

    action = "record.updated"
    fields: list[str] = Field(default_factory=list)
    count: int = 1
    criteria: dict[str, Any] = Field(default_factory=dict)


class RecordDeleted(AuditEvent):
    """Rows holding personal data were deleted (by ids, or by ``criteria`` in bulk)."""

    action = "record.deleted"
    count: int = 1
    criteria: dict[str, Any] = Field(default_factory=dict)


class RecordsDerived(AuditEvent):
    """Facts were derived in bulk from an ingest batch's records (ids: record id + suffix)."""

    action = "records.derived"
    count: int
    batch_id: str


class AccessDenied(AuditEvent):
    """The rules refused an operation; the reason names the rule."""

    action = "access.refused"
    outcome = "refused"
    operation: str
    reason: str


class UserCreated(AuditEvent):
    """An account was created (administration; no personal data of the public)."""

    action = "user.created"
    username: str
    role: str


class SignedIn(AuditEvent):
    """A user authenticated."""

    action = "auth.signed_in"
    method: str = "password"


class SignInFailed(AuditEvent):
    """An authentication attempt failed (the attempted username is kept)."""

    action = "auth.failed"
    outcome = "refused"
    username: str


class SignedOut(AuditEvent):
    """A user signed out, or their session ended by idle timeout (``reason``)."""

    action = "auth.signed_out"
    reason: str = "signed out"


class SignInThrottled(AuditEvent):
    """Too many sign-in attempts came from one client; the attempt was not even checked."""

    action = "auth.throttled"
    outcome = "refused"
    username: str


class PurposeChosen(AuditEvent):
    """A signed-in user declared the purpose (and case, and reason) of their work."""

    action = "auth.purpose_chosen"
    purpose: str
    case_ref: str | None = None
    justification: str | None = None


class ApiTokenCreated(AuditEvent):
    """An API token was created for a machine client (the token itself is never kept)."""

    action = "auth.token_created"
    name: str
    expires_at: str


class ApiTokenRevoked(AuditEvent):
    """An API token was revoked."""

    action = "auth.token_revoked"


class UserChanged(AuditEvent):
    """An account was changed by an administrator (the changed field names are kept)."""

    action = "user.changed"
    fields: list[str]


class SourceRegistered(AuditEvent):
    """A source and its data-sharing agreement were registered or revised."""

    action = "source.registered"
    agreement_version: int


class BatchIngested(AuditEvent):
    """An ingest batch finished, with its reconciled counts."""

    action = "batch.ingested"
    read: int
    loaded: int
    unchanged: int
    quarantined: int


class AuditVerified(AuditEvent):
    """Someone verified the audit chain; the result is itself on the record."""

    action = "audit.verified"
    ok: bool
    checked: int
    first_broken_seq: int | None = None


class CheckpointWritten(AuditEvent):
    """A signed checkpoint of the chain was written."""

    action = "audit.checkpoint"
    entries: int
    head_hash: str


class DemoLoaded(AuditEvent):
    """The demo world was generated and loaded."""

    action = "demo.loaded"
    persons: int
    seed: int


class ModelTrained(AuditEvent):
    """An entity-resolution model was trained (EM plus review labels) and stored."""

    action = "resolution.model_trained"
    model_id: str
    records: int
    labels: int = 0


class ResolutionRan(AuditEvent):
    """A resolution run built a new version of the person index."""

    action = "resolution.run"
    run_id: str
    model_id: str
    backend: str
    records: int
    persons: int
    created: int = 0
    merged: int = 0
    split: int = 0
    reviews_queued: int = 0
    withheld_sources: dict[str, str] = Field(default_factory=dict)


class MatchReviewed(AuditEvent):
    """A person decided whether two records are the same person (match, non-match, unsure)."""

    action = "resolution.review_decided"
    decision: str


class RecordLinked(AuditEvent):
    """A new record was linked to the person index incrementally (or queued, or left alone)."""

    action = "resolution.record_linked"
    band: str
    person_id: str | None = None
    match_weight: float | None = None


class PersonEventReviewed(AuditEvent):
    """Someone reviewed a merge or split of the person index; case holds it caused lifted."""

    action = "resolution.event_reviewed"
    cases_released: int = 0


class CaseOpened(AuditEvent):
    """A case was opened for a person (from a lead or a loaded court history)."""

    action = "case.opened"
    person_id: str
    origin: str


class CaseStepApplied(AuditEvent):
    """A lifecycle transition was applied to a case, with the guards as they stood."""

    action = "case.step_applied"
    transition: str
    kind: str
    from_state: str
    to_state: str
    custody: str | None = None
    request_id: str | None = None
    checks_passed: list[str] = Field(default_factory=list)


class CaseStepBlocked(AuditEvent):
    """A step was refused because a guard blocks it; the guards' messages are kept."""

    action = "case.step_blocked"
    outcome = "refused"
    transition: str
    stage: str
    blocked_by: dict[str, str] = Field(default_factory=dict)


class ActionRequested(AuditEvent):
    """Someone asked for an action that needs a second person's approval."""

    action = "case.action_requested"
    transition: str
    request_id: str


class ActionDecided(AuditEvent):
    """A different person approved or refused a requested action."""

    action = "case.action_decided"
    transition: str
    request_id: str
    decision: str


class DeadlineApplied(AuditEvent):
    """The scheduler applied a deadline that fell due (exactly once)."""

    action = "case.deadline_applied"
    deadline_id: str
    kind: str


class DocumentRendered(AuditEvent):
    """A legal document version was rendered and stored with its hash."""

    action = "case.document_rendered"
    kind: str
    status: str
    template_version: str
    sha256: str


class LifecycleTicked(AuditEvent):
    """A scheduler pass: deadlines applied, requests and approvals expired."""

    action = "lifecycle.tick"
    deadlines_applied: int = 0
    requests_expired: int = 0
    steps_applied: int = 0


class OperationDecided(AuditEvent):
    """An enforcement operation was approved, refused or executed; targets re-checked."""

    action = "case.operation_decided"
    decision: str
    targets: int = 0
    dropped: dict[str, str] = Field(default_factory=dict)


class FlightChanged(AuditEvent):
    """A removal flight was planned, changed, or departed (its manifest re-checked)."""

    action = "removal.flight_changed"
    change: str
    passengers: int = 0
    dropped: dict[str, str] = Field(default_factory=dict)


class PolicyRegistered(AuditEvent):
    """A priority policy version was registered (validated; not yet in force)."""

    action = "priority.policy_registered"
    policy_id: str
    sha256: str


class PolicyAdopted(AuditEvent):
    """A second person adopted a registered policy version; older versions were retired."""

    action = "priority.policy_adopted"
    policy_id: str
    retired: list[str] = Field(default_factory=list)


class PrioritiesScored(AuditEvent):
    """A policy was run over the person index; one score per person was stored."""

    action = "priority.scored"
    run_id: str
    policy_id: str
    index_version: str | None = None
    count: int


class PriorityOverridden(AuditEvent):
    """A person raised or lowered someone's tier, with a justification (counted for oversight)."""

    action = "priority.overridden"
    override_id: str
    direction: str
    from_tier: str
    to_tier: str


class DeparturesProcessed(AuditEvent):
    """A batch of departure events was matched and applied (with the inbox, exactly once)."""

    action = "departure.processed"
    transport: str
    events: int
    duplicates: int = 0
    bands: dict[str, int] = Field(default_factory=dict)
    steps: dict[str, int] = Field(default_factory=dict)


class DepartureDeadLettered(AuditEvent):
    """An event could not be read or validated; kept in the dead-letter store with why."""

    action = "departure.dead_lettered"
    transport: str
    reason: str


class DepartureReviewed(AuditEvent):
    """A person decided a departure the matcher left for review (same person or not)."""

    action = "departure.reviewed"
    decision: str
    person_id: str | None = None
    steps: dict[str, int] = Field(default_factory=dict)


# --- issue 9: audit export (helper A adds events here) ---


class AuditExported(AuditEvent):
    """The audit log (all of it, or from ``first_seq``) was exported for an outside auditor.

    Recorded before the files are written, with the range, the signed head and the anchor (the
    hash of the entry before ``first_seq``), so a copy that leaves the system is on the record.
    """

    action = "audit.exported"
    first_seq: int
    last_seq: int
    entries: int
    head_hash: str
    anchor_hash: str
    checkpoints: int
    destination: str


# --- issue 9: transparency report (helper B adds events here) ---


class TransparencyReportGenerated(AuditEvent):
    """The public transparency report was computed for a period (aggregates only; small
    cells withheld). Keeps the period, the tables, and how many cells each withheld: never
    a count that was withheld."""

    action = "transparency.generated"
    period: str
    threshold: int
    tables: list[str] = Field(default_factory=list)
    withheld: dict[str, int] = Field(default_factory=dict)
    formats: list[str] = Field(default_factory=list)


# --- issue 9: access anomalies (helper C adds events here) ---


class AnomalyScanRan(AuditEvent):
    """The access-anomaly detector read the audit log over a window (and the caseloads behind
    it, through the gateway) and raised alerts; ``existing`` were already on file."""

    action = "anomaly.scan"
    since: str
    until: str
    rules_sha256: str
    raised: int = 0
    existing: int = 0


class AccessAlertRaised(AuditEvent):
    """An access anomaly was raised for auditors: rule, user, day, measured value, threshold."""

    action = "anomaly.alert_raised"
    rule: str
    user_id: str
    day: str
    measured: float
    threshold: float


class AccessAlertReviewed(AuditEvent):
    """An auditor confirmed or dismissed an access alert (the note is kept on the alert)."""

    action = "anomaly.alert_reviewed"
    decision: str
    previous: str


class ActivitySimulated(AuditEvent):
    """Synthetic staff activity was written to the log (demo): its days, seed and the range of
    audit entries it wrote, so no one mistakes it for real use."""

    action = "anomaly.activity_simulated"
    days: int
    seed: int
    users: int
    first_seq: int
    last_seq: int
    planted: int


# --- issue 9: redress (helper D adds events here) ---


class RedressFiled(AuditEvent):
    """A representative filed a correction request (no account: the actor is anonymous).

    Only the kinds of fact disputed and how the request came in are kept, never the values.
    """

    action = "redress.filed"
    channel: str
    kinds: list[str] = Field(default_factory=list)


class RedressStatusChecked(AuditEvent):
    """A requester looked at their request's status or letter with the tracking code."""

    action = "redress.status_checked"
    what: str = "status"


class RedressStatusRefused(AuditEvent):
    """A status check named an unknown reference or a wrong tracking code."""

    action = "redress.status_refused"
    outcome = "refused"
    reason: str


class RedressLinked(AuditEvent):
    """A privacy officer linked a request to a person of the index."""

    action = "redress.linked"
    person_id: str


class FactsDisputed(AuditEvent):
    """Facts of a person's record were marked disputed: left out of prioritization and
    automated matching until the request is decided."""

    action = "redress.facts_disputed"
    person_id: str
    kinds: list[str] = Field(default_factory=list)


class RedressDecided(AuditEvent):
    """A privacy officer decided a request with reasons; ``plan`` is what the decision
    changes (ids and counts, no values), ``applied`` what was done."""

    action = "redress.decided"
    decision: str
    plan: dict[str, Any] = Field(default_factory=dict)
    applied: dict[str, Any] = Field(default_factory=dict)


class RedressLetterIssued(AuditEvent):
    """A letter to the requester was generated and stored (a new version each time)."""

    action = "redress.letter_issued"
    version: int
    sha256: str


# --- issue 9: dossier and oversight report (events here) ---


class DossierGenerated(AuditEvent):
    """The system dossier was generated (configuration and aggregates only, no personal data).

    ``sha256`` identifies the dossier's JSON; the chain's state at generation is kept too.
    """

    action = "report.dossier_generated"
    formats: list[str]
    sha256: str
    chain_ok: bool
    entries_checked: int


class OversightReportGenerated(AuditEvent):
    """The oversight report was generated (counts only); the format and two totals are kept."""

    action = "report.oversight_generated"
    format: str
    audit_entries: int
    enforcement_actions: int


def all_event_classes() -> list[type[AuditEvent]]:
    """Every concrete event class (for documentation and the docs test)."""
    found: list[type[AuditEvent]] = []
    pending = list(AuditEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.action)
