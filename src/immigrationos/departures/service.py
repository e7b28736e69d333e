"""Processing departure events: read, match, record, and move cases, exactly once.

Every transport (the replay of a stream file, the HTTP endpoint, NATS JetStream) hands
batches of raw events to :meth:`Processor.process`, which in **one transaction**:

1. stores what cannot be read in the dead-letter store, with the reason and the bytes;
2. skips events already in the inbox (or loaded earlier in a batch ingest): duplicates;
3. matches the others in memory (:mod:`.matcher`) and writes, for each, the source record
   (the departures source's agreement governs it like any ingested row), the departure with
   its band and explanation, a record link when verified, and its inbox entry;
4. applies what a verified departure means for the person's open cases, through the
   lifecycle engine's system steps and guards: ``REMOVAL_SCHEDULED → REMOVED``,
   ``VD_GRANTED → DEPARTED_VOLUNTARILY`` (on time or late), any other open case closed as
   departed; a case opened after the departure (a later return) is left alone, with why;
5. links a self-reported departure to the manifest or land exit that confirms it (which
   carries the report time); a self-report alone moves nothing.

A transport acknowledges a batch only after :meth:`process` returned, so a crash anywhere
before the commit redelivers the batch and the inbox makes the second delivery a no-op.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from immigrationos.audit.chain import emit
from immigrationos.audit.events import (
    DepartureDeadLettered,
    DepartureReviewed,
    DeparturesProcessed,
)
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.core.heap import settle_heap
from immigrationos.core.ids import content_id, sha256_hex
from immigrationos.departures.events import Malformed, read_event
from immigrationos.departures.matcher import Event, Matcher, MatchResult
from immigrationos.departures.models import DeadLetter, Departure, InboxEntry
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import service as lifecycle
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase
from immigrationos.persons.models import RecordLink
from immigrationos.runtime import Runtime
from immigrationos.sources.models import IngestBatch, SourceRecord
from immigrationos.sources.plan import record_id, serialised
from immigrationos.sources.registry import agreement_in_force
from immigrationos.store import bulk

SOURCE = "departures"
#: A manifest or exit confirms a self-report of the same person that occurred this long
#: before it (the report comes first) or up to a day after.
CONFIRM_BEFORE = timedelta(days=5)
CONFIRM_AFTER = timedelta(days=1)
#: How often a running processor checks whether its in-memory person index is current.
REFRESH_SECONDS = 60.0
#: A service's processor moves the records its matcher added out of the garbage collector
#: after this many: about 20 objects each (the record, its token lists and sets, its block
#: entries), which every full collection would walk again, more as they accumulate (14,000
#: records after 75,000 events at 1M persons: 0.2 s a collection). Settling 2,000 walks
#: about 40,000 objects once (~30 ms).
SETTLE_AFTER = 2_000
#: Events a transport hands to :meth:`Processor.process` at most, in one transaction. A
#: transport takes what has arrived up to this many, so under a light load batches are small
#: and each event waits only for its own; a backlog is worked off in full batches, where
#: part of the cost is per batch (the commit writes each index page a batch touched once,
#: however many of its rows went there; the de-duplication and confirmation reads are one
#: statement each): at 1M persons, batches of 1,024 applied about 15-25 % more events a
#: second than batches of 256 (docs/benchmarks-departures.md).
BATCH = 1024
STEP_FOR_STATE = {
    "REMOVAL_SCHEDULED": "removal_verified",
    "VD_GRANTED": "voluntary_departure_verified",
}

Status = Literal["applied", "duplicate", "dead-letter"]


@dataclass(frozen=True)
class Received:
    """One raw event as a transport received it; ``sent_at`` (publication time, when the
    transport knows it) is where the matching lag is measured from."""

    raw: bytes
    received_at: datetime
    sent_at: datetime | None = None


@dataclass
class Outcome:
    """What processing one event did."""

    event_id: str | None
    status: Status
    band: str | None = None
    person_id: str | None = None
    departure_id: str | None = None
    effects: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "status": self.status,
            "band": self.band,
            "person_id": self.person_id,
            "departure_id": self.departure_id,
            "effects": self.effects,
            "reason": self.reason,
        }


@dataclass
class _Matched:
    """A readable event's match, made before the batch's transaction."""

    record_id: str
    departure_id: str
    payload: bulk.RawJSON
    """The event as its source record stores it (JSON text), also the departure's payload."""
    digest: str
    match: MatchResult


