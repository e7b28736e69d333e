"""The audit hash chain: append (the one :func:`emit`), verify, and locate tampering.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own canonical JSON
(every column but the hash itself, ``seq`` included). Appends lock the single head row, so
concurrent writers form one line on PostgreSQL; SQLite serialises writers already.

A transaction's entries wait in the session (:class:`_Pending`) and take their place in the
chain when it commits (:func:`settle`, run before every commit): the head is locked, each entry
gets its ``seq`` and hashes in order, and they are written with the head before the commit.
The lock is held for that flush and the commit only, not for the request's work, so concurrent
requests do not queue behind each other's reads; and a request that audits ten reads costs one
lock, one head update and one batched insert. An entry is stored exactly when the work it
records is: a rolled-back transaction, or savepoint, takes its entries with it. Entries are not
visible to queries of the same transaction before it commits. Verification
walks the chain in ``seq`` order and reports the first entry that does not fit, and why:
modified content, a missing ``seq`` (deletion), a link to the wrong predecessor (insertion or
reordering), or a head row that disagrees with the last entry (truncation).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

from immigrationos.audit.events import AuditEvent
from immigrationos.audit.models import AuditEntry, AuditHead
from immigrationos.core.clock import utcnow
from immigrationos.core.ids import canonical_json, new_id, sha256_hex
from immigrationos.gateway.context import AccessContext, Actor

GENESIS_HASH = "0" * 64
_HASHED_FIELDS = (
    "seq", "id", "at", "actor_id", "actor_name", "actor_role", "actor_office", "purpose",
    "justification", "action", "outcome", "object_type", "object_ids", "search_params",
    "result_count", "details",
)  # fmt: skip


def canonical_form(entry: Any) -> str:
    """The canonical JSON an entry's hash covers (timestamps as UTC ISO with microseconds)."""
    values: dict[str, Any] = {name: getattr(entry, name) for name in _HASHED_FIELDS}
    values["at"] = entry.at.astimezone(UTC).isoformat(timespec="microseconds")
    return canonical_json(values)


def entry_hash(prev_hash: str, entry: Any) -> str:
    """The hash an entry must carry given its predecessor's hash."""
    return sha256_hex(prev_hash + "\n" + canonical_form(entry))


_COLUMNS = (*_HASHED_FIELDS, "prev_hash", "entry_hash")
_ENTRIES = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditHead.__table__)
# built once: every request that audits runs these
_READ_HEAD = select(_HEAD.c.seq, _HEAD.c.entry_hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("head_seq"), entry_hash=bindparam("head_hash"))
)
_APPEND = insert(_ENTRIES)
_PENDING = "immos_audit_pending"
_SAVED = "immos_audit_pending_at_savepoints"


@dataclass
class _Pending:
    """Entries emitted in one transaction, waiting for their place in the chain."""

    transaction: SessionTransaction
    entries: list[AuditEntry]


def _lock_head(session: Session) -> tuple[int, str]:
    """Lock the head row (made on the first append) and give its ``seq`` and hash."""
    row = session.execute(_READ_HEAD).first()
    if row is None:
        session.execute(insert(_HEAD).values(id=1, seq=0, entry_hash=GENESIS_HASH))
        return 0, GENESIS_HASH
    return int(row.seq), str(row.entry_hash)


def _pending(session: Session) -> _Pending:
    """This transaction's entries not yet placed in the chain."""
    pending: _Pending | None = session.info.get(_PENDING)
    transaction = session.get_transaction() or session.begin()
    if pending is None or pending.transaction is not transaction:
        pending = _Pending(transaction, [])
        session.info[_PENDING] = pending
    return pending


@event.listens_for(Session, "after_transaction_create")
def _remember_at_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        pending: _Pending | None = session.info.get(_PENDING)
        saved = session.info.setdefault(_SAVED, {})
        for ended in [t for t in saved if not t.is_active]:
            del saved[ended]
        saved[transaction] = len(pending.entries) if pending else 0


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    saved = session.info.get(_SAVED, {})
    pending: _Pending | None = session.info.get(_PENDING)
    if previous.nested and previous in saved and pending is not None:
        del pending.entries[saved.pop(previous) :]


@event.listens_for(Session, "before_commit")
def settle(session: Session) -> None:
    """Place this transaction's entries at the end of the chain: lock the head, give each
    its ``seq`` and hashes in order, move the head (run before every commit)."""
    pending: _Pending | None = session.info.get(_PENDING)
    if (
        pending is None
        or not pending.entries
        or pending.transaction is not session.get_transaction()
    ):
        return
    seq, last_hash = _lock_head(session)
    for entry in pending.entries:
        entry.seq, entry.prev_hash = seq + 1, last_hash
        entry.entry_hash = entry_hash(entry.prev_hash, entry)
        seq, last_hash = entry.seq, entry.entry_hash
    # written with Core, not the unit of work: the entries are transient objects the caller
    # may still read, and a flush of ten ORM objects cost more than the request's reads
    session.execute(_APPEND, [_row(entry) for entry in pending.entries])
    session.execute(_MOVE_HEAD, {"head_seq": seq, "head_hash": last_hash})
    pending.entries = []


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {column: getattr(entry, column) for column in _COLUMNS}


