"""The fast path: read and validate a chunk of rows as Arrow columns, not one row at a time.

Ingest must keep up with large sources (the benchmark loads a million rows), and Python spends
microseconds on every value it touches. Here the file is cut into blocks at line boundaries,
each block is parsed by Arrow's C++ CSV reader (Parquet arrives as Arrow already), and every
field's checks run as vector kernels over the whole column.

The row validator (:mod:`.validate`) stays the authority. The vector checks are built to be at
least as strict: a row they doubt is handed to the row validator, which either refuses it with
its exact reason and message, or accepts it (and its cleaned values are used). A row they
accept is cleaned exactly as the row validator would clean it; a property test holds the two
paths to the same answers. Blocks the fast path cannot take at all (a row spanning lines, a
ragged row, bytes that are not UTF-8) are read row by row instead, so their problems are
reported precisely.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from immigrationos.sources import readers
from immigrationos.sources.definition import FieldSpec, SourceDefinition
from immigrationos.sources.validate import (
    PLACEHOLDER_COUNTRIES,
    PLACEHOLDER_DATES,
    PLACEHOLDER_TEXT,
)

BLOCK_ROWS = 25_000
#: Field names that need no escaping as JSON keys (the columnar planner writes them as-is).
_SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WS = r"[\s\p{Z}\x{1c}-\x{1f}\x{85}]"
_FORMULA = r"^([=+@\t\r]|-[^0-9])"


@dataclass
class Block:
    """A run of input rows: Arrow columns when the fast path can take it, else raw rows."""

    first_row: int
    lines: list[bytes]
    table: pa.Table | None = None
    rows: list[readers.RawRow] | None = None


def vectorisable(definition: SourceDefinition) -> bool:
    """Whether every checked field has a vector form (nested values and name splits do not)."""
    allowed = set(definition.agreement.allowed_fields)
    return (
        not definition.split_names
        and not any(m.deriver for m in definition.facts)
        and all(
            spec.type != "nested" and _SIMPLE_NAME.fullmatch(name)
            for name, spec in definition.fields.items()
            if name in allowed
        )
    )


# -- reading -----------------------------------------------------------------------------------


def _line_groups(handle: io.BufferedReader, size: int) -> Iterator[tuple[list[bytes], bool]]:
    """Lines in groups of ``size``, cut only where no quoted value is open; and whether a row in
    the group spans lines (then the group is read row by row)."""
    group: list[bytes] = []
    quotes, spans = 0, False
    for line in handle:
        group.append(line)
        count = line.count(b'"')
        if quotes % 2 == 1 or count % 2 == 1:
            spans = True
        quotes += count
        if len(group) >= size and quotes % 2 == 0:
            yield group, spans
            group, quotes, spans = [], 0, False
    if group:
        yield group, spans


def _arrow_block(
    header: bytes, lines: list[bytes], names: list[str], definition: SourceDefinition
) -> pa.Table | None:
    """The block as string columns, or None if Arrow cannot take it exactly."""
    try:
        table = pacsv.read_csv(
            io.BytesIO(header + b"".join(lines)),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=definition.delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if table.num_rows != len(lines) or table.column_names != names:
            return None
        return pa.table({n: table[n].cast(pa.string()) for n in names})
    except (pa.ArrowInvalid, ValueError):
        return None


def csv_blocks(path: Path, definition: SourceDefinition, size: int = BLOCK_ROWS) -> Iterator[Block]:
    """A CSV file in blocks; each holds Arrow columns, or RawRows where the fast path can't."""
    if definition.encoding.lower().replace("_", "-") not in {"utf-8", "utf8"}:
        yield from row_blocks(path, definition, size)
        return
    with path.open("rb") as handle:
        header = handle.readline()
        names = [
            n.strip().lstrip("\ufeff")
            for n in next(
                iter(
                    readers.csv.reader(
                        [header.decode("utf-8", "replace")], delimiter=definition.delimiter
                    )
                )
            )
        ]
        readers.check_header(path, names, definition)
        first = 1
        for lines, spans in _line_groups(handle, size):
            table = None if spans else _arrow_block(header, lines, names, definition)
            if table is None:
                rows = list(readers.csv_rows_from_lines(lines, names, definition, first))
                yield Block(first, lines, rows=rows)
                first += len(rows)
            else:
                yield Block(first, lines, table=table)
                first += len(lines)


