"""The audit log in the dossier: counts of what happened, and the chain verified at generation.

Every section's "how often" comes from :class:`AuditCounts`, which reads the log's actions and
outcomes once. Counting the log reads no personal data: entries name actions, outcomes and
object ids, never personal values. The "Audit chain and retention" section verifies the whole
chain now and checks the newest signed checkpoint against it, so a dossier cannot vouch for a
log that was altered after it was signed.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit.chain import GENESIS_HASH, VerifyResult, hash_at, verify
from immigrationos.audit.models import AuditCheckpoint, AuditEntry
from immigrationos.core.errors import ConfigurationError, IntegrityViolation
from immigrationos.core.settings import Settings


class AuditCounts:
    """Counts of the audit log by action and outcome, read once (the log holds no values)."""

    def __init__(self, session: Session) -> None:
        stmt = select(AuditEntry.action, AuditEntry.outcome, func.count()).group_by(
            AuditEntry.action, AuditEntry.outcome
        )
        self.by_action: Counter[str] = Counter()
        self.by_outcome: Counter[str] = Counter()
        for action, outcome, n in session.execute(stmt).all():
            self.by_action[action] += n
            self.by_outcome[outcome] += n
        self.session = session

    def count(self, patterns: Iterable[str]) -> int:
        """Entries whose action matches any of the glob ``patterns``."""
        pats = list(patterns)
        matching = (a for a in self.by_action if any(fnmatch.fnmatchcase(a, p) for p in pats))
        return sum(self.by_action[a] for a in matching)

    def detail_counts(self, action: str, key: str, *, keys_of_dict: bool = False) -> dict[str, int]:
        """How often each value of ``details[key]`` occurs among ``action``'s entries."""
        counts: Counter[str] = Counter()
        stmt = select(AuditEntry.details).where(AuditEntry.action == action)
        for (details,) in self.session.execute(stmt):
            value = (details or {}).get(key)
            if keys_of_dict and isinstance(value, dict):
                counts.update(str(k) for k in value)
            elif value is not None and not keys_of_dict:
                counts[str(value)] += 1
        return dict(sorted(counts.items()))

    def last_at(self, action: str) -> str | None:
        """When ``action`` last happened (None if never)."""
        stmt = select(func.max(AuditEntry.at)).where(AuditEntry.action == action)
        at = self.session.scalar(stmt)
        return at.isoformat(timespec="seconds") if at else None


def _hash_at(session: Session, seq: int) -> str | None:
    """Entry ``seq``'s hash; a checkpoint of the empty chain holds the genesis hash."""
    return GENESIS_HASH if seq == 0 else hash_at(session, seq)


def _signature_verifies(document: dict[str, Any]) -> bool:
    try:
        ckpt.check_signature(document)
    except IntegrityViolation:
        return False  # the row no longer says what was signed
    return True


def _checkpoint(session: Session) -> dict[str, Any] | None:
    """The newest signed checkpoint: does its signature verify, does the chain still hold it."""
    newest = select(AuditCheckpoint).order_by(AuditCheckpoint.created_at.desc()).limit(1)
    row = session.scalars(newest).first()
    if row is None:
        return None
    document = {
        "format": ckpt.FORMAT,
        "entries": row.entries,
        "head_hash": row.head_hash,
        "created_at": row.created_at.isoformat(timespec="seconds"),
        "public_key": row.public_key,
        "signature": row.signature,
    }
    return {
        **{k: document[k] for k in ("entries", "head_hash", "created_at", "public_key")},
        "signature_verifies": _signature_verifies(document),
        "chain_still_holds_it": _hash_at(session, row.entries) == row.head_hash,
    }


def _signing_key(settings: Settings) -> dict[str, Any]:
    """Where the checkpoint key comes from and its public half (never creates one)."""
    configured = bool(settings.audit_signing_key.get_secret_value())
    path = settings.data_dir / ckpt.KEY_FILE
    if not configured and not path.exists():
        return {"source": "none yet (created on first checkpoint in demo mode)", "public_key": None}
    try:
        public = ckpt.public_hex(ckpt.signing_key(settings))
    except ConfigurationError as exc:
        return {"source": "invalid", "public_key": None, "problem": str(exc)}
    return {"source": "IMMOS_AUDIT_SIGNING_KEY" if configured else "key file", "public_key": public}


def _chain(result: VerifyResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "entries_checked": result.checked,
        "head_seq": result.head_seq,
        "head_hash": result.head_hash,
        "first_broken_seq": result.first_broken_seq,
        "problem": result.problem,
        "message": result.describe(),
    }


def _retention(audit: AuditCounts, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Retention per source (from the agreements in force) and the purges done so far."""
    days = {s["id"]: s["agreement"]["retention_days"] for s in sources if s["agreement"]}
    return {
        "source_records_days": days,
        "tombstones": sum(s["tombstones"] for s in sources),
        "last_purge_at": audit.last_at("retention.purged"),
        "audit_log": "Kept in full: retention purges source records and what was derived "
        "from them (leaving tombstones), never audit entries.",
    }


def audit_section(
    session: Session, settings: Settings, audit: AuditCounts, sources: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chain verified now, entries by outcome and action, checkpoints, key, retention."""
    chain = _chain(verify(session))
    checkpoints = session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0
    return {
        "chain": chain,
        "entries": sum(audit.by_action.values()),
        "by_outcome": dict(sorted(audit.by_outcome.items())),
        "by_action": dict(sorted(audit.by_action.items())),
        "checkpoints": checkpoints,
        "latest_checkpoint": _checkpoint(session),
        "signing_key": _signing_key(settings),
        "retention": _retention(audit, sources),
    }
