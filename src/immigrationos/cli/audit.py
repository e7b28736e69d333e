"""``immos audit``: verify the hash chain, write and check signed checkpoints, read entries."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit.chain import emit, verify
from immigrationos.audit.events import AuditVerified
from immigrationos.audit.models import AuditEntry
from immigrationos.cli.common import console, friendly_errors, runtime
from immigrationos.gateway.context import system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.store.engine import transaction

app = typer.Typer(
    help="Verify the tamper-evident audit log and write signed checkpoints.", no_args_is_help=True
)


@app.command("verify")
@friendly_errors
def verify_cmd(
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", "-c", help="Also check this signed checkpoint against the chain."
    ),
    public_key: str | None = typer.Option(
        None, "--public-key", help="Hex Ed25519 key the checkpoint must be signed with."
    ),
) -> None:
    """Walk the whole chain; report the first modified, deleted, inserted or reordered entry.

    Exits 1 when the chain (or the checkpoint) does not verify. The verification itself is
    recorded in the audit log.
    """
    with runtime() as rt, transaction(rt.sessions) as session:
        result = verify(session)
        outcome = (
            ckpt.check_against_chain(session, ckpt.load(checkpoint), public_key)
            if checkpoint
            else None
        )
        ctx = system_context(Purpose.OVERSIGHT_AUDIT, "immos audit verify (command line)")
        emit(
            session,
            AuditVerified(
                ok=result.ok, checked=result.checked, first_broken_seq=result.first_broken_seq
            ),
            ctx,
        )
    style = "green" if result.ok else "bold red"
    console.print(f"[{style}]{result.describe()}[/]")
    if outcome:
        console.print(f"[{'green' if outcome.ok else 'bold red'}]checkpoint: {outcome.message}[/]")
    if not result.ok or (outcome and not outcome.ok):
        raise typer.Exit(1)


@app.command("checkpoint")
@friendly_errors
def checkpoint_cmd(
    out: Path = typer.Option(
        Path("audit-checkpoint.json"),
        "--out",
        "-o",
        help="Where to write the signed checkpoint (JSON).",
    ),
) -> None:
    """Verify the chain, then write an Ed25519-signed checkpoint (entry count, head hash).

    Give the file to an outside auditor: a later export of the log must still contain the
    checkpointed entry with the same hash.
    """
    with runtime() as rt, transaction(rt.sessions) as session:
        key = ckpt.signing_key(rt.settings)
        document = ckpt.write_checkpoint(
            session, key, system_context(Purpose.OVERSIGHT_AUDIT, "immos audit checkpoint")
        )
    out.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"checkpoint of {document['entries']} entries written to {out}")
    console.print(f"public key: {document['public_key']}")


@app.command("keygen")
@friendly_errors
def keygen_cmd(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Key file (default: <data_dir>/keys/audit-ed25519.key)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing key file."),
) -> None:
    """Create the Ed25519 key that signs audit checkpoints, and print its public half."""
    from immigrationos.core.settings import get_settings

    path = out or get_settings().data_dir / ckpt.KEY_FILE
    if path.exists() and not force:
        console.print(f"[red]{path} exists; use --force to replace it[/]")
        raise typer.Exit(1)
    key = ckpt.generate_key(path)
    console.print(f"key written to {path}\npublic key: {ckpt.public_hex(key)}")


@app.command("log")
@friendly_errors
def log_cmd(
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=10000, help="Newest N entries."),
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. record.read."),
) -> None:
    """Show the newest audit entries (who, role, purpose, action, objects, outcome)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
        if action:
            stmt = stmt.where(AuditEntry.action == action)
        rows = session.scalars(stmt).all()
    table = Table("seq", "at", "actor", "role", "purpose", "action", "objects", "outcome")
    for r in rows:
        objects = f"{r.object_type or ''} ×{len(r.object_ids)}" if r.object_ids else ""
        table.add_row(
            str(r.seq),
            r.at.strftime("%Y-%m-%d %H:%M:%S"),
            r.actor_name or "",
            r.actor_role or "",
            r.purpose or "",
            r.action,
            objects,
            r.outcome,
        )
    console.print(table)