def blocks(location: str | Path, definition: SourceDefinition, size: int) -> Iterator[Block]:
    """An input in blocks: columnar where the format and definition allow, else rows."""
    if vectorisable(definition) and definition.format == "csv":
        return csv_blocks(Path(location), definition, size)
    if vectorisable(definition) and definition.format == "parquet":
        return parquet_blocks(Path(location), definition, size)
    return row_blocks(location, definition, size)


def row_blocks(
    location: str | Path, definition: SourceDefinition, size: int = BLOCK_ROWS
) -> Iterator[Block]:
    """Any input (a file, or a DSN for PostgreSQL) as blocks of rows for the row path."""
    for chunk in readers.read(location, definition, size):
        yield Block(chunk[0].number, [r.raw for r in chunk], rows=chunk)


def parquet_blocks(
    path: Path, definition: SourceDefinition, size: int = BLOCK_ROWS
) -> Iterator[Block]:
    """A Parquet file a record batch at a time, every column as text (dates as ISO)."""
    import pyarrow.parquet as pq

    first = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
        table = pa.Table.from_batches([batch])
        columns = {n: _as_text(table[n]) for n in table.column_names}
        yield Block(first, [], table=pa.table(columns))
        first += table.num_rows


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_integer(column.type):
        return column  # integer fields keep their type; text fields cast below
    return pc.cast(column, pa.string())


# -- checks ------------------------------------------------------------------------------------


@dataclass
class Checked:
    """One field after its vector checks: cleaned values, doubt, placeholders."""

    values: pa.Array
    doubt: pa.Array
    placeholder: pa.Array