def emit(session: Session, event: AuditEvent, who: AccessContext | Actor | None) -> AuditEntry:
    """Append ``event`` to the chain in the caller's transaction. The only way to audit.

    ``who`` is the access context (actor and purpose), a bare actor when no purpose was
    established (sign-in, refusals before a purpose), or None for the anonymous public. The
    entry takes its place in the chain (``seq``, hashes) when the transaction commits.
    """
    ctx = who if isinstance(who, AccessContext) else None
    actor = ctx.actor if ctx else who if isinstance(who, Actor) else None
    entry = AuditEntry(
        id=new_id("aud"),
        at=utcnow(),
        actor_id=actor.user_id if actor else None,
        actor_name=actor.username if actor else None,
        actor_role=actor.role.value if actor else None,
        actor_office=actor.office if actor else None,
        purpose=ctx.purpose.value if ctx else None,
        justification=ctx.justification if ctx else None,
        action=event.action,
        outcome=event.outcome,
        object_type=event.object_type,
        object_ids=list(event.object_ids),
        search_params=getattr(event, "search_params", None),
        result_count=getattr(event, "result_count", None),
        details=event.details(),
    )
    if ctx and ctx.case_id:
        entry.details = {**entry.details, "case_id": ctx.case_id}
    _pending(session).entries.append(entry)
    return entry


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of a chain verification; ``first_broken_seq`` locates the first fault."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        """One line for people."""
        if self.ok:
            return f"audit chain intact: {self.checked} entries, head {self.head_hash[:16]}…"
        return f"audit chain BROKEN at entry {self.first_broken_seq}: {self.problem}"


def _entries(session: Session, batch: int = 5000) -> Iterator[Any]:
    """Rows of the chain in ``seq`` order, read as plain rows in pages (bounded memory)."""
    table = AuditEntry.__table__
    last = 0
    while True:
        rows = session.execute(
            select(table).where(table.c.seq > last).order_by(table.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def _moved_from(session: Session, entry: Any) -> int | None:
    """Where an entry that fails its hash verifies if put back: its original position."""
    before = session.scalar(select(AuditEntry.seq).where(AuditEntry.entry_hash == entry.prev_hash))
    if before is None and entry.prev_hash == GENESIS_HASH:
        before = 0
    if before is None or before + 1 == entry.seq:
        return None
    original = {name: getattr(entry, name) for name in _HASHED_FIELDS}
    original["seq"] = before + 1
    candidate = _Row(**original, prev_hash=entry.prev_hash, entry_hash=entry.entry_hash)
    return before + 1 if entry_hash(entry.prev_hash, candidate) == entry.entry_hash else None


@dataclass
class _Row:
    seq: int
    id: str
    at: Any
    actor_id: Any
    actor_name: Any
    actor_role: Any
    actor_office: Any
    purpose: Any
    justification: Any
    action: Any
    outcome: Any
    object_type: Any
    object_ids: Any
    search_params: Any
    result_count: Any
    details: Any
    prev_hash: str
    entry_hash: str


def _diagnose(session: Session, entry: Any, expected_seq: int, prev_hash: str) -> str | None:
    if entry.seq != expected_seq:
        return f"entries {expected_seq}..{entry.seq - 1} are missing (deleted)"
    if entry.entry_hash != entry_hash(entry.prev_hash, entry):
        moved = _moved_from(session, entry)
        if moved is not None:
            return f"this entry was written at position {moved} (inserted or reordered rows)"
        return "content does not match its hash (modified)"
    if entry.prev_hash != prev_hash:
        return "does not link to its predecessor (an entry was inserted or removed before it)"
    return None


def verify(session: Session) -> VerifyResult:
    """Walk the whole chain (as committed) and report the first entry that does not verify."""
    prev_hash, expected, checked = GENESIS_HASH, 1, 0
    for entry in _entries(session):
        problem = _diagnose(session, entry, expected, prev_hash)
        if problem:
            located = min(entry.seq, expected)
            return VerifyResult(False, checked, expected - 1, prev_hash, located, problem)
        prev_hash, expected, checked = entry.entry_hash, entry.seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq, head.entry_hash) != (checked, prev_hash):
        return VerifyResult(
            False,
            checked,
            checked,
            prev_hash,
            checked + 1,
            f"the head records {head.seq} entries but the chain ends at "
            f"{checked} (entries after {checked} were removed)",
        )
    return VerifyResult(True, checked, checked, prev_hash)


def hash_at(session: Session, seq: int) -> str | None:
    """The stored hash of entry ``seq`` (None when there is no such entry)."""
    return session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq))
