"""The source systems: their files, formats, columns and record keys.

``SOURCES`` is the one declarative table of what each source file holds (domain.md §2); the
builder joins a source's booked records with the identity columns the noise step rendered and
returns an Arrow table in the declared column order, plus the ground-truth link of each record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from immigrationos.synth import dates, ids
from immigrationos.synth.book import DAY_COLUMNS, NULL_SECONDS, SECOND_COLUMNS
from immigrationos.synth.names import world_data
from immigrationos.synth.noise import Identity, Noiser, state_ids
from immigrationos.synth.population import Persons

S, D, I32 = pa.string(), pa.date32(), pa.int32()
NAMES = (("family_name", S), ("given_name", S))


@dataclass(frozen=True)
class Source:
    """One source file: name, format, key column, output columns and identity fields."""

    name: str
    fmt: str
    key: str | None
    columns: tuple[tuple[str, pa.DataType], ...]
    identity: Identity

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.fmt}"

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


SOURCES: tuple[Source, ...] = (
    Source("arrivals", "csv", "admission_no", (("admission_no", S), *NAMES, ("birth_date", D),
        ("sex", S), ("nationality", S), ("passport_no", S), ("passport_country", S),
        ("class_of_admission", S), ("mode", S), ("port", S), ("admitted_on", D),
        ("admitted_until", D)),
        Identity(sex=True, nationality="nationality",
                 document=("passport_no", None, "passport_country"))),
    Source("visas", "jsonl", "foil_no", (("foil_no", S), *NAMES, ("birth_date", D), ("sex", S),
        ("nationality", S), ("passport_no", S), ("visa_class", S), ("issued_on", D), ("post", S)),
        Identity(sex=True, nationality="nationality", document=("passport_no", None, None))),
    Source("benefits", "parquet", "receipt_no", (("receipt_no", S), ("a_number", S), *NAMES,
        ("birth_date", D), ("form", S), ("status", S), ("filed_on", D), ("decided_on", D),
        ("valid_until", D)),
        Identity(a_number=True)),
    Source("court", "jsonl", "case_no", (("case_no", S), ("a_number", S), *NAMES,
        ("birth_date", D), ("nationality", S), ("charge", S), ("nta_served_on", D),
        ("proceedings", S)),
        Identity(nationality="nationality", a_number=True)),
    Source("encounters", "csv", "encounter_no", (("encounter_no", S), ("encounter_date", D),
        ("office", S), *NAMES, ("birth_date", D), ("sex", S), ("nationality", S),
        ("a_number", S), ("fin", S), ("disposition", S)),
        Identity(sex=True, nationality="nationality", a_number=True, missing_a=True, fin=True)),
    Source("convictions", "csv", "disposition_id", (("disposition_id", S), *NAMES,
        ("birth_date", D), ("state_id", S), ("state", S), ("offense_category", S),
        ("offense_level", S), ("conviction_date", D), ("sentence_days", I32)),
        Identity()),
    Source("tax_addresses", "parquet", None, (("itin", S), *NAMES, ("address_line", S),
        ("city", S), ("state", S), ("postcode", S), ("tax_year", I32)),
        Identity(dob=False, itin=True)),
    Source("citizenship_evidence", "csv", "certificate_no", (("certificate_no", S), ("kind", S),
        *NAMES, ("birth_date", D), ("issued_on", D)),
        Identity()),
    Source("departures", "jsonl", "event_id", (("event_id", S), ("channel", S),
        ("occurred_at", S), *NAMES, ("birth_date", D), ("sex", S), ("citizenship", S),
        ("document_type", S), ("document_no", S), ("document_expiry", D),
        ("document_country", S), ("carrier", S), ("flight", S), ("port", S),
        ("reported_at", S)),
        Identity(sex=True, nationality="citizenship",
                 document=("document_no", "document_expiry", "document_country"))),
)  # fmt: skip
BY_NAME = {s.name: s for s in SOURCES}
CERTIFICATE_PREFIX = {"birth": "BC", "naturalization": "NC", "passport": "PP", "derived": "CC"}


def _prefixed(scheme: ids.Scheme, width: int, prefix: str) -> Callable[[np.ndarray], np.ndarray]:
    return lambda keys: ids.digits(scheme.numbers(keys), width, prefix)


KEYS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "arrivals": _prefixed(ids.ADMISSION, 11, ""),
    "visas": _prefixed(ids.FOIL, 9, "V"),
    "court": _prefixed(ids.CASE, 9, "IC"),
    "encounters": _prefixed(ids.ENCOUNTER, 10, "E"),
    "convictions": _prefixed(ids.DISPOSITION, 10, "CD"),
    "departures": _prefixed(ids.EVENT, 12, "DEP"),
}


def _receipts(keys: np.ndarray) -> np.ndarray:
    numbers = ids.RECEIPT.numbers(keys)
    centers = np.array(world_data()["service_centers"], dtype=object)
    return centers[numbers % len(centers)] + ids.digits(numbers, 10)


def _certificates(keys: np.ndarray, kind: np.ndarray) -> np.ndarray:
    prefix = np.array([CERTIFICATE_PREFIX[k] for k in kind], dtype=object)
    return prefix + ids.digits(ids.CERTIFICATE.numbers(keys), 10)


def _iso_seconds(seconds: np.ndarray) -> np.ndarray:
    text = np.char.add(seconds.astype("datetime64[s]").astype(str), "Z").astype(object)
    text[seconds == NULL_SECONDS] = None
    return text


@dataclass
class Built:
    """A source's chunk as a table, and its ground-truth links."""

    table: pa.Table
    truth: pa.Table


