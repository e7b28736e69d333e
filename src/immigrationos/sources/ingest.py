"""Ingest a source's input into versioned source records, quarantine, and ontology facts.

The pipeline, per block of rows (memory bounded by the block, not the file):

1. read: Arrow columns for CSV and Parquet where the fast path can take the block
   (:mod:`.columnar`), else rows with their numbers and original bytes (:mod:`.readers`);
2. validate and clean against the definition (vector checks, with the row validator of
   :mod:`.validate` as the authority); a refused row is quarantined with its reason, message
   and original bytes: nothing is dropped;
3. plan (:mod:`.plan`): payload JSON, content hashes and repeated keys set-based; a
   content-derived id per row; an unchanged row is recognised, a changed row becomes the
   next version pointing at the one it supersedes;
4. write: records, quarantine rows and the facts the new records imply, at driver speed;
   facts of superseded versions retired, facts of unchanged rows marked seen again.

Steps 1 and 2 (and the database-free part of 3) run in a background thread a bounded number
of blocks ahead of the writer (:mod:`.pipeline`). A large input into empty tables has their
plain indexes (and on PostgreSQL their unique constraints and the foreign keys between them)
dropped first and rebuilt after the last block, inside the same transaction. After the last
block, addresses shared by many people are flagged. Every write passes the gateway and is
audited. The batch report always reconciles: ``read == loaded + unchanged + quarantined``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from immigrationos.audit.chain import emit
from immigrationos.audit.events import BatchIngested
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.core.ids import file_sha256, new_id
from immigrationos.facts.models import Address
from immigrationos.gateway.core import Gateway
from immigrationos.persons.models import Identifier
from immigrationos.sources import readers
from immigrationos.sources.definition import FactMapping, SourceDefinition, parse_definition
from immigrationos.sources.derivers import DERIVERS
from immigrationos.sources.mapping import fact_tables, flat_columns, flat_rows, table_model
from immigrationos.sources.models import (
    DataSharingAgreement,
    IngestBatch,
    QuarantinedRow,
    Source,
    SourceRecord,
)
from immigrationos.sources.pipeline import Prefetch, ProcessPrefetch, ReaderUnavailable
from immigrationos.sources.plan import (
    BatchReport,
    ChunkPlan,
    ColumnPlan,
    Known,
    Lookup,
    Prepared,
    plan_prepared,
    prepared_input,
)
from immigrationos.sources.registry import agreement_in_force
from immigrationos.store import bulk
from immigrationos.store.base import Base

Progress = Callable[[int], None]
#: A load of at least this many rows refreshes the planner's statistics of the tables it
#: wrote (:func:`bulk.analyze`; PostgreSQL only).
ANALYZE_AFTER_ROWS = 1_000
#: An input at least this large, loaded into empty tables, has their plain indexes dropped
#: first and rebuilt once at the end (sorting once beats maintaining them row by row).
DEFER_INDEXES_BYTES = 8 * 2**20
#: An input file at least this large is read and validated by a separate process (a second
#: or so to start; no lock shared with the writer), a smaller one by a thread.
READ_AHEAD_PROCESS_BYTES = 8 * 2**20
#: An address shared by more distinct people than this is flagged (a mail drop, a shelter,
#: a placeholder) and never used as evidence of where one of them lives.
REUSED_ADDRESS_THRESHOLD = 20


def _latest_versions(gateway: Gateway, source_id: str, keys: list[str]) -> Known:
    """For each key already stored: (latest version, its content hash, its id)."""
    if not keys:
        return {}
    stmt = select(
        SourceRecord.record_key, SourceRecord.version, SourceRecord.content_hash, SourceRecord.id
    ).where(SourceRecord.source_id == source_id, SourceRecord.record_key.in_(keys))
    rows = gateway.rows(
        stmt,
        SourceRecord,
        params={"source": source_id, "lookup": "latest-versions", "keys": len(keys)},
    )
    known: Known = {}
    for key, version, digest, record_id_ in rows:
        if key not in known or version > known[key][0]:
            known[key] = (version, digest, record_id_)
    return known


class Ingest:
    """One ingest run of one input into one source, inside the caller's transaction."""

    def __init__(
        self,
        session: Session,
        gateway: Gateway,
        source_id: str,
        location: str | Path,
        format_override: str | None = None,
    ) -> None:
        self.session, self.gateway, self.location = session, gateway, location
        self.definition, self.agreement = definition_of(session, source_id)
        if format_override:
            self.definition = self.definition.model_copy(update={"format": format_override})
        self.fact_models = [table_model(t) for t in fact_tables(self.definition)]
        self.written: list[type[Base]] = [SourceRecord, *self.fact_models]
        """Every table the load writes: the records, then the facts."""

    def run(
        self, progress: Progress | None = None, chunk_rows: int = readers.CHUNK_ROWS
    ) -> BatchReport:
        """Read, validate, load, derive; return the reconciled report."""
        batch = self._start()
        report = BatchReport(batch.id, self.definition.id)
        deferred = self._defer_indexes()
        self._blocks_into(batch.id, report, chunk_rows, progress)
        bulk.recreate_indexes(self.session.connection(), deferred)
        self._after_blocks(report)
        self._finish(batch, report)
        if report.loaded >= ANALYZE_AFTER_ROWS:
            tables = [m.__tablename__ for m in self.written]
            bulk.analyze(self.session.connection(), tables)
        return report

    def _blocks_into(
        self, batch_id: str, report: BatchReport, chunk_rows: int, progress: Progress | None
    ) -> None:
        """Plan and write every block of the input, read and validated ahead of the writer."""
        where = str(self.location)
        first_load = not self._has_records()

        def stored(keys: list[str]) -> Known:
            return _latest_versions(self.gateway, self.definition.id, keys)

        # Earlier versions come from the store. On a source's first load there are none;
        # keys repeated within this input are caught when blocks are prepared instead.
        lookup = None if first_load else stored
        args = (self.location, self.definition, chunk_rows)
        # A large file is read by a process (no lock shared with the writer), else by a
        # thread; a process that cannot start hands over nothing, so a thread takes over.
        if self._input_bytes() >= READ_AHEAD_PROCESS_BYTES:
            try:
                with ProcessPrefetch(prepared_input, args) as ahead:
                    self._write_blocks(ahead, batch_id, where, lookup, report, progress)
                report.reader_peak_rss_mib = ahead.peak_rss_mib
                return
            except ReaderUnavailable:
                pass
        with Prefetch(prepared_input(*args)) as blocks:
            self._write_blocks(blocks, batch_id, where, lookup, report, progress)

    def _write_blocks(
        self,
        blocks: Iterable[Prepared],
        batch_id: str,
        where: str,
        lookup: Lookup,
        report: BatchReport,
        progress: Progress | None,
    ) -> None:
        for ready in blocks:
            plan = plan_prepared(ready, self.definition, batch_id, where, lookup, report)
            self._write(plan, report)
            if progress:
                progress(ready.size)

    def _input_bytes(self) -> int:
        """The input file's size (0 for a database query)."""
        location = Path(self.location)
        if self.definition.format == "postgresql" or not location.is_file():
            return 0
        return location.stat().st_size

    def _defer_indexes(self) -> list[str]:
        """For a large input into empty tables: drop their plain indexes (and on PostgreSQL
        their unique constraints and the foreign keys between them), return the DDL that
        rebuilds them after the last block.

        All in this transaction: a failed load leaves them as they were, and adding a unique
        constraint or a foreign key back checks every row, so nothing unchecked is ever
        committed."""
        if self._input_bytes() < DEFER_INDEXES_BYTES:
            return []
        empty = [m.__tablename__ for m in self.written if self._empty(m)]
        connection = self.session.connection()
        indexes = bulk.drop_secondary_indexes(connection, empty)
        unique = bulk.drop_unique_constraints(connection, empty)
        return indexes + unique + bulk.drop_foreign_keys(connection, empty)

    def _empty(self, model: type[Base]) -> bool:
        """Whether a table holds no row at all (one id looked for, audited, no values read)."""
        stmt = select(model.__table__.c.id).limit(1)
        return not self.gateway.rows(stmt, model, params={"lookup": "table-empty"})

    def _has_records(self) -> bool:
        """Whether the source holds any record yet (a count of ids, audited, no values read)."""
        stmt = select(SourceRecord.id).where(SourceRecord.source_id == self.definition.id)
        return bool(
            self.gateway.rows(
                stmt.limit(1),
                SourceRecord,
                params={"source": self.definition.id, "lookup": "any-records"},
            )
        )

    def _start(self) -> IngestBatch:
        path = Path(self.location)
        is_file = self.definition.format != "postgresql"
        if is_file and not path.is_file():
            raise ValidationFailed(f"{path}: no such file; nothing was loaded")
        digest = file_sha256(path) if is_file else None
        header = None
        if self.definition.format == "csv":
            with path.open("rb") as handle:
                header = handle.readline().decode(self.definition.encoding, "replace")
        batch = IngestBatch(
            input_header=header,
            id=new_id("bat"),
            source_id=self.definition.id,
            agreement_id=self.agreement.id,
            input_uri=str(self.location) if digest else "postgresql (query)",
            input_sha256=digest,
            started_by=self.gateway.ctx.actor.user_id,
        )
        self.session.add(batch)
        self.session.flush()
        return batch

    def _write(self, plan: ChunkPlan, report: BatchReport) -> None:
        if plan.superseded:
            self._retire(plan.superseded)
        self.gateway.insert_rows(SourceRecord, plan.records)
        self.gateway.insert_rows(QuarantinedRow, plan.quarantined)
        for mapping in self.definition.facts:
            tables = DERIVERS[mapping.deriver].tables if mapping.deriver else (mapping.table,)
            derived = self._derived(mapping, plan)
            for table in tables:
                rows = derived.get(table, [])
                report.derived[table] += self.gateway.insert_rows(table_model(table), rows)
        if plan.columns is not None:
            self._write_columns(plan.columns, report)
        if plan.unchanged:
            now = utcnow()
            for model in self.fact_models:
                column = model.__table__.c.source_record_id
                self.gateway.execute(
                    update(model).where(column.in_(plan.unchanged)).values(last_seen_at=now),
                    model,
                    params={"seen-again": len(plan.unchanged)},
                )

    def _write_columns(self, columns: ColumnPlan, report: BatchReport) -> None:
        """A columnar block's new records and the facts they imply, column by column."""
        records = columns.records
        if not records["id"]:
            return
        self.gateway.insert_columns(SourceRecord, records)
        seen_at = records["ingested_at"][0]
        ids = pa.array(records["id"], pa.string())
        for mapping in self.definition.facts:
            if mapping.deriver:  # nested sources never take the columnar path
                raise AssertionError(f"deriver {mapping.deriver!r} on a columnar block")
            facts = flat_columns(mapping, ids, self.definition.id, seen_at, columns.fields)
            report.derived[mapping.table] += self.gateway.insert_columns(
                table_model(mapping.table), facts
            )

    def _derived(self, mapping: FactMapping, plan: ChunkPlan) -> dict[str, list[dict[str, Any]]]:
        """The facts one mapping derives from a chunk's new records."""
        if not mapping.deriver:
            return {mapping.table: flat_rows(mapping, plan.records, plan.payloads)}
        derived: dict[str, list[dict[str, Any]]] = {}
        derive = DERIVERS[mapping.deriver].derive
        for record, payload in zip(plan.records, plan.payloads, strict=True):
            facts = derive((record["id"], record["source_id"], payload, record["ingested_at"]))
            for table, rows in facts.items():
                derived.setdefault(table, []).extend(rows)
        return derived

    def _retire(self, record_ids: list[str]) -> None:
        for model in reversed(self.fact_models):  # children before parents
            column = model.__table__.c.source_record_id
            self.gateway.execute(
                delete(model).where(column.in_(record_ids)),
                model,
                params={"superseded-records": len(record_ids)},
            )

    def _after_blocks(self, report: BatchReport) -> None:
        """Batch-level steps after every chunk: flag addresses shared by many people."""
        if "addresses" in fact_tables(self.definition):
            report.flagged["reused-address"] += flag_reused_addresses(self.gateway)

    def _finish(self, batch: IngestBatch, report: BatchReport) -> None:
        if not report.reconciles:  # a bug, never an input problem: refuse to record it
            raise AssertionError(f"batch {batch.id} does not reconcile: {report}")
        batch.read_count, batch.loaded_count = report.read, report.loaded
        batch.unchanged_count, batch.quarantined_count = report.unchanged, report.quarantined
        batch.quarantine_reasons = dict(report.quarantine_reasons)
        batch.dropped_fields = dict(report.dropped_fields)
        batch.status, batch.finished_at = "finished", utcnow()
        emit(
            self.session,
            BatchIngested(
                object_type="ingest_batches",
                object_ids=[batch.id],
                read=report.read,
                loaded=report.loaded,
                unchanged=report.unchanged,
                quarantined=report.quarantined,
            ),
            self.gateway.ctx,
        )