@dataclass
class _Pending(_Matched):
    """A new event of the batch, matched, waiting to be written."""

    item: Received
    event: Event
    outcome: Outcome


def _read(item: Received) -> Event | Malformed:
    """The event, or why it cannot be read."""
    try:
        return read_event(item.raw)
    except Malformed as problem:
        # Kept as a fresh error without traceback or cause: their tracebacks hold this
        # frame, whose caller holds the batch: a cycle that kept the whole batch (events,
        # matches, rows) alive until a full garbage collection.
        return Malformed(problem.reason, problem.event_id)


def received(raw: bytes | str | dict[str, Any], sent_at: datetime | None = None) -> Received:
    """Wrap one event (bytes, text or a dict) as received now."""
    if isinstance(raw, dict):
        raw = orjson.dumps(raw)
    elif isinstance(raw, str):
        raw = raw.encode()
    return Received(raw, utcnow(), sent_at)


class Processor:
    """Matches and applies departure events for one transport (not thread-safe)."""

    def __init__(
        self,
        runtime: Runtime,
        transport: str,
        matcher: Matcher | None = None,
        *,
        long_lived: bool = False,
    ) -> None:
        self.runtime = runtime
        self.transport = transport
        self.matcher = matcher or build_matcher(runtime)
        self.batch_id: str | None = None
        self.checked = time.monotonic()
        """When the matcher was last checked against the store (:meth:`keep_current`)."""
        self.long_lived = long_lived
        """The processor of a service (a consumer, the API): its matcher is kept out of the
        garbage collector's scans (:func:`settle_heap`), when built and when rebuilt, and
        what it adds to the matcher every :data:`SETTLE_AFTER` records."""
        self.settled = len(self.matcher.index)
        """The matcher's records when its heap was last settled."""
        if long_lived:
            self.serve()

    def serve(self, *, settled: bool = False) -> None:
        """From now on, a service's processor: its heap settled (after any warm-up, so that
        what that loaded is frozen with the index; ``settled``: it was already, as in a
        worker process forked after it) and, on SQLite, the store's log checkpointed in the
        background (:meth:`Runtime.checkpoint_in_background`)."""
        self.long_lived = True
        if not settled:
            self.settle()
        self.runtime.checkpoint_in_background()

    def settle(self, *, added_only: bool = False) -> None:
        """:func:`settle_heap`; with ``added_only``, only what came since the last time (the
        records the matcher added: a collection of what is not frozen yet, then a freeze)."""
        if added_only:
            gc.collect()
            gc.freeze()
        else:
            settle_heap()
        self.settled = len(self.matcher.index)

    # -- the batch ------------------------------------------------------------------------

    def keep_current(self, now: float | None = None) -> str | None:
        """At most every :data:`REFRESH_SECONDS`: rebuild the matcher after a full resolution
        run (a new person-index version), else add records the store linked meanwhile.
        Returns what was done, if anything."""
        now = time.monotonic() if now is None else now
        if now - self.checked < REFRESH_SECONDS:
            return None
        self.checked = now
        ctx = system_context(Purpose.IDENTITY_RESOLUTION, "departure matcher: keep current")
        with unit_of_work(self.runtime.sessions, ctx) as gw:
            if self.matcher.stale(gw):
                self.matcher = Matcher.build(gw)
                if self.long_lived:
                    self.settle()
                return "rebuilt"
            added = self.matcher.refresh(gw)
        return f"added {added}" if added else None

    def process(self, batch: list[Received]) -> list[Outcome]:
        """Process a batch in one transaction; returns an outcome per event, in order.

        The events are read and matched before the transaction begins: matching needs only
        the in-memory index, and on SQLite a transaction holds the store's write lock from
        its start, which other writers (another consumer, the API) would wait on.
        """
        if not batch:
            return []
        self.keep_current()
        read = [_read(item) for item in batch]
        matched = self._match([e for e in read if not isinstance(e, Malformed)])
        try:
            outcomes, pending = self._transaction(batch, read, matched)
        except IntegrityError:
            if len(batch) == 1:
                # Another consumer committed the same event first: its inbox entry wins.
                outcomes, pending = self._transaction(batch, read, matched)
            else:
                return [o for item in batch for o in self.process([item])]
        # A departure verified by its document adds nothing the index lacks; one verified
        # otherwise (a renewed passport, say) is added, so the next one finds it by document.
        self.matcher.add_many(
            [
                (p.record_id, p.event, p.outcome.person_id, p.match.row)
                for p in pending
                if p.outcome.band == "verified"
                and p.outcome.person_id
                and p.match.explanation.get("path") != "document"
            ]
        )
        if self.long_lived and len(self.matcher.index) - self.settled >= SETTLE_AFTER:
            self.settle(added_only=True)
        return outcomes

    def _transaction(
        self, batch: list[Received], read: list[Event | Malformed], matched: list[_Matched]
    ) -> tuple[list[Outcome], list[_Pending]]:
        ctx = system_context(Purpose.DEPARTURE_VERIFICATION, f"departure events ({self.transport})")
        with unit_of_work(self.runtime.sessions, ctx) as gw:
            return self._write(gw, batch, read, matched)

    def _write(
        self,
        gw: Gateway,
        batch: list[Received],
        read: list[Event | Malformed],
        matched: list[_Matched],
    ) -> tuple[list[Outcome], list[_Pending]]:
        """Write a batch read and matched: dead letters, duplicates (found in the store, so
        inside the transaction), and the new events' records, effects and inbox entries."""
        ids = [e.event_id for e in read if not isinstance(e, Malformed)]
        seen = _already_processed(gw, ids)
        outcomes: list[Outcome] = []
        pending: list[_Pending] = []
        fresh = iter(matched)
        for item, event in zip(batch, read, strict=True):
            if isinstance(event, Malformed):
                outcomes.append(self._dead_letter(gw, item, event))
                continue
            m = next(fresh)
            if event.event_id in seen:
                outcomes.append(Outcome(event.event_id, "duplicate", reason=seen[event.event_id]))
            else:
                seen[event.event_id] = "earlier in the same batch"
                outcome = Outcome(event.event_id, "applied", m.match.band, m.match.person_id,
                                  m.departure_id)  # fmt: skip
                pending.append(_Pending(m.record_id, m.departure_id, m.payload, m.digest,
                                        m.match, item, event, outcome))  # fmt: skip
                outcomes.append(outcome)  # completed below, with its effects
        if pending:
            self._record(gw, pending)
            self._confirm(gw, pending)
            leaving = [
                p
                for p in pending
                if p.outcome.band == "verified" and p.event.channel != "self_report"
            ]
            effects = apply_departures(
                gw, [(str(p.outcome.person_id), p.departure_id, p.event) for p in leaving]
            )
            for p in leaving:
                p.outcome.effects += effects.get(p.departure_id, [])
            self._inbox(gw, pending)
        bands = Counter(str(p.outcome.band) for p in pending)
        steps = Counter(
            str(e.get("step")) for p in pending for e in p.outcome.effects if e.get("applied")
        )
        emit(
            gw.session,
            DeparturesProcessed(
                object_type="departures",
                object_ids=[p.departure_id for p in pending][:50],
                transport=self.transport,
                events=len(batch),
                duplicates=sum(o.status == "duplicate" for o in outcomes),
                bands=dict(bands),
                steps=dict(steps),
            ),
            gw.ctx,
        )
        return outcomes, pending

    def _dead_letter(self, gw: Gateway, item: Received, problem: Malformed) -> Outcome:
        text = item.raw.decode("utf-8", errors="replace")
        letter_id = content_id("dlq", sha256_hex(item.raw))
        if gw.session.get(DeadLetter, letter_id) is None:
            gw.session.add(
                DeadLetter(id=letter_id, event_id=problem.event_id, transport=self.transport,
                           received_at=item.received_at, reason=problem.reason, raw=text)
            )  # fmt: skip
            emit(
                gw.session,
                DepartureDeadLettered(
                    object_type="departure_dead_letters",
                    object_ids=[letter_id],
                    transport=self.transport,
                    reason=problem.reason[:500],
                ),
                gw.ctx,
            )
        return Outcome(problem.event_id, "dead-letter", reason=problem.reason)

    def _match(self, events: list[Event]) -> list[_Matched]:
        """Match the batch's readable events together (:meth:`Matcher.match_many`)."""
        keyed = []
        for event in events:
            payload, digest = serialised(
                event.model_dump(mode="json", exclude_none=True, exclude={"schema_version"})
            )
            rid = record_id(SOURCE, event.event_id, 1, digest)
            keyed.append((event, rid, payload, digest))
        matches = self.matcher.match_many([(event, rid) for event, rid, _, _ in keyed])
        return [
            _Matched(rid, content_id("dep", event.event_id), payload, digest, match)
            for (event, rid, payload, digest), match in zip(keyed, matches, strict=True)
        ]

    def _record(self, gw: Gateway, pending: list[_Pending]) -> None:
        """Source records, departures and (for the verified) record links, in bulk."""
        now = utcnow()
        batch_id = self._batch(gw)
        gw.insert_rows(
            SourceRecord,
            [{"id": p.record_id, "source_id": SOURCE, "record_key": p.event.event_id,
              "version": 1, "content_hash": p.digest, "payload": p.payload, "flags": {},
              "row_number": None, "batch_id": batch_id, "supersedes_id": None,
              "ingested_at": now} for p in pending],
        )  # fmt: skip
        gw.insert_rows(Departure, [_departure_row(p, now) for p in pending])
        verified = [p for p in pending if p.outcome.band == "verified" and p.outcome.person_id]
        doc = self.matcher.index.doc
        gw.insert_rows(
            RecordLink,
            [{"id": content_id("lnk", p.record_id, p.outcome.person_id),
              "source_record_id": p.record_id, "person_id": p.outcome.person_id,
              "method": "departure", "match_weight": p.match.match_weight,
              "match_probability": p.match.probability, "model_version": doc.version,
              "explanation": {"method": "departure", **p.match.explanation},
              "linked_at": now, "unlinked_at": None} for p in verified],
        )  # fmt: skip

    def _inbox(self, gw: Gateway, pending: list[_Pending]) -> None:
        """The inbox entries, in bulk (no personal data: ids, band, lag and effects)."""
        now = utcnow()
        rows = [
            {
                "event_id": p.event.event_id,
                "departure_id": p.departure_id,
                "channel": p.event.channel,
                "transport": self.transport,
                "band": str(p.outcome.band),
                "received_at": p.item.received_at,
                "processed_at": now,
                "lag_ms": round(
                    (now - (p.item.sent_at or p.item.received_at)).total_seconds() * 1e3, 3
                ),
                "effects": p.outcome.effects,
            }
            for p in pending
        ]
        bulk.insert(gw.session.connection(), InboxEntry.__table__, rows)  # type: ignore[arg-type]

    def _batch(self, gw: Gateway) -> str:
        """The ingest batch this processor's records belong to (one per processor)."""
        if self.batch_id and gw.session.get(IngestBatch, self.batch_id) is not None:
            return self.batch_id
        agreement = agreement_in_force(gw.session, SOURCE)
        if agreement is None:
            raise ValidationFailed(
                "the departures source is not registered: `immos sources register` its "
                "definition (with its agreement) before consuming departure events"
            )
        gw.require_source(SOURCE, "create")
        started = utcnow()
        self.batch_id = content_id("bat", "stream", self.transport, started.isoformat())
        gw.session.add(
            IngestBatch(id=self.batch_id, source_id=SOURCE, agreement_id=agreement.id,
                        input_uri=f"stream:{self.transport}", started_at=started,
                        status="streaming")
        )  # fmt: skip
        gw.session.flush()
        return self.batch_id

    def _confirm(self, gw: Gateway, pending: list[_Pending]) -> None:
        """Pair self-reports with the manifests or exits that confirm them, for the verified
        events of the batch (in either order of arrival).

        A manifest or exit of the same person that occurred between a day before and five
        days after a self-report confirms it and takes its report time; each confirms one.
        Two reads a batch: the self-reports of the batch's persons (the batch's own are
        written already), and, only for persons who have one, their manifests and exits.
        Few persons have a self-report, so the second read is small and the first returns
        few rows (reading every departure of every person of the batch, their times parsed,
        cost more than matching a batch's events).
        """
        verified = {p.departure_id: p for p in pending if p.outcome.band == "verified"}
        persons = {p.outcome.person_id for p in verified.values() if p.outcome.person_id}
        if not persons:
            return
        times = [p.event.occurred for p in verified.values()]
        dep = Departure
        window = select(
            dep.id, dep.person_id, dep.channel, dep.occurred_at, dep.reported_at, dep.confirms_id
        ).where(
            dep.match_band == "verified",
            dep.occurred_at >= min(times) - CONFIRM_BEFORE - CONFIRM_AFTER,
            dep.occurred_at <= max(times) + CONFIRM_BEFORE + CONFIRM_AFTER,
        )
        job = {"job": "self-report confirmation"}
        reports = gw.rows(
            window.where(dep.person_id.in_(persons), dep.channel == "self_report"),
            Departure,
            params=job,
        )
        if not reports:
            return
        others = gw.rows(
            window.where(
                dep.person_id.in_({r.person_id for r in reports}), dep.channel != "self_report"
            ),
            Departure,
            params=job,
        )
        taken = {r.confirms_id for r in others if r.confirms_id}
        exits: dict[str, list[Any]] = {}
        for other in sorted((r for r in others if not r.confirms_id),
                            key=lambda r: (_aware(r.occurred_at), r.id)):  # fmt: skip
            exits.setdefault(other.person_id, []).append(other)
        changes: list[dict[str, Any]] = []
        for report in sorted(reports, key=lambda r: (_aware(r.occurred_at), r.id)):
            if report.id in taken:
                continue
            at = _aware(report.occurred_at)
            candidates = exits.get(report.person_id, [])
            for other in candidates:
                if at - CONFIRM_AFTER <= _aware(other.occurred_at) <= at + CONFIRM_BEFORE and (
                    report.id in verified or other.id in verified
                ):
                    changes.append({"id": other.id, "confirms_id": report.id,
                                    "reported_at": report.reported_at})  # fmt: skip
                    candidates.remove(other)
                    for mine, theirs in ((report.id, other.id), (other.id, report.id)):
                        if mine in verified:
                            verified[mine].outcome.effects.append({"confirmation": theirs})
                    break
        gw.update_rows(Departure, changes)


