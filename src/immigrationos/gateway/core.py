"""The audited gateway: every read and write of personal data passes through :class:`Gateway`.

It takes the access context (actor, role, purpose, justification), enforces what the role may
do, performs the operation, and writes the audit entry in the same transaction. Sessions made
by :func:`guarded_sessions` refuse any ORM read or write of a personal-data table that does not
come through a gateway, so the rule holds by construction rather than by review.

Refusals must be on the record even though the refused transaction rolls back; the unit of
work (:func:`unit_of_work`) therefore writes them in a transaction of their own.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, sessionmaker
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
from immigrationos.sources.access import AgreementIndex, subject_filter
from immigrationos.sources.models import DisclosureRequest, SourceRecord
from immigrationos.store import bulk
from immigrationos.store.base import Base, is_personal
from immigrationos.store.engine import transaction
from immigrationos.store.sql import of_sources

T = TypeVar("T", bound=Base)
V = TypeVar("V")
_DEPTH = "immos.gateway.depth"
PERSONAL_TABLES = frozenset(
    str(mapper.class_.__tablename__)
    for mapper in Base.registry.mappers
    if is_personal(mapper.class_)
)


class Refused(AccessRefused):
    """An access refusal that carries what the audit log must say about it, and who asked."""

    def __init__(
        self,
        message: str,
        operation: str,
        object_type: str | None = None,
        object_ids: Sequence[str] = (),
        ctx: AccessContext | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.object_type = object_type
        self.object_ids = list(object_ids)
        self.ctx = ctx

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
        self._agreements: AgreementIndex | None = None
        self._disclosures: dict[str, DisclosureRequest] = {}

    @contextmanager
    def _inside(self) -> Iterator[Session]:
        info = self.session.info
        info[_DEPTH] = info.get(_DEPTH, 0) + 1
        try:
            yield self.session
        finally:
            info[_DEPTH] -= 1

    def _refuse(
        self, message: str, operation: str, table: str | None = None, ids: Sequence[str] = ()
    ) -> Refused:
        return Refused(message, operation, table, ids, self.ctx)

    def _require_personal_access(self, model: type[Base], operation: str) -> None:
        spec = ROLES[self.ctx.actor.role]
        if is_personal(model) and not spec.reads_personal_data:
            raise self._refuse(
                f"role {spec.role.value!r} has no access to personal data "
                f"({model.__tablename__}); separation of duties",
                operation,
                model.__tablename__,
            )

    # -- purpose enforcement (agreements) -------------------------------------------------

    @property
    def agreements(self) -> AgreementIndex:
        """The agreements in force, read once per unit of work.

        A plain lazy attribute, not ``functools.cached_property``: on Python 3.11 that takes
        one lock shared by every instance, so two threads (API requests on SQLite) could each
        wait for the other, one on that lock and one on the database's write lock."""
        if self._agreements is None:
            self._agreements = AgreementIndex(self.session)
        return self._agreements

    def require_source(self, source_id: str, operation: str = "read") -> None:
        """Refuse unless the context's purpose may read ``source_id`` (names the agreement)."""
        decision = self.agreements.decide(source_id, self.ctx)
        if not decision.allowed:
            raise self._refuse(decision.reason, operation, "sources", [source_id])
        if self.agreements.terms[source_id].per_request and self.ctx.request_id:
            self._disclosure(source_id)

    def _disclosure(self, source_id: str) -> DisclosureRequest:
        """The context's disclosure request for ``source_id``, checked for this use."""
        if source_id in self._disclosures:
            return self._disclosures[source_id]
        with self._inside() as session:
            request = session.get(DisclosureRequest, self.ctx.request_id)
        problem = _disclosure_problem(request, source_id, self.ctx)
        if problem or request is None:
            raise self._refuse(
                f"disclosure request {self.ctx.request_id!r}: {problem}",
                "read",
                "disclosure_requests",
                [str(self.ctx.request_id)],
            )
        self._disclosures[source_id] = request
        return request

    def _scope(self, stmt: Select, model: type[Base]) -> tuple[Select, dict[str, str]]:
        """Limit a select over a sourced table to what the purpose may read."""
        column = model.__table__.c.get("source_id")
        if column is None:
            return stmt, {}
        allowed, withheld = self.agreements.permitted_sources(self.ctx)
        dialect = self.session.get_bind().dialect.name
        stmt = _scoped(stmt, column, tuple(allowed), dialect)
        if not self.ctx.request_id:
            return stmt, withheld
        for source_id in allowed:
            if self.agreements.terms[source_id].per_request:
                covered = subject_filter(self._disclosure(source_id))
                if model is not SourceRecord:
                    covered = model.__table__.c.source_record_id.in_(
                        select(SourceRecord.id).where(SourceRecord.source_id == source_id, covered)
                    )
                stmt = stmt.where(or_(column != source_id, covered))
        return stmt, withheld

    def _check_row(self, model: type[Base], row: Any, object_id: str) -> None:
        source_id = getattr(row, "source_id", None)
        if source_id is None or model.__table__.c.get("source_id") is None:
            return
        self.require_source(source_id)
        if self.agreements.terms[source_id].per_request and self.ctx.request_id:
            stmt, _ = self._scope(
                select(model.__table__.c.id).where(model.__table__.c.id == object_id), model
            )
            with self._inside() as session:
                if session.execute(stmt).first() is None:
                    raise self._refuse(
                        "the record is outside what the disclosure request names",
                        "read",
                        model.__tablename__,
                        [object_id],
                    )

    def _present(self, rows: list[Any]) -> list[Any]:
        """Hide payload fields a purpose may not see (on detached copies, never in the store)."""
        for row in rows:
            if isinstance(row, SourceRecord):
                shown, hidden = self.agreements.visible_payload(row, self.ctx)
                if hidden:
                    self.session.expunge(row)
                    row.payload = shown
                row.hidden_fields = hidden  # type: ignore[attr-defined]
        return rows

    # -- reads ----------------------------------------------------------------------------

    def get(self, model: type[T], object_id: str) -> T:
        """One row by id; audited as a read. Raises :class:`NotFound` when absent.

        A row from a source whose agreement does not permit the purpose is refused.
        """
        self._require_personal_access(model, "read")
        with self._inside() as session:
            row = session.get(model, object_id)
        if row is None:
            raise NotFound(f"no {model.__tablename__} row {object_id!r}")
        self._check_row(model, row, object_id)
        self._audit(RecordRead(object_type=model.__tablename__, object_ids=[object_id]))
        return self._present([row])[0]

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

    def select(self, stmt: Select, model: type[Base], *, params: dict[str, Any]) -> list[Any]:
        """Run a prepared select over ``model``'s table; audited like :meth:`search`.

        Rows of sources the purpose may not read are left out, and the audit entry says
        which sources were withheld and why.
        """
        self._require_personal_access(model, "search")
        stmt, withheld = self._scope(stmt, model)
        with self._inside() as session:
            rows = list(session.scalars(stmt).all())
        ids = [str(getattr(r, "id", "")) for r in rows[:1000] if hasattr(r, "id")]
        self._audit(
            RecordsSearched(
                object_type=model.__tablename__,
                object_ids=ids,
                search_params=params,
                result_count=len(rows),
                withheld_sources=withheld,
            )
        )
        return self._present(rows)

    def rows(self, stmt: Select, model: type[Base], *, params: dict[str, Any]) -> list[Any]:
        """Run a select of columns (not whole objects) over ``model``'s table; audited."""
        self._require_personal_access(model, "search")
        stmt, withheld = self._scope(stmt, model)
        with self._inside() as session:
            rows = list(_execute(session, stmt).all())
        self._audit(
            RecordsSearched(
                object_type=model.__tablename__,
                search_params=params,
                result_count=len(rows),
                withheld_sources=withheld,
            )
        )
        return rows

    def bundle(
        self,
        queries: dict[str, tuple[Select, type[Base]]],
        *,
        params: dict[str, Any],
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, list[Any]]:
        """Several selects read together as one file (a case's guards need a dozen tables).

        Each select is scoped like :meth:`select`; one audit entry (object type: the
        ``file`` parameter) names every table read and how many rows each gave. ``values``
        fills the selects' bound parameters (prepared selects, built once, are reused).
        """
        out: dict[str, list[Any]] = {}
        counts: dict[str, int] = {}
        withheld_all: dict[str, str] = {}
        for name, (stmt, model) in queries.items():
            self._require_personal_access(model, "search")
            scoped, withheld = self._scope(stmt, model)
            with self._inside() as session:
                out[name] = list(_execute(session, scoped, values).all())
            counts[model.__tablename__] = counts.get(model.__tablename__, 0) + len(out[name])
            withheld_all.update(withheld)
        self._audit(
            RecordsSearched(
                object_type=str(params.get("file", "file")),
                search_params={**params, "rows_by_table": counts},
                result_count=sum(counts.values()),
                withheld_sources=withheld_all,
            )
        )
        return out

    def execute(self, stmt: Update | Delete, model: type[Base], *, params: dict[str, Any]) -> int:
        """A bulk update or delete over ``model``'s table; audited with what it did and how many."""
        self._require_personal_access(model, "update" if isinstance(stmt, Update) else "delete")
        with self._inside() as session:
            result: Any = session.execute(stmt.execution_options(preserve_rowcount=True))
            count = int(result.rowcount or 0)
        if count:
            table = model.__tablename__
            if isinstance(stmt, Update):
                fields = sorted(str(getattr(c, "key", c)) for c in (stmt._values or {}))
                self._audit(
                    RecordUpdated(object_type=table, fields=fields, count=count, criteria=params)
                )
            else:
                self._audit(RecordDeleted(object_type=table, count=count, criteria=params))
        return count

    def derive(self, model: type[Base], stmt: Insert, *, batch_id: str) -> int:
        """Run an ``INSERT … SELECT`` deriving facts from a batch's records; audited."""
        self._require_personal_access(model, "create")
        with self._inside() as session:
            result: Any = session.execute(stmt.execution_options(preserve_rowcount=True))
            count = int(result.rowcount or 0)
        self._audit(RecordsDerived(object_type=model.__tablename__, count=count, batch_id=batch_id))
        return count

    def count(
        self, model: type[Base], *where: ColumnElement[bool] | Mapped[bool], params: dict[str, Any]
    ) -> int:
        """How many rows match; audited as a search that returned a count only."""
        self._require_personal_access(model, "count")
        stmt, withheld = self._scope(select(func.count()).select_from(model).where(*where), model)
        with self._inside() as session:
            total = session.scalar(stmt) or 0
        self._audit(
            RecordsSearched(
                object_type=model.__tablename__,
                search_params=params,
                result_count=int(total),
                withheld_sources=withheld,
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
            bulk.insert(session.connection(), model.__table__, rows)  # type: ignore[arg-type]
        ids = [str(r.get("id", "")) for r in rows]
        self._audit(RecordCreated(object_type=model.__tablename__, object_ids=ids, count=len(rows)))
        return len(rows)

    def insert_columns(self, model: type[Base], columns: dict[str, list[Any]]) -> int:
        """Bulk-create rows given column by column; one audit entry with their ids."""
        ids = [str(i) for i in columns.get("id", [])]
        if not ids:
            return 0
        self._require_personal_access(model, "create")
        with self._inside() as session:
            bulk.insert_columns(session.connection(), model.__table__, columns)  # type: ignore[arg-type]
        self._audit(RecordCreated(object_type=model.__tablename__, object_ids=ids, count=len(ids)))
        return len(ids)

    def insert_bulk(
        self,
        model: type[Base],
        columns: Mapping[str, Any] | Iterable[Mapping[str, Any]],
        event: Any,
        partition: str | None = None,
    ) -> int:
        """Bulk-create rows without per-row ids (a run's scores), given as columns or as
        chunks of columns written as they come, all in this unit of work's transaction;
        ``event`` says what and how many, in one audit entry. ``partition``: the value every
        row holds in the key the table is list-partitioned by on PostgreSQL (the rows load
        as that partition, see :func:`immigrationos.store.bulk.insert_partition`)."""
        chunks = [columns] if isinstance(columns, Mapping) else columns
        self._require_personal_access(model, "create")
        table: Any = model.__table__
        with self._inside() as session:
            connection = session.connection()
            if partition is not None:
                count = bulk.insert_partition(connection, table, partition, chunks)
            else:
                count = sum(bulk.insert_columns(connection, table, chunk) for chunk in chunks)
        if count:
            self._audit(event)
        return count

    def update_rows(self, model: type[Base], rows: list[dict[str, Any]]) -> int:
        """Bulk-update rows by primary key (each dict holds ``id`` and the new values).

        One audit entry names the fields changed and how many rows, not the values.
        """
        if not rows:
            return 0
        self._require_personal_access(model, "update")
        with self._inside() as session:
            session.execute(update(model), rows)
        fields = sorted({k for r in rows for k in r} - {"id"})
        ids = [str(r["id"]) for r in rows[:1000]]
        self._audit(
            RecordUpdated(
                object_type=model.__tablename__, object_ids=ids, fields=fields, count=len(rows)
            )
        )
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


def _remembered(memo: weakref.WeakKeyDictionary[Any, V], key: Any, make: Callable[[], V]) -> V:
    """``memo[key]``, made by ``make`` the first time: what is worked out from a statement is
    remembered for as long as the statement lives (the statements every request runs are built
    once per process). A key that cannot be weakly referenced is worked out every time."""
    try:
        return memo[key]
    except KeyError:
        pass
    except TypeError:
        return make()
    value = memo[key] = make()
    return value


_SCOPED: weakref.WeakKeyDictionary[Select, dict[tuple[Any, ...], Select]] = (
    weakref.WeakKeyDictionary()
)


def _scoped(stmt: Select, column: Any, allowed: tuple[str, ...], dialect: str) -> Select:
    """``stmt`` limited to rows of the ``allowed`` sources (or none), made once per statement
    and set of sources: a statement scoped anew on every read had its cache key computed anew
    on every run (~0.2 ms each)."""
    by_sources = _remembered(_SCOPED, stmt, dict)
    key = (allowed, dialect)
    if key not in by_sources:
        by_sources[key] = stmt.where(of_sources(column, dialect, allowed))
    return by_sources[key]


def _inside_gateway(session: Session) -> bool:
    return bool(session.info.get(_DEPTH, 0))


_COLUMNS_ONLY: weakref.WeakKeyDictionary[Select, bool] = weakref.WeakKeyDictionary()


def _execute(session: Session, stmt: Select, values: Mapping[str, Any] | None = None) -> Any:
    """Run a select for rows. One of columns only runs on the session's connection: the ORM's
    execution (events, loading) cost ~0.1 ms a statement and gave nothing to rows of plain
    values. The session's pending changes are flushed first, as the ORM would."""
    if not _columns_only(stmt):
        return session.execute(stmt, values)
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()
    return session.connection().execute(stmt, values)


def _columns_only(stmt: Select) -> bool:
    """Whether ``stmt`` selects no mapped entity (remembered per statement)."""
    return _remembered(
        _COLUMNS_ONLY,
        stmt,
        lambda: all(not isinstance(d["type"], type) for d in stmt.column_descriptions),
    )


_TOUCHED: weakref.WeakKeyDictionary[ClauseElement, frozenset[str]] = weakref.WeakKeyDictionary()


def _personal_tables(statement: ClauseElement) -> frozenset[str]:
    """The personal tables ``statement`` touches (remembered per statement: the statements
    every request runs outside a gateway, built once, are walked once)."""

    def walk() -> frozenset[str]:
        found = find_tables(statement, include_crud=True)
        return frozenset(str(getattr(t, "name", "")) for t in found) & PERSONAL_TABLES

    return _remembered(_TOUCHED, statement, walk)


def _check_execute(state: ORMExecuteState) -> None:
    if _inside_gateway(state.session):
        return
    statement = state.statement
    if not isinstance(statement, ClauseElement):
        return
    personal = _personal_tables(statement)
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


def _disclosure_problem(
    request: DisclosureRequest | None, source_id: str, ctx: AccessContext
) -> str | None:
    """Why a disclosure request does not authorize this use, or None when it does."""
    from immigrationos.core.clock import utcnow

    if request is None:
        return "no such request"
    checks = [
        (request.source_id == source_id, f"covers source {request.source_id!r}, not {source_id!r}"),
        (request.status == "active", f"is {request.status}"),
        (request.requested_by == ctx.actor.user_id, "may be used only by the officer who made it"),
        (request.purpose == ctx.purpose.value, f"was made for purpose {request.purpose!r}"),
        (
            ctx.case_id == request.investigation,
            f"serves investigation {request.investigation!r}; declare it as the case",
        ),
        (request.expires_at is None or request.expires_at > utcnow(), "has expired"),
    ]
    return next((message for ok, message in checks if not ok), None)
