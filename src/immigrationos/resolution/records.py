"""Person-bearing records: which sources carry them, reading them lawfully, and their keys.

Records are read through the gateway under the ``identity-resolution`` purpose, so a source
whose agreement does not permit that purpose (tax addresses, for one) is left out and the
run says why. Only the current version of each record is used; payload fields flagged as
placeholders at ingest are already empty and so never count as evidence.

Two tables come out of here, both Arrow:

- :data:`RAW_COLUMNS`: one row per record with the person attributes as the source gave them
  (the input to peers and to "bring your own data");
- :func:`features`: the same rows with the normalised keys the model compares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import Text, cast, select

from immigrationos.gateway.core import Gateway
from immigrationos.resolution import names
from immigrationos.sources.definition import PersonMapping, SourceDefinition, parse_definition
from immigrationos.sources.models import Source, SourceRecord

RAW_COLUMNS = [
    "unique_id",
    "source_id",
    "record_key",
    "given_name",
    "middle_name",
    "family_name",
    "birth_date",
    "sex",
    "nationality",
    "a_number",
    "passport_no",
    "passport_country",
    "fin",
    "itin",
    "national_id",
    "other_ids",
    "address",
    "postcode",
    "observed_on",
]
RAW_SCHEMA = pa.schema(
    [(c, pa.list_(pa.string()) if c == "other_ids" else pa.string()) for c in RAW_COLUMNS]
)
STANDARD_IDS = ("a_number", "passport", "fin", "itin", "national_id")

#: Conventional field names recognised when a definition has no ``person`` section.
_CONVENTIONS: dict[str, tuple[str, ...]] = {
    "given_name": ("given_name", "first_name", "forename", "given_names", "firstname"),
    "middle_name": ("middle_name", "middle_names", "middlename"),
    "family_name": ("family_name", "last_name", "surname", "lastname"),
    "birth_date": ("birth_date", "date_of_birth", "dob", "birthdate"),
    "sex": ("sex", "gender"),
    "nationality": ("nationality", "citizenship", "country_of_citizenship"),
    "address": ("address", "address_line", "street"),
    "postcode": ("postcode", "zip", "zip_code", "postal_code"),
    "passport_country": ("passport_country", "document_country", "issuing_country"),
}
_ID_CONVENTIONS: dict[str, tuple[str, ...]] = {
    "a_number": ("a_number", "alien_number", "anumber"),
    "passport": ("passport_no", "passport_number", "passport"),
    "fin": ("fin",),
    "itin": ("itin",),
    "national_id": ("national_id", "nin", "ssn", "id_number", "personal_id"),
}


def person_mapping(definition: SourceDefinition) -> PersonMapping | None:
    """The definition's person mapping, or one inferred from field names; None if no person."""
    if definition.person is not None:
        return definition.person
    known = set(definition.fields) | set(definition.derived_fields)
    found = {
        attr: next((n for n in options if n in known), None)
        for attr, options in _CONVENTIONS.items()
    }
    ids = {
        kind: name
        for kind, options in _ID_CONVENTIONS.items()
        if (name := next((n for n in options if n in known), None))
    }
    mapping = PersonMapping(**found, identifiers=ids)
    has_name = mapping.family_name or mapping.given_name
    return mapping if has_name or ids else None


@dataclass
class Extracted:
    """Records read for resolution, and the sources left out with the reason."""

    table: pa.Table
    sources: list[str] = field(default_factory=list)
    withheld: dict[str, str] = field(default_factory=dict)


def _definitions(gateway: Gateway) -> dict[str, SourceDefinition]:
    sources = gateway.session.scalars(select(Source).where(Source.active.is_(True))).all()
    return {s.id: parse_definition(s.definition, f"source {s.id}") for s in sources}


def extract(gateway: Gateway, batch_size: int = 50_000) -> Extracted:
    """Read every current person-bearing record the purpose may use, as :data:`RAW_COLUMNS`."""
    mappings: dict[str, PersonMapping] = {}
    withheld: dict[str, str] = {}
    allowed, refused = gateway.agreements.permitted_sources(gateway.ctx)
    for source_id, definition in sorted(_definitions(gateway).items()):
        mapping = person_mapping(definition)
        if mapping is None:
            withheld[source_id] = "no person attributes in its definition"
        elif source_id not in allowed:
            withheld[source_id] = refused.get(source_id, "not permitted for this purpose")
        else:
            mappings[source_id] = mapping
    chunks = list(_read(gateway, mappings, batch_size))
    table = pa.concat_tables(chunks) if chunks else RAW_SCHEMA.empty_table()
    return Extracted(table=table, sources=sorted(mappings), withheld=withheld)