def _departure_row(p: _Pending, now: datetime) -> dict[str, Any]:
    e, m = p.event, p.match
    return {
        "id": p.departure_id, "event_id": e.event_id, "person_id": m.person_id,
        "channel": e.channel, "occurred_at": e.occurred,
        "reported_at": getattr(e, "reported_at", None), "port": e.port,
        "carrier": getattr(e, "carrier", None), "flight": getattr(e, "flight", None),
        "document_type": e.document_type, "document_no": e.document_no,
        "document_country": e.document_country, "document_expiry": e.document_expiry,
        "match_band": m.band,
        "match_probability": None if m.probability is None else round(m.probability, 6),
        "explanation": m.explanation, "confirms_id": None, "payload": p.payload,
        "recorded_at": now, "review_status": "open" if m.band == "review" else None,
        "reviewed_by": None, "reviewed_at": None, "review_reason": None,
        "source_record_id": p.record_id, "source_id": SOURCE, "first_seen_at": now,
        "last_seen_at": now,
    }  # fmt: skip


def _already_processed(gw: Gateway, event_ids: list[str]) -> dict[str, str]:
    """Event ids already applied (inbox) or loaded by a batch ingest, with where."""
    if not event_ids:
        return {}
    found = {
        e: "already processed (inbox)"
        for e in gw.session.scalars(
            select(InboxEntry.event_id).where(InboxEntry.event_id.in_(event_ids))
        )
    }
    rest = [e for e in event_ids if e not in found]
    if rest:
        stmt = select(Departure.event_id).where(Departure.event_id.in_(rest))
        for (e,) in gw.rows(stmt, Departure, params={"job": "departure de-duplication"}):
            found[e] = "already recorded (loaded by a batch ingest)"
    return found


