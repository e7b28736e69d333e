"""Every command of ``immos`` has help text, and ``immos --help`` lists every command."""

from __future__ import annotations

import click
import typer
from typer.testing import CliRunner

from immigrationos.cli.main import app

runner = CliRunner()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
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
