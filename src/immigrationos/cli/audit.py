"""``immos audit``: verify the chain, signed checkpoints, exports for auditors, read entries."""

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
from immigrationos.cli.common import console, friendly_errors, progress_bar, runtime
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


@app.command("export")
@friendly_errors
def export_cmd(
    out: Path = typer.Option(
        ..., "--out", "-o", help="A new (or empty) folder to write the export to."
    ),
    from_seq: int | None = typer.Option(
        None,
        "--from-seq",
        min=1,
        help="Export entries from this seq on (anchored on the hash of the entry before it).",
    ),
    batch: int = typer.Option(
        2000, "--batch", min=1, max=100_000, help="Entries read per page (memory bound)."
    ),
) -> None:
    """Export the audit log for an outside auditor, with signed checkpoints and a verifier.

    Verifies the chain, signs its head, records the export (audit.exported), then writes
    entries, manifest, checkpoints, public key, the standalone verify_export.py and a README
    to --out. The auditor needs only Python and `pip install cryptography`; see
    docs/audit-export.md.
    """
    from immigrationos.audit.export import export_audit

    with runtime() as rt:
        key = ckpt.signing_key(rt.settings)
        ctx = system_context(Purpose.OVERSIGHT_AUDIT, "immos audit export (command line)")
        with progress_bar() as bar:
            task = bar.add_task("verifying the chain and signing its head", total=None)
            result = export_audit(
                rt.sessions,
                out,
                key,
                ctx,
                from_seq,
                batch=batch,
                on_plan=lambda plan: bar.update(
                    task, description="exporting audit entries", total=plan.entries
                ),
                on_progress=lambda done: bar.update(task, completed=done),
            )
    plan = result.plan
    console.print(
        f"exported entries {plan.first_seq}..{plan.last_seq} ({plan.entries}) and "
        f"{result.checkpoints} stored checkpoint(s) to {out}"
    )
    console.print(f"head hash:  {result.head_hash}\npublic key: {result.public_key}")
    console.print(f"check it:   python {out / 'verify_export.py'} {out} --public-key KEY")


@app.command("verify-export")
def verify_export_cmd(
    directory: Path = typer.Argument(..., help="The export folder."),
    public_key: list[str] = typer.Option(
        [], "--public-key", help="Hex Ed25519 key the checkpoints must be signed with (repeat)."
    ),
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", "-c", help="A checkpoint received earlier (repeat)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check an export folder with the standalone verifier (the code auditors run).

    Runs this installation's copy of verify_export.py, not the one inside the folder. Exits 0
    when intact, 1 when not (first problem with its entry and kind), 2 for unusable input.
    """
    from immigrationos.audit import verify_export

    argv = [str(directory)]
    argv += [arg for key in public_key for arg in ("--public-key", key)]
    argv += [arg for path in checkpoint for arg in ("--checkpoint", str(path))]
    raise typer.Exit(verify_export.main([*argv, *(["--json"] if as_json else [])]))