def flag_reused_addresses(gateway: Gateway) -> int:
    """Flag addresses shared by more taxpayers than the threshold; never evidence of residence."""
    people = (
        select(
            Address.line,
            Address.postcode,
            func.count(func.distinct(Identifier.value)).label("people"),
        )
        .join(
            Identifier,
            (Identifier.source_record_id == Address.source_record_id)
            & Identifier.kind.in_(("itin", "a_number")),
        )
        .where(Address.line.is_not(None))
        .group_by(Address.line, Address.postcode)
        .having(func.count(func.distinct(Identifier.value)) > REUSED_ADDRESS_THRESHOLD)
    )
    flagged = 0
    for line, postcode, count in gateway.rows(
        people, Address, params={"lookup": "reused-addresses"}
    ):
        flagged += gateway.execute(
            update(Address)
            .where(
                Address.line == line, Address.postcode == postcode, Address.placeholder.is_(False)
            )
            .values(
                placeholder=True,
                flag_reason=f"address shared by {count} taxpayers (over "
                f"{REUSED_ADDRESS_THRESHOLD}): not evidence of residence",
            ),
            Address,
            params={"flag": "reused-address"},
        )
    return flagged


def definition_of(
    session: Session, source_id: str
) -> tuple[SourceDefinition, DataSharingAgreement]:
    """A registered source's definition and the agreement in force."""
    source = session.get(Source, source_id)
    if source is None:
        raise NotFound(f"no source {source_id!r}; register it first")
    agreement = agreement_in_force(session, source_id)
    if agreement is None:
        raise ValidationFailed(f"source {source_id!r} has no agreement; nothing may be ingested")
    return parse_definition(source.definition, f"source {source_id}"), agreement


def ingest_file(
    session: Session,
    gateway: Gateway,
    source_id: str,
    location: str | Path,
    progress: Progress | None = None,
    chunk_rows: int = readers.CHUNK_ROWS,
    format_override: str | None = None,
) -> BatchReport:
    """Ingest ``location`` (a file, or a DSN for PostgreSQL sources) into ``source_id``.

    ``format_override`` reads the input in another format than the source declares (the
    quarantine re-runs Parquet and PostgreSQL rows from their JSON form).
    """
    return Ingest(session, gateway, source_id, location, format_override).run(progress, chunk_rows)
