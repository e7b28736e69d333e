"""What every CLI command shares: the console, the runtime, and turning errors into messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from immigrationos.core.errors import ImmosError
from immigrationos.runtime import Runtime, open_runtime

console = Console()
#: Options every signed-in command shares.
PASSWORD = typer.Option(
    None, "--password", envvar="IMMOS_PASSWORD", help="Password (else prompted)."
)
JSON_OUT = typer.Option(False, "--json", help="Print JSON (as the API serves it).")
err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print an :class:`ImmosError` as a one-line message and exit 1, without a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ImmosError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None

    return wrapper


@contextmanager
def runtime() -> Iterator[Runtime]:
    """The configured runtime, closed when the command ends."""
    rt = open_runtime()
    try:
        yield rt
    finally:
        rt.close()


def progress_bar() -> Progress:
    """The progress bar long commands show."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def kv_table(title: str, rows: dict[str, Any]) -> Any:
    """A two-column Rich table."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def signed_in(username: str, password: str | None, purpose: Any, why: str) -> Any:
    """The access context of ``username`` (password prompted when not given) for a purpose."""
    from immigrationos.accounts.service import actor_of, authenticate
    from immigrationos.gateway.context import AccessContext
    from immigrationos.store.engine import transaction

    secret = password or typer.prompt(f"password for {username}", hide_input=True)
    with runtime() as rt, transaction(rt.sessions) as session:
        actor = actor_of(authenticate(session, username, secret))
    return AccessContext(actor, purpose, why)


def run_as(ctx: Any, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call ``fn(gateway, *args)`` in one unit of work under ``ctx``."""
    from immigrationos.gateway.core import unit_of_work

    with runtime() as rt, unit_of_work(rt.sessions, ctx) as gw:
        return fn(gw, *args, **kwargs)


def print_json(data: Any) -> None:
    """Print data as JSON (dates and other values as text)."""
    console.print_json(json.dumps(data, default=str))


def parse_date(text: str | None) -> date | None:
    """An ISO date option, or a clear error naming the value."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)") from None