# -- effects on cases -----------------------------------------------------------------------


def apply_departure(
    gw: Gateway, person_id: str | None, departure_id: str, event: Event
) -> list[dict[str, Any]]:
    """Move the person's open cases for one verified departure (see :func:`apply_departures`)."""
    if not person_id:
        return []
    return apply_departures(gw, [(person_id, departure_id, event)]).get(departure_id, [])


def apply_departures(
    gw: Gateway, items: list[tuple[str, str, Event]]
) -> dict[str, list[dict[str, Any]]]:
    """What verified departures (person, departure id, event) mean for the persons' open
    cases, by departure id: each step taken, or why none was.

    Runs the lifecycle's system steps under case processing, in the caller's transaction;
    one read finds the open cases of every person of the batch.
    """
    if not items:
        return {}
    case_gw = Gateway(gw.session, system_context(Purpose.CASE_PROCESSING, "verified departures"))
    persons = sorted({person for person, _, _ in items})
    open_cases = (
        select(EnforcementCase.id, EnforcementCase.person_id)
        .where(EnforcementCase.person_id.in_(persons), EnforcementCase.closed_at.is_(None))
        .order_by(EnforcementCase.id)
    )
    found = case_gw.rows(open_cases, EnforcementCase, params={"departures": len(items)})
    if not found:
        return {}
    cases_of: dict[str, list[str]] = {}
    for case_id, person in found:
        cases_of.setdefault(person, []).append(case_id)
    effects: dict[str, list[dict[str, Any]]] = {}
    for person, departure_id, event in sorted(items, key=lambda i: i[2].occurred):
        if person in cases_of:
            effects[departure_id] = _move_cases(case_gw, cases_of[person], departure_id, event)
    return effects


