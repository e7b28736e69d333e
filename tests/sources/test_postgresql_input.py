"""A PostgreSQL table or query as an input: streamed through a server-side cursor, validated,
idempotent, into either store backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from tests.conftest import PG_URL, _pg_admin, require_postgres

from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.models import QuarantinedRow, SourceRecord
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.DATA_INTEGRATION, "postgresql input test")


@pytest.fixture
def source_dsn() -> Iterator[str]:
    """A scratch database holding an agency's table of people (the source system)."""
    require_postgres()
    name = f"immos_src_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    dsn = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA agency")
        conn.execute(
            "CREATE TABLE agency.people (rid text, family_name text, birth_date date, sex text)"
        )
        conn.execute(
            "INSERT INTO agency.people SELECT 'r' || g, 'Name' || g, "
            "DATE '1980-01-01' + g, CASE WHEN g % 500 = 0 THEN 'U' ELSE 'F' END "
            "FROM generate_series(1, 12000) AS g"
        )
    try:
        yield dsn
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _definition(**where: str) -> SourceDefinition:
    return SourceDefinition.model_validate(
        {
            "id": "agency_people",
            "name": "Agency people",
            "format": "postgresql",
            **where,
            "record_key": "rid",
            "fields": {
                "rid": "string",
                "family_name": "name",
                "birth_date": "date",
                "sex": {"type": "code", "codes": ["M", "F", "X"]},
            },
            "agreement": {
                "legal_authority": "Synthetic test authority for a database source",
                "permitted_purposes": ["case-processing"],
                "allowed_fields": ["rid", "family_name", "birth_date", "sex"],
                "retention_days": 30,
            },
        }
    )


@pytest.mark.parametrize(
    "where",
    [{"table": "agency.people"}, {"query": "SELECT * FROM agency.people WHERE rid <> 'r1'"}],
)
def test_a_table_or_query_ingests_in_chunks(
    runtime: Runtime, source_dsn: str, where: dict[str, str]
) -> None:
    with transaction(runtime.sessions) as session:
        register(session, _definition(**where), CTX)
    with unit_of_work(runtime.sessions, CTX) as gw:
        report = ingest_file(gw.session, gw, "agency_people", source_dsn, chunk_rows=1000)
    expected = 12000 - (1 if "query" in where else 0)
    assert report.read == expected and report.reconciles
    assert report.quarantined == 24 and report.quarantine_reasons == {"code": 24}
    with unit_of_work(runtime.sessions, CTX) as gw:
        again = ingest_file(gw.session, gw, "agency_people", source_dsn, chunk_rows=1000)
        assert again.loaded == 0 and again.unchanged == report.loaded
        row = gw.search(QuarantinedRow, params={}, limit=1)[0]
        record = gw.search(SourceRecord, SourceRecord.record_key == "r2", params={})[0]
    assert b'"sex": "U"' in row.raw
    assert record.payload["birth_date"] == "1980-01-03"


def test_an_unreachable_database_is_a_clear_error(runtime: Runtime) -> None:
    from immigrationos.core.errors import ValidationFailed

    with transaction(runtime.sessions) as session:
        register(session, _definition(table="agency.people"), CTX)
    with (
        pytest.raises(ValidationFailed, match="cannot connect"),
        unit_of_work(runtime.sessions, CTX) as gw,
    ):
        ingest_file(
            gw.session,
            gw,
            "agency_people",
            "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
        )