def _read(
    gateway: Gateway, mappings: dict[str, PersonMapping], batch_size: int
) -> Iterator[pa.Table]:
    if not mappings:
        return
    superseded = _superseded(gateway, sorted(mappings))
    stmt = (
        select(
            SourceRecord.id,
            SourceRecord.source_id,
            SourceRecord.record_key,
            cast(SourceRecord.payload, Text),
            SourceRecord.ingested_at,
        )
        .where(SourceRecord.source_id.in_(sorted(mappings)))
        .order_by(SourceRecord.id)
    )
    rows = gateway.rows(stmt, SourceRecord, params={"job": "entity resolution: read records"})
    if superseded:
        rows = [r for r in rows if r[0] not in superseded]
    visible = _visible_fields(gateway, mappings)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        yield pa.Table.from_pylist(
            [
                _raw(
                    r[0],
                    r[1],
                    r[2],
                    _shown(orjson.loads(r[3]), visible[r[1]]),
                    r[4],
                    mappings[r[1]],
                )
                for r in chunk
            ],
            schema=RAW_SCHEMA,
        )


def _superseded(gateway: Gateway, source_ids: list[str]) -> set[str]:
    """Ids of records replaced by a newer version (only the newest version is resolved)."""
    stmt = select(SourceRecord.supersedes_id).where(
        SourceRecord.source_id.in_(source_ids), SourceRecord.supersedes_id.is_not(None)
    )
    rows = gateway.rows(stmt, SourceRecord, params={"job": "entity resolution: versions"})
    return {r[0] for r in rows}


def _visible_fields(
    gateway: Gateway, mappings: dict[str, PersonMapping]
) -> dict[str, frozenset[str] | None]:
    """Per source, the only payload fields this purpose may see (None: all allowed fields)."""
    purpose = gateway.ctx.purpose.value
    out: dict[str, frozenset[str] | None] = {}
    for source_id in mappings:
        fields = gateway.agreements.terms[source_id].purpose_fields.get(purpose)
        out[source_id] = frozenset(fields) if fields is not None else None
    return out


def _shown(payload: dict[str, Any], visible: frozenset[str] | None) -> dict[str, Any]:
    return payload if visible is None else {k: v for k, v in payload.items() if k in visible}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _raw(
    record_id: str,
    source_id: str,
    record_key: str,
    payload: dict[str, Any],
    ingested_at: Any,
    mapping: PersonMapping,
) -> dict[str, Any]:
    def get(name: str | None) -> str | None:
        return _text(payload.get(name)) if name else None

    ids = mapping.identifiers
    other = sorted(
        f"{kind}:{v}" for kind, name in ids.items() if kind not in STANDARD_IDS and (v := get(name))
    )
    return {
        "unique_id": record_id,
        "source_id": source_id,
        "record_key": record_key,
        "given_name": get(mapping.given_name),
        "middle_name": get(mapping.middle_name),
        "family_name": get(mapping.family_name),
        "birth_date": get(mapping.birth_date),
        "sex": get(mapping.sex),
        "nationality": get(mapping.nationality),
        "a_number": get(ids.get("a_number")),
        "passport_no": get(ids.get("passport")),
        "passport_country": get(mapping.passport_country),
        "fin": get(ids.get("fin")),
        "itin": get(ids.get("itin")),
        "national_id": get(ids.get("national_id")),
        "other_ids": other,
        "address": get(mapping.address),
        "postcode": get(mapping.postcode),
        "observed_on": str(ingested_at)[:10] if ingested_at else None,
    }


# -- features ---------------------------------------------------------------------------------

