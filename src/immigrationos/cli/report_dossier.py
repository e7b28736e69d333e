"""``immos report dossier``: the system dossier for inspectors."""

from __future__ import annotations

from pathlib import Path

import typer

from immigrationos.cli.common import PASSWORD, console, friendly_errors, runtime, signed_in
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import dossier
from immigrationos.store.engine import transaction


def dossier_cmd(
    out: Path = typer.Option(
        Path("dossier"), "--out", "-o", help="Folder to write dossier.html, .pdf and .json into."
    ),
    formats: str = typer.Option(
        "html,pdf,json", "--format", "-f", help="Comma-separated: html, pdf, json."
    ),
    username: str | None = typer.Option(
        None, "--as", help="Who asks (username); default: the system account, like audit verify."
    ),
    password: str | None = PASSWORD,
) -> None:
    """Write the system dossier, generated from the running configuration.

    Sources and agreements in force, matching models and their evaluation, priority policies
    in force, the lifecycle's states, transitions and guards, roles and purposes, the audit
    chain (verified now), attributes absent by design, and one section per EU AI Act Article 9
    to 15 saying which mechanism meets each requirement, the live figures, how to check it and
    the known gaps. Configuration and aggregates only; the generation is audited.
    """
    chosen = dossier.parse_formats(formats)
    ctx: AccessContext = (
        signed_in(username, password, Purpose.OVERSIGHT_AUDIT, "system dossier")
        if username
        else system_context(Purpose.OVERSIGHT_AUDIT, "immos report dossier (command line)")
    )
    with runtime() as rt, transaction(rt.sessions) as session:
        result = dossier.generate(session, rt.settings, ctx, chosen)
    out.mkdir(parents=True, exist_ok=True)
    for fmt, content in result.outputs.items():
        (out / f"dossier.{fmt}").write_bytes(content)
    m = result.data["metrics"]
    console.print(
        f"dossier written to {out}/ ({', '.join(f'dossier.{f}' for f in result.outputs)}): "
        f"{m['sources.registered']} sources, {m['priority.policies_in_force']} policies in "
        f"force, {m['lifecycle.guards']} guards, audit chain "
        f"{'intact' if m['audit.chain_ok'] else 'BROKEN'} ({m['audit.entries']} entries)"
    )
    console.print(f"sha256 of the dossier's data: {result.sha256}")


def register(app: typer.Typer) -> None:
    """Add this report's command to the ``immos report`` group."""
    app.command("dossier")(friendly_errors(dossier_cmd))
