"""``immos lineage``: show where a person's or a fact's values came from.

Each value is printed with the source field it was read from and the record (key, version, row),
batch (input file) and ingest time behind it, so "which rows said so?" is one command. The reads
pass the audited gateway under the system account; ``--json`` prints the same answer the API
serves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from pydantic import BaseModel
from rich.table import Table
from rich.text import Text

from immigrationos.cli.common import console, friendly_errors, runtime
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.sources.lineage import (
    FactLineage,
    FactSummary,
    LinkLineage,
    PersonLineage,
    RecordLineage,
    ValueLineage,
    fact_lineage,
    person_lineage,
)

app = typer.Typer(
    help="Show where values came from: source field, record, batch and ingest time.",
    no_args_is_help=True,
)
RECORD_COLUMNS = ("source", "record (key v.N, row R)", "batch", "ingested at")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON (as the API serves it).")


def _context(command: str) -> AccessContext:
    return system_context(Purpose.DATA_INTEGRATION, f"immos lineage {command}")


def _text(value: Any) -> Text:
    """A cell as plain text: values such as ``proceedings[0]`` must not be read as markup."""
    if value is None:
        return Text("—", style="dim")
    if isinstance(value, datetime):
        return Text(value.isoformat(timespec="seconds"))
    return Text(str(value))


def _record_cells(record: RecordLineage | None) -> list[Text]:
    if record is None:
        return [_text(None)] * len(RECORD_COLUMNS)
    where = f"{record.record_id}\n({record.record_key} v.{record.record_version}"
    where += f", row {record.row_number})" if record.row_number is not None else ")"
    return [
        _text(record.source_id),
        _text(where),
        _text(f"{record.batch_id}\n{record.batch_input_uri or ''}".strip()),
        _text(record.ingested_at),
    ]


def values_table(title: str, values: list[ValueLineage]) -> Table:
    """Values with the field each came from and the record behind it."""
    table = Table("column", "value", "from field", *RECORD_COLUMNS, title=title)
    for v in values:
        field = v.from_field + (f"\n{v.note}" if v.note else "")
        table.add_row(_text(v.column), _text(v.value), _text(field), *_record_cells(v.record))
    return table


def links_table(links: list[LinkLineage]) -> Table:
    """A person's linked records with how each link was made."""
    table = Table("method", "probability", "linked at", *RECORD_COLUMNS, title="linked records")
    for k in links:
        cells = [_text(k.method), _text(k.match_probability), _text(k.linked_at)]
        table.add_row(*cells, *_record_cells(k.record))
    return table


def facts_table(facts: list[FactSummary]) -> Table:
    """A person's facts, each with the record behind it."""
    table = Table("table", "fact", "last seen", *RECORD_COLUMNS, title="facts")
    for f in facts:
        cells = [_text(f.table), _text(f.fact_id), _text(f.last_seen_at)]
        table.add_row(*cells, *_record_cells(f.record))
    return table


def _print_json(result: BaseModel) -> None:
    typer.echo(result.model_dump_json(indent=2))


def print_person(result: PersonLineage) -> None:
    """Print a person's lineage as three tables."""
    merged = f", merged into {result.merged_into_id}" if result.merged_into_id else ""
    console.print(Text(f"person {result.person_id} ({result.status}{merged})", style="bold"))
    console.print(values_table("golden values", result.golden))
    console.print(links_table(result.links))
    console.print(facts_table(result.facts))


def print_fact(result: FactLineage) -> None:
    """Print a fact's lineage as one table."""
    table = values_table(f"{result.table} {result.fact_id}", result.values)
    first, last = _text(result.first_seen_at), _text(result.last_seen_at)
    table.caption = f"first seen {first}, last seen {last}"
    console.print(table)


@app.command("person")
@friendly_errors
def person_cmd(
    person_id: str = typer.Argument(..., help="Person id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a person's golden values, linked records and facts, each with its source row."""
    with runtime() as rt, unit_of_work(rt.sessions, _context("person")) as gw:
        result = person_lineage(gw, person_id)
    if as_json:
        _print_json(result)
    else:
        print_person(result)


@app.command("fact")
@friendly_errors
def fact_cmd(
    table: str = typer.Argument(..., help="Fact table, e.g. admissions or hearings."),
    fact_id: str = typer.Argument(..., help="Fact id, e.g. rec-…/admissions."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a fact's values, each with its source field, record, batch and ingest time."""
    with runtime() as rt, unit_of_work(rt.sessions, _context("fact")) as gw:
        result = fact_lineage(gw, table, fact_id)
    if as_json:
        _print_json(result)
    else:
        print_fact(result)