FEATURE_SCHEMA = pa.schema(
    [
        ("unique_id", pa.string()),
        ("source_id", pa.string()),
        ("given", pa.string()),
        ("given_first", pa.string()),
        ("given_joined", pa.string()),
        ("given_tokens", pa.list_(pa.string())),
        ("given_symbols", pa.list_(pa.string())),
        ("given_phonetic", pa.string()),
        ("family", pa.string()),
        ("family_first", pa.string()),
        ("family_tokens", pa.list_(pa.string())),
        ("family_symbols", pa.list_(pa.string())),
        ("family_phonetic", pa.list_(pa.string())),
        ("family_first_phonetic", pa.string()),
        ("dob", pa.string()),
        ("dob_swap", pa.string()),
        ("dob_year", pa.int32()),
        ("dob_md", pa.string()),
        ("dob_default", pa.bool_()),
        ("sex", pa.string()),
        ("nationality", pa.string()),
        ("a_number", pa.string()),
        ("passport_no", pa.string()),
        ("passport_country", pa.string()),
        ("fin", pa.string()),
        ("itin", pa.string()),
        ("national_id", pa.string()),
        ("other_ids", pa.list_(pa.string())),
    ]
)
FEATURE_COLUMNS = FEATURE_SCHEMA.names
#: Birth dates that stand for "unknown" rather than a day (flagged at ingest too).
PLACEHOLDER_DATES = frozenset({"1900-01-01", "1901-01-01", "0001-01-01"})


def parse_dob(text: str | None) -> date | None:
    """A birth date from ISO text; None for absent, malformed or placeholder values."""
    if not text or text[:10] in PLACEHOLDER_DATES:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


@lru_cache(maxsize=200_000)
def _dob_keys(text: str | None) -> dict[str, Any]:
    day = parse_dob(text)
    if day is None:
        return {
            "dob": None,
            "dob_swap": None,
            "dob_year": None,
            "dob_md": None,
            "dob_default": None,
        }
    swap = None
    if day.day <= 12 and day.day != day.month:
        swap = f"{day.year:04d}-{day.day:02d}-{day.month:02d}"
    return {
        "dob": day.isoformat(),
        "dob_swap": swap,
        "dob_year": day.year,
        "dob_md": day.isoformat()[5:],
        "dob_default": day.month == 1 and day.day == 1,
    }


def _code(value: str | None) -> str | None:
    return value.strip().upper() if value and value.strip() else None


#: What an identifier is compared without (compiled once: ``re.sub`` with a pattern string
#: looks it up in ``re``'s cache on every call, and misses it once other code has filled it).
_IDENT_SEPARATORS = re.compile(r"[\s\-./]")


def _ident(value: str | None) -> str | None:
    """Identifiers compared without spaces, dashes or case (``A 123-456-789`` → ``A123456789``)."""
    if not value:
        return None
    cleaned = _IDENT_SEPARATORS.sub("", value).upper()
    return cleaned or None


def _name_part(given: str | None, family: str | None, middle: str | None) -> dict[str, Any]:
    """The name keys of a record: its given names' (with the middle name) and its surname's,
    each looked up on its own. The two halves do not depend on each other, and each repeats
    far more often than the whole name (a departure stream at 200,000 persons missed the
    whole-name cache on two events in three)."""
    return {**_given_part(given, middle), **_family_part(family)}


def _given_part(given: str | None, middle: str | None) -> dict[str, Any]:
    fields = (_ABSENT if v is None else v for v in (given, middle))
    return _given_part_of(_SEPARATOR.join(fields))


def _family_part(family: str | None) -> dict[str, Any]:
    return _family_part_of(_ABSENT if family is None else family)


#: How the given-name cache writes its two fields as one key, and an absent field, with
#: control characters (names hold none).
_SEPARATOR, _ABSENT = "\x1f", "\x1e"


def _present(value: str) -> str | None:
    return None if value == _ABSENT else value


# Each cache is keyed by one string, not by a tuple: Python's collector untracks a dict
# whose keys and values it need not follow, and a cache keyed by tuples is tracked again by
# every new key (a new tuple), so that each collection walked the whole cache (a million
# names after an index build: a fifth of a second a full collection, 30 ms a young one). A
# cache keyed by strings stays untracked and costs the collector nothing.


@lru_cache(maxsize=500_000)
def _given_part_of(key: str) -> dict[str, Any]:
    """The given-name keys of ``given, middle`` written as one string (the middle name joins
    the whole-given key only)."""
    given, middle = (_present(v) for v in key.split(_SEPARATOR))
    k = names.keys(given, None, middle)
    return {
        "given": k.given,
        "given_first": k.given_first,
        "given_joined": k.given_joined,
        "given_tokens": list(k.given_tokens),
        "given_symbols": list(k.given_symbols),
        "given_phonetic": k.given_phonetic,
    }


