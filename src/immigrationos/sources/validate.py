"""Validate and clean a row against its source definition.

Each field spec compiles once into a small function; a row passes through them in a tight
loop (ingest runs this for every row). A value is either cleaned (dates to ISO, codes
mapped, A-numbers to ``A`` + 9 digits), set aside as a *placeholder* (present but meaning
"unknown": ``NA NA``, ``UNKNOWN``, ``1900-01-01`` — flagged, never evidence), or refused with
a reason code and a message naming the field. A refused row is quarantined whole.

Hand-written because the checks are this domain's (identifier formats, placeholders,
spreadsheet formula prefixes) and must report per field; no validation library gives those
messages at this speed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import orjson

from immigrationos.sources.definition import FieldSpec, SourceDefinition, SplitName

#: Values that mean "unknown" in any text field (compared upper-cased, spaces collapsed).
PLACEHOLDER_TEXT = frozenset(
    {"NA", "N/A", "NA NA", "N A", "UNKNOWN", "UNK", "XXX", "XX", "NONE", "NULL", "NIL", "FNU",
     "LNU", "NFN", "NLN", "TEST", "-", "--", "?", "??", "0"}
)  # fmt: skip
PLACEHOLDER_DATES = frozenset({"1900-01-01", "1899-12-31", "0001-01-01", "9999-12-31"})
PLACEHOLDER_COUNTRIES = frozenset({"XXX", "UNK", "ZZZ", "XXA"})
FORMULA_START = frozenset("=+@\t\r")
_A_NUMBER = re.compile(r"A?([0-9]{8,9})")
_COUNTRY = re.compile(r"[A-Z]{3}")
_SPACES = re.compile(r"\s+")


class Problem(NamedTuple):
    """Why a row cannot be loaded: a reason code, the field, and a message for people."""

    reason: str
    field: str | None
    message: str


class Invalid(Exception):
    """A value failed its field's check."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Placeholder(Exception):
    """A value is a placeholder: keep what the source said in the flags, not the payload."""


Check = Callable[[Any], Any]


def _text(spec: FieldSpec) -> Check:
    extra = frozenset(p.upper() for p in spec.placeholders)
    pattern = re.compile(spec.pattern) if spec.pattern else None
    limit = spec.max_length

    def check(value: Any) -> Any:
        text = value if isinstance(value, str) else str(value)
        text = text.strip()
        if not text:
            return None
        if len(text) > limit:
            raise Invalid("too-long", f"{len(text):,} characters (limit {limit:,})")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise Invalid(
                    "encoding", "bytes that are not valid UTF-8 (declare the file's `encoding:`)"
                ) from None
        if "\x00" in text:
            raise Invalid("control-characters", "contains a NUL character")
        folded = _SPACES.sub(" ", text.upper())
        if folded in PLACEHOLDER_TEXT or folded in extra:
            raise Placeholder
        first = text[0]
        if first in FORMULA_START or (first == "-" and len(text) > 1 and not text[1].isdigit()):
            raise Invalid(
                "formula", f"starts with {first!r}: spreadsheet formulas are not accepted as data"
            )
        if pattern is not None and not pattern.fullmatch(text):
            raise Invalid("format", f"{text!r} does not match {pattern.pattern}")
        return text

    return check


def _name(spec: FieldSpec) -> Check:
    base = _text(spec)

    def check(value: Any) -> Any:
        text = base(value)
        return _SPACES.sub(" ", text) if text else text

    return check


def _date(spec: FieldSpec) -> Check:
    formats = spec.formats
    iso_only = formats == ["%Y-%m-%d"]

    def parse(text: str) -> date:
        if iso_only:
            return date.fromisoformat(text)
        for fmt in formats:
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        raise ValueError(text)

    def check(value: Any) -> Any:
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, date):
            parsed = value
        else:
            text = str(value).strip()
            if not text:
                return None
            if text.upper() in PLACEHOLDER_TEXT:
                raise Placeholder
            try:
                parsed = parse(text)
            except ValueError:
                raise Invalid("date", f"{text!r} is not a date in {' or '.join(formats)}") from None
        iso = parsed.isoformat()
        if iso in PLACEHOLDER_DATES:
            raise Placeholder
        if not 1900 <= parsed.year <= 2100:
            raise Invalid("date-range", f"{iso} is outside 1900–2100")
        return iso

    return check


def _timestamp(_spec: FieldSpec) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, datetime):
            moment = value
        else:
            text = str(value).strip()
            if not text:
                return None
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise Invalid("timestamp", f"{text!r} is not an ISO 8601 timestamp") from None
        try:
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except OverflowError:
            raise Invalid("timestamp", f"{str(value)!r} is outside UTC's calendar") from None
        return moment.isoformat()

    return check


def _integer(_spec: FieldSpec) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise Invalid("integer", f"{value!r} is not a whole number")
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            if not text:
                return None
            try:
                number = int(text)
            except ValueError:
                raise Invalid("integer", f"{text!r} is not a whole number") from None
        if not -(2**63) <= number < 2**63:
            raise Invalid("integer", f"{number} is outside the 64-bit range")
        return number

    return check


