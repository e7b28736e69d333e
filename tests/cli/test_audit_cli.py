"""The audit commands work from the command line, as the README shows them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from immigrationos.cli.main import app
from immigrationos.core.settings import get_settings
from immigrationos.runtime import open_runtime
from immigrationos.store.engine import transaction

runner = CliRunner()


def test_verify_checkpoint_and_log(env_settings: Path, tmp_path: Path) -> None:
    with transaction(open_runtime(get_settings()).sessions) as session:
        from immigrationos.accounts.service import ensure_demo_accounts

        ensure_demo_accounts(session)
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "audit chain intact" in verified.output
    out = tmp_path / "checkpoint.json"
    written = runner.invoke(app, ["audit", "checkpoint", "--out", str(out)])
    assert written.exit_code == 0, written.output
    document = json.loads(out.read_text())
    again = runner.invoke(
        app, ["audit", "verify", "--checkpoint", str(out), "--public-key", document["public_key"]]
    )
    assert again.exit_code == 0, again.output
    assert "checkpoint of" in again.output
    shown = runner.invoke(app, ["audit", "log", "-n", "5", "--action", "audit.checkpoint"])
    assert shown.exit_code == 0 and "┏" in shown.output, shown.output  # a table, any width
    with transaction(open_runtime(get_settings()).sessions) as session:
        from sqlalchemy import select

        from immigrationos.audit.models import AuditEntry

        actions = session.scalars(select(AuditEntry.action)).all()
    assert "audit.checkpoint" in actions and actions.count("audit.verified") == 2


def test_a_tampered_chain_fails_verification_with_exit_1(env_settings: Path) -> None:
    runtime = open_runtime(get_settings())
    with transaction(runtime.sessions) as session:
        from immigrationos.accounts.service import ensure_demo_accounts

        ensure_demo_accounts(session)
    with runtime.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE audit_entries SET actor_name = 'someone' WHERE seq = 2"))
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "BROKEN at entry 2" in result.output