def _blank_to_null(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _any(*conditions: pa.Array) -> pa.Array:
    """True where any condition is true; an unknown (null) condition counts as false."""
    result = pc.fill_null(conditions[0], False)
    for condition in conditions[1:]:
        result = pc.or_(result, pc.fill_null(condition, False))
    return result


def _all(*conditions: pa.Array) -> pa.Array:
    """True where every condition is true; an unknown (null) condition counts as false."""
    result = pc.fill_null(conditions[0], False)
    for condition in conditions[1:]:
        result = pc.and_(result, pc.fill_null(condition, False))
    return result


def any_of(conditions: list[pa.Array], n: int) -> pa.Array:
    """True where any of ``conditions`` is (nulls count as false); all false when none."""
    return _any(*conditions) if conditions else _false(n)


def all_of(conditions: list[pa.Array], n: int) -> pa.Array:
    """True where every one of ``conditions`` is (nulls count as false); all true when none."""
    return _all(*conditions) if conditions else pa.array([True] * n, pa.bool_())


def _false(n: int) -> pa.Array:
    return pa.array([False] * n, pa.bool_())


def _trimmed(raw: pa.Array) -> pa.Array:
    return _blank_to_null(pc.utf8_trim(raw, characters=" \t\n\r\x0b\x0c"))


def _is_placeholder(text: pa.Array, extra: list[str]) -> pa.Array:
    folded = pc.replace_substring_regex(pc.utf8_upper(text), _WS + "+", " ")
    values = pa.array(sorted(PLACEHOLDER_TEXT | {p.upper() for p in extra}), pa.string())
    return _any(pc.is_in(folded, value_set=values))


def _text_checks(raw: pa.Array, spec: FieldSpec, name_like: bool) -> Checked:
    text = _trimmed(raw)
    doubt = _any(
        pc.greater(pc.utf8_length(text), spec.max_length),
        pc.match_substring_regex(text, _FORMULA),
        pc.match_substring(text, "\x00"),
        # Unicode whitespace the trim above does not strip: let the row validator decide.
        pc.match_substring_regex(text, r"^" + _WS + r"|" + _WS + r"$"),
    )
    if spec.pattern:
        mismatch = pc.invert(pc.match_substring_regex(text, f"^(?:{spec.pattern})$"))
        doubt = _any(doubt, mismatch)
    placeholder = _is_placeholder(text, spec.placeholders)
    if name_like:
        text = pc.replace_substring_regex(text, _WS + "+", " ")
    return Checked(text, doubt, placeholder)


def _code_checks(raw: pa.Array, spec: FieldSpec) -> Checked:
    checked = _text_checks(raw, spec, name_like=False)
    table = spec.codes
    if not table:
        return checked
    mapping = table if isinstance(table, dict) else {c: c for c in table}
    index = pc.index_in(checked.values, value_set=pa.array(list(mapping), pa.string()))
    unknown = _all(pc.is_valid(checked.values), pc.is_null(index), pc.invert(checked.placeholder))
    values = pc.take(pa.array(list(mapping.values()), pa.string()), index)
    return Checked(values, _any(checked.doubt, unknown), checked.placeholder)


def _date_checks(raw: pa.Array, spec: FieldSpec) -> Checked:
    text = _trimmed(raw)
    fmt = spec.formats[0]  # further formats: the row validator decides what this one misses
    iso_only = spec.formats == ["%Y-%m-%d"]
    if iso_only:
        shaped = pc.match_substring_regex(text, r"^\d{4}-\d{2}-\d{2}$")
        text_to_parse = pc.if_else(shaped, text, pa.scalar(None, pa.string()))
    else:
        text_to_parse = text
    parsed = pc.strptime(text_to_parse, format=fmt, unit="s", error_is_null=True)
    if iso_only:  # the text is the ISO form already; strftime is the slowest kernel here
        iso = pc.if_else(pc.is_valid(parsed), text, pa.scalar(None, pa.string()))
        # Arrow rolls impossible dates over (2023-02-30 becomes 2023-03-02); Python refuses
        # them. A date whose parts do not read back as written goes to the row validator.
        month = pc.cast(pc.utf8_slice_codeunits(text_to_parse, 5, 7), pa.int64())
        day = pc.cast(pc.utf8_slice_codeunits(text_to_parse, 8, 10), pa.int64())
        rolled = _any(pc.not_equal(pc.month(parsed), month), pc.not_equal(pc.day(parsed), day))
    else:
        iso = pc.strftime(parsed, format="%Y-%m-%d")
        rolled = _any(pc.not_equal(pc.strftime(parsed, format=fmt), text))
    years = pc.year(parsed)
    placeholder = _any(
        pc.is_in(pc.utf8_upper(text), value_set=pa.array(sorted(PLACEHOLDER_TEXT))),
        pc.is_in(iso, value_set=pa.array(sorted(PLACEHOLDER_DATES))),
    )
    bad = _any(
        _all(pc.is_valid(text), pc.is_null(parsed)),
        pc.less(years, 1900),
        pc.greater(years, 2100),
        rolled,
    )
    return Checked(iso, _all(bad, pc.invert(placeholder)), placeholder)


def _country_checks(raw: pa.Array, _spec: FieldSpec) -> Checked:
    text = _blank_to_null(pc.utf8_upper(pc.utf8_trim(raw, characters=" \t\n\r\x0b\x0c")))
    placeholder = _any(
        pc.is_in(text, value_set=pa.array(sorted(PLACEHOLDER_COUNTRIES | PLACEHOLDER_TEXT)))
    )
    doubt = _all(pc.invert(pc.match_substring_regex(text, r"^[A-Z]{3}$")), pc.invert(placeholder))
    return Checked(text, doubt, placeholder)


def _a_number_checks(raw: pa.Array, _spec: FieldSpec) -> Checked:
    text = pc.replace_substring_regex(pc.utf8_upper(pc.utf8_trim_whitespace(raw)), r"[- ]", "")
    text = _blank_to_null(text)
    digits = pc.struct_field(pc.extract_regex(text, r"^A?(?P<d>[0-9]{8,9})$"), "d")
    padded = pc.binary_join_element_wise("A", pc.utf8_lpad(digits, width=9, padding="0"), "")
    placeholder = _any(
        pc.is_in(text, value_set=pa.array(sorted(PLACEHOLDER_TEXT))), pc.equal(padded, "A000000000")
    )
    doubt = _all(pc.is_valid(text), pc.is_null(digits), pc.invert(placeholder))
    return Checked(padded, doubt, placeholder)


def _integer_checks(raw: pa.Array, _spec: FieldSpec) -> Checked:
    if pa.types.is_integer(raw.type):
        return Checked(pc.cast(raw, pa.int64()), _false(len(raw)), _false(len(raw)))
    text = _trimmed(raw)
    shaped = _any(pc.match_substring_regex(text, r"^-?\d{1,18}$"))
    values = pc.cast(pc.if_else(shaped, text, pa.scalar(None, pa.string())), pa.int64())
    return Checked(values, _all(pc.is_valid(text), pc.invert(shaped)), _false(len(raw)))


def _timestamp_checks(raw: pa.Array, _spec: FieldSpec) -> Checked:
    text = _trimmed(raw)
    shaped = _any(
        pc.match_substring_regex(text, r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+00:00)$")
    )
    bare = pc.if_else(shaped, pc.utf8_slice_codeunits(text, 0, 19), pa.scalar(None, pa.string()))
    parsed = pc.strptime(bare, format="%Y-%m-%dT%H:%M:%S", unit="s", error_is_null=True)
    written = pc.strftime(parsed, format="%Y-%m-%dT%H:%M:%S")
    iso = pc.binary_join_element_wise(written, "+00:00", "")
    # Anything else (fractions, other offsets, rolled-over dates): the row validator decides.
    doubt = _all(pc.is_valid(text), pc.invert(_all(shaped, pc.equal(written, bare))))
    return Checked(iso, doubt, _false(len(raw)))


def check_field(column: pa.Array, spec: FieldSpec) -> Checked:
    """The vector checks of one field."""
    if spec.type == "integer":
        return _integer_checks(column, spec)
    raw = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    if spec.type in {"string", "name"}:
        return _text_checks(raw, spec, name_like=spec.type == "name")
    return {
        "code": _code_checks,
        "date": _date_checks,
        "country": _country_checks,
        "a_number": _a_number_checks,
        "timestamp": _timestamp_checks,
    }[spec.type](raw, spec)


@dataclass
class Validated:
    """A block after the vector checks."""

    names: list[str]
    values: list[pa.Array]
    doubt: pa.Array
    placeholders: dict[str, pa.Array]
    originals: dict[str, pa.Array]
    dropped: dict[str, int]


def validate_table(table: pa.Table, definition: SourceDefinition) -> Validated:
    """Run every allowed field's vector checks over a block."""
    allowed = set(definition.agreement.allowed_fields)
    n = table.num_rows
    doubt = _false(n)
    names, values, placeholders, originals = [], [], {}, {}
    for name, spec in definition.fields.items():
        if name not in allowed:
            continue
        column = (
            table[name].combine_chunks() if name in table.column_names else pa.nulls(n, pa.string())
        )
        checked = check_field(column, spec)
        value = pc.if_else(
            checked.placeholder, pa.scalar(None, checked.values.type), checked.values
        )
        if spec.required or name in definition.key_fields:
            doubt = pc.or_(doubt, pc.and_(pc.is_null(value), pc.invert(checked.placeholder)))
            doubt = pc.or_(doubt, checked.placeholder) if name in definition.key_fields else doubt
        doubt = pc.or_(doubt, checked.doubt)
        names.append(name)
        values.append(value)
        if pc.any(checked.placeholder).as_py():
            placeholders[name] = checked.placeholder
            originals[name] = column
    dropped = {c: n for c in table.column_names if c not in allowed}
    return Validated(names, values, doubt, placeholders, originals, dropped)
