"""``immos users``: create and list accounts (administration; no personal data)."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.roles import ROLES, Role
from immigrationos.accounts.service import create_user
from immigrationos.cli.common import console, friendly_errors, runtime
from immigrationos.gateway.context import system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.store.engine import transaction

app = typer.Typer(help="Create and list user accounts.", no_args_is_help=True)


@app.command("create")
@friendly_errors
def create_cmd(
    username: str = typer.Argument(..., help="Sign-in name."),
    role: Role = typer.Option(..., "--role", help="The one role this account holds."),
    office: str | None = typer.Option(None, "--office", help="Field office (officers)."),
    password: str = typer.Option(
        ...,
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="At least 10 characters.",
    ),
) -> None:
    """Create an account with an argon2id-hashed password (audited)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        ctx = system_context(Purpose.SYSTEM_ADMINISTRATION, "immos users create")
        user = create_user(session, username, role, password, office=office, ctx=ctx)
    console.print(f"created {user.username} ({role.value}) as {user.id}")


@app.command("list")
@friendly_errors
def list_cmd() -> None:
    """List accounts with their role and office."""
    with runtime() as rt, transaction(rt.sessions) as session:
        users = session.scalars(select(User).order_by(User.username)).all()
    table = Table("username", "role", "office", "active", "role's work")
    for u in users:
        table.add_row(
            u.username,
            u.role,
            u.office or "",
            "yes" if u.active else "no",
            ROLES[Role(u.role)].description[:60],
        )
    console.print(table)
