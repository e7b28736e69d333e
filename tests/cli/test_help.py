"""Every command of ``immos`` has help text, and ``immos --help`` lists every command."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from immigrationos.cli.main import app

runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            found.extend(_commands(command, path))
    return found


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    commands = _commands(root)
    assert len(commands) >= 15
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        command = root
        for part in path:
            command = command.commands[part]  # type: ignore[attr-defined]
        assert (command.help or "").strip(), f"`immos {' '.join(path)}` has no help text"


def test_top_level_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    root = typer.main.get_command(app)
    for name in root.commands:  # type: ignore[attr-defined]
        assert name in result.output