def _move_cases(
    gw: Gateway, case_ids: list[str], departure_id: str, event: Event
) -> list[dict[str, Any]]:
    """Each open case of the person: the step the departure means, unless the case was
    opened after the departure (the person came back), or closed meanwhile."""
    at = event.occurred
    params = {"departure_id": departure_id, "departed_at": at.isoformat(),
              "port": event.port or "unknown"}  # fmt: skip
    state_of = dict(
        gw.rows(
            select(EnforcementCase.id, EnforcementCase.state).where(
                EnforcementCase.id.in_(case_ids), EnforcementCase.closed_at.is_(None)
            ),
            EnforcementCase,
            params={"departure": departure_id},
        )
    )
    first = (
        select(CaseEvent.case_id, func.min(CaseEvent.at))
        .where(CaseEvent.case_id.in_(list(state_of)))
        .group_by(CaseEvent.case_id)
    )
    opened_of = (
        dict(gw.rows(first, CaseEvent, params={"departure": departure_id})) if state_of else {}
    )
    effects: list[dict[str, Any]] = []
    for case_id, state in state_of.items():
        opened = opened_of.get(case_id)
        if opened is not None and _aware(opened) > at:
            effects.append(
                {"case": case_id, "applied": False,
                 "reason": "the case was opened after the departure (a later return)"}
            )  # fmt: skip
            continue
        effects.append(_step(gw, case_id, state, params))
    return effects


