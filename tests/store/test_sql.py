"""``store.sql.one_of``: the same rows on both backends, for lists bound at run time and fixed
when built, empty lists included; one array parameter on PostgreSQL whatever the length."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction
from immigrationos.store.sql import one_of

NAMES = ["analyst", "auditor", "no-such-user", "officer.miami"]


@pytest.mark.parametrize(
    "wanted", [[], ["analyst"], NAMES, ["no-such-user"], ["analyst", "analyst"]]
)
def test_one_of_selects_the_same_rows_bound_or_fixed(runtime: Runtime, wanted: list[str]) -> None:
    dialect = runtime.engine.dialect.name
    bound = select(User.username).where(one_of(User.username, dialect, name="names"))
    fixed = select(User.username).where(one_of(User.username, dialect, values=wanted))
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        every = set(session.scalars(select(User.username)))
        got_bound = sorted(session.scalars(bound, {"names": wanted}))
        got_fixed = sorted(session.scalars(fixed))
    assert got_bound == got_fixed == sorted(every & set(wanted))


def test_one_statement_text_for_every_length_on_postgresql(runtime: Runtime) -> None:
    dialect = runtime.engine.dialect
    stmt = select(User.username).where(one_of(User.username, dialect.name, name="names"))
    sql = str(stmt.compile(dialect=dialect))
    if dialect.name == "postgresql":
        assert "ANY" in sql and "IN" not in sql.split("WHERE", 1)[1]
    else:
        assert "IN" in sql.split("WHERE", 1)[1]
