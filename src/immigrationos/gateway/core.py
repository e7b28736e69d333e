"""The audited gateway: every read and write of personal data passes through :class:`Gateway`.

It takes the access context (actor, role, purpose, justification), enforces what the role may
do, performs the operation, and writes the audit entry in the same transaction. Sessions made
by :func:`guarded_sessions` refuse any ORM read or write of a personal-data table that does not
come through a gateway, so the rule holds by construction rather than by review.

Refusals must be on the record even though the refused transaction rolls back; the unit of
work (:func:`unit_of_work`) therefore writes them in a transaction of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Delete,
    Insert,
    Select,
    Update,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.sql.util import find_tables

import immigrationos.store.models  # noqa: F401  (registers every model before PERSONAL_TABLES)
from immigrationos.accounts.roles import ROLES
from immigrationos.audit.chain import emit
from immigrationos.audit.events import (
    AccessDenied,
    RecordCreated,
    RecordDeleted,
    RecordRead,
    RecordsDerived,
    RecordsSearched,
    RecordUpdated,
)
from immigrationos.core.errors import AccessRefused, NotFound
from immigrationos.gateway.context import AccessContext
from immigrationos.store.base import Base, is_personal
from immigrationos.store.engine import transaction

T = TypeVar("T", bound=Base)
_DEPTH = "immos.gateway.depth"
PERSONAL_TABLES = frozenset(
    str(mapper.class_.__tablename__)
    for mapper in Base.registry.mappers
    if is_personal(mapper.class_)
)


class Refused(AccessRefused):
    """An access refusal that carries what the audit log must say about it."""

    def __init__(
        self,
        message: str,
        operation: str,
        object_type: str | None = None,
        object_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.object_type = object_type
        self.object_ids = list(object_ids)

    def audit_event(self) -> AccessDenied:
        """The audit event that records this refusal."""
        return AccessDenied(
            operation=self.operation,
            reason=str(self),
            object_type=self.object_type,
            object_ids=self.object_ids,
        )


class Gateway:
    """Audited access to personal data for one actor and purpose, inside one transaction."""

    def __init__(self, session: Session, ctx: AccessContext) -> None:
        self.session = session
        self.ctx = ctx

    @contextmanager
    def _inside(self) -> Iterator[Session]:
        info = self.session.info
        info[_DEPTH] = info.get(_DEPTH, 0) + 1
        try:
            yield self.session
        finally:
            info[_DEPTH] -= 1

    def _require_personal_access(self, model: type[Base], operation: str) -> None:
        spec = ROLES[self.ctx.actor.role]
        if is_personal(model) and not spec.reads_personal_data:
            raise Refused(
                f"role {spec.role.value!r} has no access to personal data "
                f"({model.__tablename__}); separation of duties",
                operation,
                model.__tablename__,
            )

    def get(self, model: type[T], object_id: str) -> T:
        """One row by id; audited as a read. Raises :class:`NotFound` when absent."""
        self._require_personal_access(model, "read")
        with self._inside() as session:
            row = session.get(model, object_id)
        if row is None:
            raise NotFound(f"no {model.__tablename__} row {object_id!r}")
        self._audit(RecordRead(object_type=model.__tablename__, object_ids=[object_id]))
        return row

    def search(
        self,
        model: type[T],
        *where: ColumnElement[bool],
        params: dict[str, Any],
        order_by: Sequence[Any] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> list[T]:
        """Rows matching ``where``; audited with the search parameters and the result count."""
        stmt = select(model).where(*where).order_by(*order_by).limit(limit).offset(offset)
        return self.select(stmt, model, params=params)

    def select(self, stmt: Select[Any], model: type[Base], *, params: dict[str, Any]) -> list[Any]:
        """Run a prepared select over ``model``'s table; audited like :meth:`search`."""
        self._require_personal_access(model, "search")
        with self._inside() as session:
            rows = list(session.scalars(stmt).all())
        ids = [str(getattr(r, "id", "")) for r in rows[:1000] if hasattr(r, "id")]
        self._audit(
            RecordsSearched(
                object_type=model.__tablename__,
                object_ids=ids,
                search_params=params,
                result_count=len(rows),
            )
        )
        return rows

    def rows(self, stmt: Select[Any], model: type[Base], *, params: dict[str, Any]) -> list[Any]:
        """Run a select of columns (not whole objects) over ``model``'s table; audited."""
        self._require_personal_access(model, "search")
        with self._inside() as session:
            rows = list(session.execute(stmt).all())
        self._audit(RecordsSearched(object_type=model.__tablename__, search_params=params,
                                    result_count=len(rows)))
        return rows

    def execute(self, stmt: Update | Delete, model: type[Base], *,
                params: dict[str, Any]) -> int:
        """A bulk update or delete over ``model``'s table; audited with what it did and how many."""
        self._require_personal_access(model, "update" if isinstance(stmt, Update) else "delete")
        with self._inside() as session:
            count = int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
        if count:
            table = model.__tablename__
            if isinstance(stmt, Update):
                fields = sorted(c.key for c in stmt._values)  # noqa: SLF001 - SQLAlchemy's own
                self._audit(RecordUpdated(object_type=table, fields=fields, count=count,
                                          criteria=params))
            else:
                self._audit(RecordDeleted(object_type=table, count=count, criteria=params))
        return count

    def derive(self, model: type[Base], stmt: Insert, *, batch_id: str) -> int:
        """Run an ``INSERT … SELECT`` deriving facts from a batch's records; audited."""
        self._require_personal_access(model, "create")
        with self._inside() as session:
            count = int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
        self._audit(RecordsDerived(object_type=model.__tablename__, count=count,
                                   batch_id=batch_id))
        return count

    def count(self, model: type[Base], *where: ColumnElement[bool], params: dict[str, Any]) -> int:
        """How many rows match; audited as a search that returned a count only."""
        self._require_personal_access(model, "count")
        with self._inside() as session:
            total = session.scalar(select(func.count()).select_from(model).where(*where)) or 0
        self._audit(
            RecordsSearched(
                object_type=model.__tablename__, search_params=params, result_count=int(total)
            )
        )
        return int(total)

    def add(self, *objects: Base) -> None:
        """Create rows; one audit entry per table touched."""
        by_table: dict[str, list[str]] = {}
        for obj in objects:
            self._require_personal_access(type(obj), "create")
            by_table.setdefault(type(obj).__tablename__, []).append(str(getattr(obj, "id", "")))
        with self._inside() as session:
            session.add_all(objects)
            session.flush()
        for table, ids in by_table.items():
            self._audit(RecordCreated(object_type=table, object_ids=ids, count=len(ids)))

    def insert_rows(self, model: type[Base], rows: list[dict[str, Any]]) -> int:
        """Bulk-create rows (ingest speed); one audit entry for the batch with its ids."""
        if not rows:
            return 0
        self._require_personal_access(model, "create")
        with self._inside() as session:
            session.execute(insert(model), rows)
        ids = [str(r.get("id", "")) for r in rows]
        self._audit(RecordCreated(object_type=model.__tablename__, object_ids=ids, count=len(rows)))
        return len(rows)

    def update(self, obj: T, **changes: Any) -> T:
        """Change fields of a row; the audit entry names the fields changed, not their values."""
        self._require_personal_access(type(obj), "update")
        changed = sorted(k for k, v in changes.items() if getattr(obj, k) != v)
        with self._inside() as session:
            for name in changed:
                setattr(obj, name, changes[name])
            session.flush()
        if changed:
            self._audit(
                RecordUpdated(
                    object_type=type(obj).__tablename__,
                    object_ids=[str(getattr(obj, "id", ""))],
                    fields=changed,
                )
            )
        return obj

    def delete(self, objects: Iterable[Base]) -> int:
        """Delete rows; audited with their ids."""
        objs = list(objects)
        by_table: dict[str, list[str]] = {}
        for obj in objs:
            self._require_personal_access(type(obj), "delete")
            by_table.setdefault(type(obj).__tablename__, []).append(str(getattr(obj, "id", "")))
        with self._inside() as session:
            for obj in objs:
                session.delete(obj)
            session.flush()
        for table, ids in by_table.items():
            self._audit(RecordDeleted(object_type=table, object_ids=ids, count=len(ids)))
        return len(objs)

    def _audit(self, audit_event: Any) -> None:
        emit(self.session, audit_event, self.ctx)


