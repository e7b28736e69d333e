"""Docs stay honest: every setting, CLI command and audit event is documented."""

from __future__ import annotations

from pathlib import Path

import typer

from immigrationos.audit.events import all_event_classes
from immigrationos.cli.main import app
from immigrationos.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _read(*parts: str) -> str:
    return (ROOT.joinpath(*parts)).read_text(encoding="utf-8")


def test_every_setting_is_documented_in_operations() -> None:
    text = _read("docs", "operations.md")
    for name in Settings.model_fields:
        assert f"IMMOS_{name.upper()}" in text, f"IMMOS_{name.upper()} is not documented"


def test_every_cli_command_is_in_the_readme_or_docs() -> None:
    text = _read("README.md") + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    for name, command in root.commands.items():
        assert f"immos {name}" in text, f"`immos {name}` is not documented"
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            for sub in command.commands:
                assert f"immos {name} {sub}" in text, f"`immos {name} {sub}` undocumented"


def test_every_audit_event_is_documented() -> None:
    text = _read("docs", "audit.md")
    for cls in all_event_classes():
        assert f"`{cls.action}`" in text, f"audit event {cls.action} is not documented"


def test_readme_opens_with_the_two_commands_and_ci_calls_the_test_one() -> None:
    readme = _read("README.md")
    block = readme.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["python3 tasks.py demo", "python3 tasks.py test"]
    assert "python3 tasks.py test" in _read(".ci", "run")