def _code(spec: FieldSpec) -> Check:
    table = spec.codes
    mapping = table if isinstance(table, dict) else {c: c for c in (table or [])}
    listed = ", ".join(sorted(mapping)[:12]) + (" …" if len(mapping) > 12 else "")
    text = _text(spec)

    def check(value: Any) -> Any:
        cleaned = text(value)
        if cleaned is None or not mapping:
            return cleaned
        if cleaned not in mapping:
            raise Invalid("code", f"{cleaned!r} is not in the code table ({listed})")
        return mapping[cleaned]

    return check


def _country(_spec: FieldSpec) -> Check:
    def check(value: Any) -> Any:
        text = str(value).strip().upper()
        if not text:
            return None
        if text in PLACEHOLDER_COUNTRIES or text in PLACEHOLDER_TEXT:
            raise Placeholder
        if not _COUNTRY.fullmatch(text):
            raise Invalid("country", f"{text!r} is not an ISO 3166 alpha-3 country code")
        return text

    return check


def _a_number(_spec: FieldSpec) -> Check:
    def check(value: Any) -> Any:
        folded = _SPACES.sub(" ", str(value).strip().upper())
        if not folded:
            return None
        if folded in PLACEHOLDER_TEXT:
            raise Placeholder
        text = folded.replace("-", "").replace(" ", "")
        match = _A_NUMBER.fullmatch(text)
        if match is None:
            raise Invalid("a-number", f"{value!r} is not an A-number (A + 8 or 9 digits)")
        digits = match.group(1).zfill(9)
        if set(digits) == {"0"}:
            raise Placeholder
        return "A" + digits

    return check


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _nested(_spec: FieldSpec) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, list | dict):
            parsed = value
        else:
            try:
                parsed = json.loads(value, parse_constant=_no_constant)
            except (TypeError, ValueError, RecursionError):
                raise Invalid("nested", "expected a JSON list or object") from None
            if not isinstance(parsed, list | dict):
                raise Invalid("nested", "expected a JSON list or object")
        try:
            orjson.dumps(parsed)
            json.dumps(parsed, allow_nan=False)
        except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
            raise Invalid("nested", f"not storable as JSON: {exc}") from None
        return parsed

    return check


CHECKS: dict[str, Callable[[FieldSpec], Check]] = {
    "string": _text, "name": _name, "date": _date, "timestamp": _timestamp,
    "integer": _integer, "code": _code, "country": _country, "a_number": _a_number,
    "nested": _nested,
}  # fmt: skip


def _split(rule: SplitName, full: str) -> tuple[str | None, str | None]:
    if rule.style == "family, given":
        family, _, given = full.partition(",")
    elif rule.style == "family given":
        family, _, given = full.partition(" ")
    else:
        given, _, family = full.rpartition(" ")
    return (family.strip() or None), (given.strip() or None)


class Cleaned(NamedTuple):
    """A row that passed: its payload, what was set aside, and which columns were dropped."""

    payload: dict[str, Any]
    flags: dict[str, Any]
    dropped: list[str]


class RowValidator:
    """All of a definition's checks, compiled once, applied to one row at a time."""

    def __init__(self, definition: SourceDefinition) -> None:
        allowed = set(definition.agreement.allowed_fields)
        self.allowed = frozenset(allowed)
        self.checks = [
            (name, CHECKS[spec.type](spec), spec.required)
            for name, spec in definition.fields.items()
            if name in allowed
        ]
        self.splits = definition.split_names
        self.key_fields = definition.key_fields

    def __call__(self, row: dict[str, Any]) -> Cleaned:
        """Clean ``row``, or raise :class:`RowInvalid` with the first problem found."""
        payload: dict[str, Any] = {}
        flags: dict[str, Any] = {}
        for name, check, required in self.checks:
            value = row.get(name)
            if value is not None:
                try:
                    value = check(value)
                except Placeholder:
                    flags[name] = {"flag": "placeholder", "value": _as_text(row.get(name))}
                    value = None
                except Invalid as bad:
                    raise RowInvalid(
                        Problem(bad.reason, name, f"field {name}: {bad.message}")
                    ) from None
            if value is None and required and name not in flags:
                raise RowInvalid(Problem("required", name, f"field {name}: required, missing"))
            payload[name] = value
        for rule in self.splits:
            full = row.get(rule.source)
            if full:
                payload[rule.family], payload[rule.given] = _split(rule, str(full))
        for name in self.key_fields:
            if payload.get(name) in (None, ""):
                raise RowInvalid(
                    Problem("missing-key", name, f"field {name}: the record key is missing")
                )
        dropped = [k for k in row if k not in self.allowed]
        return Cleaned(payload, flags, dropped)


class RowInvalid(Exception):
    """The row cannot be loaded; ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _as_text(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value if value is None or isinstance(value, str | int | float) else str(value)