def _step(gw: Gateway, case_id: str, state: str, params: dict[str, Any]) -> dict[str, Any]:
    """The step a departure means in ``state`` (recorded now; ``departed_at`` says when),
    falling back to closing the case as departed when the guards refuse it."""
    first = STEP_FOR_STATE.get(state, "closed_as_departed")
    tried: list[str] = []
    for name in dict.fromkeys((first, "closed_as_departed")):
        try:
            lifecycle.perform(gw, case_id, name, params)
            return {"case": case_id, "step": name, "applied": True, "not_taken": tried}
        except lifecycle.StepBlocked as blocked:
            # The guards refused before anything was written; the refusal is audited here,
            # in the same transaction, since no caller will see the exception.
            emit(gw.session, blocked.audit_event(), gw.ctx)
            tried.append(f"{name}: {blocked}")
        except (ValidationFailed, NotFound) as refused:
            tried.append(f"{name}: {refused}")
    return {"case": case_id, "applied": False, "reason": "; ".join(tried)}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


# -- building the matcher ----------------------------------------------------------------------


def build_matcher(runtime: Runtime) -> Matcher:
    """The matcher over the current person index (read under identity resolution)."""
    ctx = system_context(Purpose.IDENTITY_RESOLUTION, "departure matcher: index in memory")
    with unit_of_work(runtime.sessions, ctx) as gw:
        return Matcher.build(gw)


