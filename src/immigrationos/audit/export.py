"""Export the audit log for an outside auditor, with signed checkpoints and a verifier.

An export is a folder an auditor can check without this project (see ``docs/audit-export.md``):

- ``entries.jsonl``: one line per entry, ``{"entry": …, "entry_hash": …, "prev_hash": …}``,
  where ``entry`` is verbatim the canonical JSON the entry's hash covers;
- ``manifest.json``: format, range (``first_seq``..``last_seq``), the anchor (the hash of the
  entry before ``first_seq``; 64 zeros for a whole export), the head hash, when and by which
  system version it was made;
- ``checkpoint.json``: a fresh Ed25519-signed checkpoint of the head, written (and stored and
  audited) through :mod:`immigrationos.audit.checkpoint`;
- ``checkpoints.jsonl``: the checkpoints the system had stored, rebuilt as signed documents;
- ``public-key.txt``, ``verify_export.py`` (the standalone verifier) and a ``README.md``.

The export is planned first (:func:`plan_export`, pure), signed and audited in one short
transaction (``audit.exported`` records the plan), and then streamed page by page in short
read transactions, so neither memory nor the chain's head lock grows with the log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from immigrationos import __version__
from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit.chain import GENESIS_HASH, canonical_form, emit, entry_hash, hash_at
from immigrationos.audit.events import AuditExported
from immigrationos.audit.models import AuditCheckpoint, AuditEntry
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import IntegrityViolation, ValidationFailed
from immigrationos.core.ids import canonical_json
from immigrationos.gateway.context import AccessContext
from immigrationos.store.engine import transaction

FORMAT = "immos-audit-export/1"
VERIFIER = "verify_export.py"
FILES = {
    "entries": "entries.jsonl",
    "checkpoint": "checkpoint.json",
    "stored_checkpoints": "checkpoints.jsonl",
    "public_key": "public-key.txt",
    "verifier": VERIFIER,
    "readme": "README.md",
}
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportPlan:
    """Which entries an export holds: ``first_seq``..``last_seq``, anchored on the one before."""

    first_seq: int
    last_seq: int

    @property
    def anchor_seq(self) -> int:
        """The entry whose hash the first exported entry links to (0: the genesis)."""
        return self.first_seq - 1

    @property
    def entries(self) -> int:
        """How many entries the export holds."""
        return max(self.last_seq - self.first_seq + 1, 0)


def plan_export(head_seq: int, from_seq: int | None = None) -> ExportPlan:
    """The range an export of a chain signed at ``head_seq`` covers, from ``from_seq`` on."""
    first = 1 if from_seq is None else from_seq
    if first < 1:
        raise ValidationFailed(f"--from-seq must be 1 or more, not {first}")
    if from_seq is not None and first > head_seq:
        raise ValidationFailed(
            f"nothing to export from entry {first}: the chain's signed head is entry {head_seq}"
        )
    return ExportPlan(first, head_seq)


@dataclass(frozen=True)
class ExportResult:
    """What was written, for the command line to report."""

    plan: ExportPlan
    out: Path
    head_hash: str
    anchor_hash: str
    checkpoints: int
    public_key: str


def stored_document(row: Any) -> dict[str, Any]:
    """A stored checkpoint row as the signed document it was written as."""
    return {
        "format": ckpt.FORMAT,
        "entries": row.entries,
        "head_hash": row.head_hash,
        "created_at": row.created_at.astimezone(UTC).isoformat(timespec="seconds"),
        "public_key": row.public_key,
        "signature": row.signature,
    }


def export_line(row: Any) -> str:
    """One ``entries.jsonl`` record: the hashed canonical form verbatim, the link and the hash.

    The keys sort as written (``entry`` < ``entry_hash`` < ``prev_hash``), so the line is
    itself canonical JSON.
    """
    return (
        f'{{"entry":{canonical_form(row)},"entry_hash":"{row.entry_hash}",'
        f'"prev_hash":"{row.prev_hash}"}}'
    )


def verifier_source() -> bytes:
    """The standalone verifier script, as shipped inside this package."""
    return resources.files("immigrationos.audit").joinpath(VERIFIER).read_bytes()


def _prepare(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationFailed(f"{out} exists and is not an empty folder; choose a new one")


@dataclass(frozen=True)
class _Signed:
    plan: ExportPlan
    document: dict[str, Any]
    anchor_hash: str
    stored: list[dict[str, Any]]
    generated_at: datetime


def _sign_and_record(
    session: Session,
    key: Ed25519PrivateKey,
    ctx: AccessContext | None,
    from_seq: int | None,
    out: Path,
) -> _Signed:
    """Sign the head, plan the range, and put the export on the record (one transaction)."""
    rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.created_at)).all()
    document = ckpt.write_checkpoint(session, key, ctx)  # verifies the whole chain first
    plan = plan_export(document["entries"], from_seq)
    anchor = GENESIS_HASH if plan.anchor_seq == 0 else hash_at(session, plan.anchor_seq)
    if anchor is None:  # the chain verified a moment ago, so only a concurrent deletion
        raise IntegrityViolation(f"entry {plan.anchor_seq} vanished; run `immos audit verify`")
    stored = [stored_document(r) for r in rows if r.entries <= plan.last_seq]
    event = AuditExported(
        first_seq=plan.first_seq,
        last_seq=plan.last_seq,
        entries=plan.entries,
        head_hash=document["head_hash"],
        anchor_hash=anchor,
        checkpoints=len(stored),
        destination=str(out),
    )
    emit(session, event, ctx)
    return _Signed(plan, document, anchor, stored, utcnow())


def _pages(sessions: sessionmaker[Session], plan: ExportPlan, batch: int) -> Iterator[list[Any]]:
    """The planned entries in ``seq`` order, one short read transaction per page."""
    table = AuditEntry.__table__
    after = plan.anchor_seq
    while after < plan.last_seq:
        with transaction(sessions) as session:
            rows = session.execute(
                select(table)
                .where(table.c.seq > after, table.c.seq <= plan.last_seq)
                .order_by(table.c.seq)
                .limit(batch)
            ).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1].seq


def _write_entries(
    sessions: sessionmaker[Session],
    signed: _Signed,
    path: Path,
    batch: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Stream the entries to ``path``, re-checking each link (the chain must not move)."""
    prev, expected, written = signed.anchor_hash, signed.plan.first_seq, 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for rows in _pages(sessions, signed.plan, batch):
            for row in rows:
                if (row.seq, row.prev_hash) != (expected, prev) or entry_hash(
                    prev, row
                ) != row.entry_hash:
                    raise IntegrityViolation(
                        f"the audit chain changed during the export at entry {expected}; "
                        "run `immos audit verify`"
                    )
                handle.write(export_line(row) + "\n")
                prev, expected = row.entry_hash, row.seq + 1
            written += len(rows)
            if on_progress:
                on_progress(written)
    if written != signed.plan.entries:
        raise IntegrityViolation(
            f"the export found {written} entries where the signed chain has "
            f"{signed.plan.entries}; run `immos audit verify`"
        )