def _arrow(name: str, values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    if name in DAY_COLUMNS or dtype == D:
        days = values.astype(np.int32)
        return pa.array(days, type=pa.int32(), mask=days == dates.NULL).cast(D)
    if dtype == I32:
        return pa.array(values.astype(np.int32), type=I32)
    return pa.array(values, type=S)


def build(src: Source, rows: dict[str, np.ndarray], persons: Persons, noiser: Noiser) -> Built:
    """Render identity fields, assign record keys and assemble the source's chunk table."""
    ident, noise = noiser.render(rows, src.identity)
    p = rows["person"]
    assert (rows["rank"] < ids.SLOTS).all(), "too many records of one source for a person"
    keys = ids.record_keys(persons.gid[p], rows["rank"])
    cols: dict[str, np.ndarray] = {**rows, **ident}
    record_key = _keys(src, keys, cols)
    if src.name == "convictions":
        cols["state_id"] = state_ids(persons, p, cols["state"])
    for col in SECOND_COLUMNS & set(cols):
        cols[col] = _iso_seconds(cols[col])
    arrays = [_arrow(c, _column(cols, c, len(p)), t) for c, t in src.columns if c != "proceedings"]
    names = [c for c in src.column_names if c != "proceedings"]
    table = pa.table(dict(zip(names, arrays, strict=True)))
    if src.name == "court":
        table = table.append_column("proceedings", _proceedings(cols["proceedings"]))
    return Built(table, _truth(src, record_key, persons, p, noise))


def _column(cols: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    if name in cols:
        return cols[name]
    if name in DAY_COLUMNS or name == "birth_date":
        return np.full(n, dates.NULL, dtype=np.int32)
    return np.full(n, None, dtype=object)


def _keys(src: Source, keys: np.ndarray, cols: dict[str, np.ndarray]) -> np.ndarray:
    if src.name == "tax_addresses":
        return cols["itin"] + ":" + cols["tax_year"].astype(str).astype(object)
    if src.name == "benefits":
        value = _receipts(keys)
    elif src.name == "citizenship_evidence":
        value = _certificates(keys, cols["kind"])
    else:
        value = KEYS[src.name](keys)
    assert src.key
    cols[src.key] = value
    return value


def _proceedings(values: np.ndarray) -> pa.Array:
    """Nested proceedings as compact JSON text, spliced in raw by the JSONL writer."""
    return pa.array([json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in values], S)


def _truth(
    src: Source, key: np.ndarray, persons: Persons, p: np.ndarray, noise: np.ndarray
) -> pa.Table:
    return pa.table(
        {
            "source": pa.array(np.full(len(p), src.name, dtype=object), S),
            "record_key": pa.array(key, S),
            "person_id": pa.array(person_ids(persons.gid[p]), S),
            "noise": pa.array(noise, S),
        }
    )


def person_ids(gid: np.ndarray) -> np.ndarray:
    """Stable person identifiers of the ground truth (``P`` + nine digits)."""
    return ids.digits(gid, 9, "P")