# -- review -------------------------------------------------------------------------------------


def review_queue(gw: Gateway, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Departures waiting for a person's decision, oldest first, with the explanation."""
    stmt = (
        select(Departure)
        .where(Departure.review_status == "open")
        .order_by(Departure.occurred_at, Departure.id)
        .limit(limit)
        .offset(offset)
    )
    return [departure_json(d) for d in gw.select(stmt, Departure, params={"queue": "review"})]


def departure_json(d: Departure) -> dict[str, Any]:
    return {
        "id": d.id, "event_id": d.event_id, "channel": d.channel, "person_id": d.person_id,
        "occurred_at": d.occurred_at.isoformat(), "port": d.port, "carrier": d.carrier,
        "flight": d.flight, "document_no": d.document_no, "document_country": d.document_country,
        "band": d.match_band, "probability": d.match_probability, "explanation": d.explanation,
        "confirms_id": d.confirms_id,
        "reported_at": d.reported_at.isoformat() if d.reported_at else None,
        "review_status": d.review_status, "reviewed_by": d.reviewed_by,
        "review_reason": d.review_reason, "name": " ".join(
            x for x in (d.payload.get("given_name"), d.payload.get("family_name")) if x),
        "birth_date": d.payload.get("birth_date"),
    }  # fmt: skip


def decide_review(
    gw: Gateway, departure_id: str, same_person: bool, reason: str, person_id: str | None = None
) -> dict[str, Any]:
    """A person's decision on a departure in review: the same person (its cases then move,
    as for a verified departure) or not (the departure stays unmatched)."""
    if len(reason.strip()) < 10:
        raise ValidationFailed("a review decision needs its reason (at least 10 characters)")
    d = gw.get(Departure, departure_id)
    if d.review_status != "open":
        raise ValidationFailed(f"departure {departure_id} is not waiting for review")
    now = utcnow()
    effects: list[dict[str, Any]] = []
    decided = {"reviewed_by": gw.ctx.actor.user_id, "reviewed_at": now, "review_reason": reason,
               "review_status": "decided"}  # fmt: skip
    if same_person:
        person = person_id or d.person_id
        if not person:
            raise ValidationFailed("name the person the departure belongs to (--person)")
        gw.update(d, person_id=person, match_band="verified", **decided)
        if d.source_record_id:
            gw.insert_rows(
                RecordLink,
                [{"id": content_id("lnk", d.source_record_id, person),
                  "source_record_id": d.source_record_id, "person_id": person,
                  "method": "review", "match_weight": None,
                  "match_probability": d.match_probability, "model_version": None,
                  "explanation": {"method": "review", "reason": reason}, "linked_at": now,
                  "unlinked_at": None}],
            )  # fmt: skip
        event = read_event(d.payload | {"channel": d.channel})
        if d.channel != "self_report":
            effects = apply_departure(gw, person, d.id, event)
    else:
        gw.update(d, person_id=None, match_band="unmatched", **decided)
    emit(
        gw.session,
        DepartureReviewed(
            object_type="departures",
            object_ids=[d.id],
            decision="same-person" if same_person else "not-the-person",
            person_id=d.person_id,
            steps=dict(Counter(str(e.get("step")) for e in effects if e.get("applied"))),
        ),
        gw.ctx,
    )
    return {"departure": departure_json(d), "effects": effects}


def dead_letters(gw: Gateway, limit: int = 50) -> list[dict[str, Any]]:
    rows = gw.session.scalars(
        select(DeadLetter).order_by(DeadLetter.received_at.desc()).limit(limit)
    ).all()
    return [
        {"id": r.id, "event_id": r.event_id, "transport": r.transport,
         "received_at": r.received_at.isoformat(), "reason": r.reason, "raw": r.raw}
        for r in rows
    ]  # fmt: skip