@lru_cache(maxsize=500_000)
def _family_part_of(family_key: str) -> dict[str, Any]:
    """The surname keys."""
    k = names.keys(None, _present(family_key))
    first = k.family_tokens[0] if k.family_tokens else None
    return {
        "family": k.family,
        "family_first": first,
        "family_tokens": list(k.family_tokens),
        "family_symbols": list(k.family_symbols),
        "family_phonetic": list(k.family_phonetic),
        "family_first_phonetic": names.phonetic(first) if first else None,
    }


NAME_KEYS = tuple(_name_part(None, None, None))
DOB_KEYS = ("dob", "dob_swap", "dob_year", "dob_md", "dob_default")
_CODES = ("nationality", "passport_country")
_IDS = ("a_number", "passport_no", "fin", "itin", "national_id")


def _sex(value: str | None) -> str | None:
    code = _code(value)
    return code if code in {"M", "F"} else None


def _other_ids(values: list[str] | None) -> list[str]:
    if not values:
        return []
    return sorted({_ident(v) or "" for v in values} - {""})


def feature_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The compared keys of one raw record (see :data:`FEATURE_SCHEMA`). Written out key by
    key rather than with comprehensions: the departure matcher makes one per event, and this
    form takes about half the time."""
    get = raw.get
    row = {"unique_id": raw["unique_id"], "source_id": get("source_id")}
    row.update(_given_part(get("given_name"), get("middle_name")))
    row.update(_family_part(get("family_name")))
    row.update(_dob_keys(get("birth_date")))
    row["sex"] = _sex(get("sex"))
    row["nationality"] = _code(get("nationality"))
    row["passport_country"] = _code(get("passport_country"))
    row["a_number"] = _ident(get("a_number"))
    row["passport_no"] = _ident(get("passport_no"))
    row["fin"] = _ident(get("fin"))
    row["itin"] = _ident(get("itin"))
    row["national_id"] = _ident(get("national_id"))
    row["other_ids"] = _other_ids(get("other_ids"))
    return row


def _mapped(values: Iterable[Any], fn: Any) -> list[Any]:
    """``fn`` of each value, computed once per distinct value (names and dates repeat a lot)."""
    cache: dict[Any, Any] = {}
    out = []
    for v in values:
        if v not in cache:
            cache[v] = fn(*v) if isinstance(v, tuple) else fn(v)
        out.append(cache[v])
    return out


def features(raw: pa.Table | Iterable[Mapping[str, Any]]) -> pa.Table:
    """Normalised keys for every raw record, as an Arrow table in :data:`FEATURE_SCHEMA`.

    Column by column, each function applied once per distinct value: the same result as
    :func:`feature_row` on every row (a test checks it), at a fraction of the cost.
    """
    table = raw if isinstance(raw, pa.Table) else pa.Table.from_pylist(list(raw))
    n = table.num_rows

    def col(name: str) -> list[Any]:
        if name in table.column_names:
            return table.column(name).to_pylist()
        return [None] * n

    triples = zip(col("given_name"), col("family_name"), col("middle_name"), strict=True)
    parts = _mapped(triples, _name_part)
    dobs = _mapped(col("birth_date"), _dob_keys)
    columns: dict[str, list[Any]] = {"unique_id": col("unique_id"), "source_id": col("source_id")}
    for key in NAME_KEYS:
        columns[key] = [p[key] for p in parts]
    for key in DOB_KEYS:
        columns[key] = [d[key] for d in dobs]
    columns["sex"] = _mapped(col("sex"), _sex)
    for key in _CODES:
        columns[key] = _mapped(col(key), _code)
    for key in _IDS:
        columns[key] = [_ident(v) for v in col(key)]
    columns["other_ids"] = [_other_ids(v) for v in col("other_ids")]
    return pa.table({k: columns[k] for k in FEATURE_COLUMNS}, schema=FEATURE_SCHEMA)


def raw_of(gateway: Gateway, record: SourceRecord) -> dict[str, Any]:
    """One stored record as a raw person record (:data:`RAW_COLUMNS`), by its source's mapping."""
    from immigrationos.core.errors import ValidationFailed

    definition = _definitions(gateway).get(record.source_id)
    mapping = person_mapping(definition) if definition else None
    if mapping is None:
        raise ValidationFailed(f"source {record.source_id!r} carries no person attributes")
    return _raw(
        record.id, record.source_id, record.record_key, record.payload, record.ingested_at, mapping
    )