def manifest(signed: _Signed) -> dict[str, Any]:
    """The export's description of itself (what the verifier compares the chain with)."""
    plan = signed.plan
    return {
        "format": FORMAT,
        "entries": plan.entries,
        "first_seq": plan.first_seq,
        "last_seq": plan.last_seq,
        "anchor": {"seq": plan.anchor_seq, "hash": signed.anchor_hash},
        "head_hash": signed.document["head_hash"],
        "generated_at": signed.generated_at.isoformat(timespec="seconds"),
        "system": {"name": "ImmigrationOS", "version": __version__},
        "public_key": signed.document["public_key"],
        "hash_rule": 'entry_hash = SHA-256(prev_hash + "\\n" + canonical JSON of entry)',
        "files": FILES,
    }


def _write_rest(out: Path, signed: _Signed) -> None:
    (out / FILES["checkpoint"]).write_text(_pretty(signed.document))
    (out / FILES["stored_checkpoints"]).write_text(
        "".join(canonical_json(d) + "\n" for d in signed.stored)
    )
    (out / FILES["public_key"]).write_text(signed.document["public_key"] + "\n")
    (out / FILES["verifier"]).write_bytes(verifier_source())
    (out / FILES["readme"]).write_text(readme(signed))
    # Last: a folder without a manifest is an export that did not finish.
    (out / MANIFEST).write_text(_pretty(manifest(signed)))


def _pretty(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def export_audit(
    sessions: sessionmaker[Session],
    out: Path,
    key: Ed25519PrivateKey,
    ctx: AccessContext | None,
    from_seq: int | None = None,
    *,
    batch: int = 2000,
    on_plan: Callable[[ExportPlan], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Sign the chain's head, record the export, and write the export folder ``out``.

    Raises :class:`IntegrityViolation` when the chain does not verify (nothing is signed then)
    and :class:`ValidationFailed` for a bad range or a folder that is not new or empty.
    """
    _prepare(out)
    with transaction(sessions) as session:
        signed = _sign_and_record(session, key, ctx, from_seq, out)
    if on_plan:
        on_plan(signed.plan)
    out.mkdir(parents=True, exist_ok=True)
    _write_entries(sessions, signed, out / FILES["entries"], batch, on_progress)
    _write_rest(out, signed)
    return ExportResult(
        signed.plan,
        out,
        signed.document["head_hash"],
        signed.anchor_hash,
        len(signed.stored),
        signed.document["public_key"],
    )


README = """\
# ImmigrationOS audit export

This folder is a copy of entries {first}..{last} ({count} entries) of an ImmigrationOS audit
log, made {generated} by {system}. Its head (entry {last}) has hash

    {head}

and is signed in `checkpoint.json` with the Ed25519 key in `public-key.txt`:

    {key}

## Check it (you do not need ImmigrationOS)

    pip install cryptography
    python verify_export.py . --public-key AGENCY_KEY [--checkpoint EARLIER_CHECKPOINT.json ...]

Use the audit key the agency published, not only the one in this folder: a key that travels with
the data proves only that the data agrees with itself. Pass every checkpoint you received
earlier with `--checkpoint`; the verifier checks that this export still contains each of them.

Exit status 0 means intact, 1 not intact (the first problem is printed with its entry number
and kind), 2 unusable input. `verify_export.py` is plain Python; read it before you run it, or
use a copy from the project's published source.

{partial}Files: `entries.jsonl` (one entry per line: the exact canonical JSON the entry's hash
covers, its hash, and its predecessor's hash), `manifest.json`, `checkpoint.json`,
`checkpoints.jsonl` (checkpoints the system had stored), `public-key.txt`, `verify_export.py`.
"""


def readme(signed: _Signed) -> str:
    """The short README for the auditor, with this export's range, head and key."""
    plan = signed.plan
    partial = (
        f"This is a partial export: entry {plan.first_seq} links to entry {plan.anchor_seq}, "
        f"whose hash (the anchor, in `manifest.json`) is\n\n    {signed.anchor_hash}\n\n"
        "Compare it with an earlier export or a checkpoint of that entry.\n\n"
        if plan.anchor_seq
        else ""
    )
    return README.format(
        first=plan.first_seq,
        last=plan.last_seq,
        count=plan.entries,
        generated=signed.generated_at.isoformat(timespec="seconds"),
        system=f"ImmigrationOS {__version__}",
        head=signed.document["head_hash"],
        key=signed.document["public_key"],
        partial=partial,
    )
