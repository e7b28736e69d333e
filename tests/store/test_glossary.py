"""The glossary names every table, every column (in its table's section), role and purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Table

import immigrationos.store.models  # noqa: F401  (registers every model)
from immigrationos.accounts.roles import Role
from immigrationos.gateway.purposes import Purpose
from immigrationos.store.base import Base

GLOSSARY = Path(__file__).resolve().parents[2] / "docs" / "glossary.md"
HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)


def _section(text: str, table: str) -> str:
    """From the heading naming ``table`` to the next heading of the same or higher level."""
    start = re.search(rf"^(#{{1,6}}) .*`{re.escape(table)}`", text, re.MULTILINE)
    assert start is not None, f"no heading names table `{table}`"
    level = len(start.group(1))
    for heading in HEADING.finditer(text, start.end()):
        if len(heading.group(1)) <= level:
            return text[start.start() : heading.start()]
    return text[start.start() :]


@pytest.mark.parametrize("table", Base.metadata.sorted_tables, ids=lambda t: t.name)
def test_every_table_and_column_is_in_the_glossary(table: Table) -> None:
    section = _section(GLOSSARY.read_text(encoding="utf-8"), table.name)
    missing = [c.name for c in table.columns if f"`{c.name}`" not in section]
    assert missing == [], f"columns of {table.name} missing from its glossary section: {missing}"


def test_every_role_and_purpose_is_in_the_glossary() -> None:
    text = GLOSSARY.read_text(encoding="utf-8")
    missing = [v.value for v in (*Role, *Purpose) if f"`{v.value}`" not in text]
    assert missing == [], f"roles or purposes missing from the glossary: {missing}"
