"""SQL that reads the same on both backends but runs better written per backend.

``column IN (…)`` with a list bound at run time (an *expanding* parameter) is rendered anew on
every execution: SQLAlchemy writes one placeholder per value, and on PostgreSQL a cast beside
each, so a worklist page's thirteen reads of 25 persons spent about 2.4 ms of Python a request
rendering SQL, and each list length was a new statement to the server. On PostgreSQL
:func:`one_of` binds the whole list as one array (``column = ANY(:ids)``): one statement text
for every length. The server took about 1.4 ms longer over those reads (an A/B on the
worklist), so the gain is the Python, the resource a loaded server runs short of. SQLite keeps
``IN``.

:func:`of_sources` limits a read to rows of some sources without handing SQLite an index it
would choose wrongly (below).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY


def one_of(
    column: Any, dialect: str, *, name: str | None = None, values: Sequence[str] = ()
) -> ColumnElement[bool]:
    """``column`` equal to one of the strings bound as ``name`` when the statement runs (a
    statement built once, run many times), or of ``values`` (fixed when it is built)."""
    if dialect == "postgresql":
        array = (
            bindparam(name, type_=ARRAY(String))
            if name
            else bindparam(None, list(values), type_=ARRAY(String))
        )
        result: ColumnElement[bool] = column == any_(array)
        return result
    if name:
        return column.in_(bindparam(name, expanding=True))
    return column.in_(list(values))


def of_sources(column: Any, dialect: str, allowed: Sequence[str]) -> ColumnElement[bool]:
    """Rows whose ``column`` (a source id) is one of ``allowed``, or null (no source).

    SQLite, which keeps no statistics here, takes ``source_id IN (…) OR source_id IS NULL``
    for a selective condition and answers it through the ``source_id`` index: a read of 256
    departures by event id walked every departure of the allowed sources (2.5 ms a read at
    9,000 departures, growing with the table) instead of 256 lookups in the event id's
    unique index. The same rows as ``ifnull(source_id, '') IN (…, '')`` (no source id is
    empty) leave the choice of index to the read's own conditions. PostgreSQL plans from
    statistics and keeps the plain form."""
    if dialect == "sqlite":
        return func.ifnull(column, "").in_([*allowed, ""])
    return one_of(column, dialect, values=allowed) | column.is_(None)