def _inside_gateway(session: Session) -> bool:
    return bool(session.info.get(_DEPTH, 0))


def _check_execute(state: ORMExecuteState) -> None:
    if _inside_gateway(state.session):
        return
    statement = state.statement
    if not isinstance(statement, ClauseElement):
        return
    touched = {str(getattr(t, "name", "")) for t in find_tables(statement, include_crud=True)}
    personal = touched & PERSONAL_TABLES
    if personal:
        raise AccessRefused(
            f"personal data ({', '.join(sorted(personal))}) may only be read or written "
            "through the audited gateway"
        )


def _check_flush(session: Session, _context: Any, _instances: Any) -> None:
    if _inside_gateway(session):
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if is_personal(type(obj)):
            raise AccessRefused(
                f"personal data ({type(obj).__tablename__}) may only be written through "
                "the audited gateway"
            )


def guard(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Make every session of ``factory`` refuse personal-data access outside a gateway."""
    event.listen(factory, "do_orm_execute", _check_execute)
    event.listen(factory, "before_flush", _check_flush)
    return factory


@contextmanager
def unit_of_work(factory: sessionmaker[Session], ctx: AccessContext) -> Iterator[Gateway]:
    """A transaction with a gateway; a refusal is rolled back, then audited on its own."""
    try:
        with transaction(factory) as session:
            yield Gateway(session, ctx)
    except Refused as refusal:
        with transaction(factory) as session:
            emit(session, refusal.audit_event(), ctx)
        raise
