"""Departure events: the versioned schema of the three channels, and reading raw bytes into it.

A departure event is one of

- ``manifest``: a carrier's passenger manifest line (name, birth date, sex, citizenship, the
  travel document's type, number, expiry and issuing country, carrier, flight, port, time);
- ``land_exit``: a land port's exit record (the same person and document fields, no carrier);
- ``self_report``: a person reporting their own departure through an app (``reported_at`` is
  when they reported it); it changes no case until a manifest or land exit confirms it.

The schema is :class:`DepartureEvent` (``schema_version`` 1); ``immos departures schema``
prints it as JSON Schema and ``departures/schema/departure-event.v1.json`` ships it for
producers. :func:`read_event` turns bytes into an event or raises :class:`Malformed` with
every problem in words; the processor stores such bytes in the dead-letter store.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).parent / "schema" / f"departure-event.v{SCHEMA_VERSION}.json"

EventId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 3166-1 alpha-3")]
DocumentNo = Annotated[str, Field(pattern=r"^[A-Z0-9]{5,12}$")]
Name = Annotated[str, Field(min_length=1, max_length=100)]


class Malformed(ValueError):
    """An event that cannot be read: the reason in words, and the event id if one was found."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


class _Event(BaseModel):
    """The fields every channel shares."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    schema_version: Literal[1] = 1
    event_id: EventId
    occurred_at: datetime = Field(description="When the person left (UTC).")
    family_name: Name | None = None
    given_name: Name | None = None
    birth_date: date | None = None
    sex: Literal["M", "F", "X"] | None = None
    citizenship: Country | None = None
    document_type: Literal["passport", "travel-document", "other"] | None = None
    document_no: DocumentNo | None = None
    document_expiry: date | None = None
    document_country: Country | None = None
    port: Annotated[str, Field(max_length=64)] | None = None

    @model_validator(mode="after")
    def _person_named(self) -> _Event:
        if not (self.family_name or self.given_name):
            raise ValueError("a departure names its person: family_name or given_name")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a time zone (use UTC, e.g. 2026-10-01T12:00:00Z)")
        if self.birth_date and self.birth_date > self.occurred_at.date():
            raise ValueError("birth_date is after occurred_at")
        return self

    @property
    def occurred(self) -> datetime:
        return self.occurred_at.astimezone(UTC)


class Manifest(_Event):
    """A passenger manifest line from a carrier (air or sea)."""

    channel: Literal["manifest"]
    carrier: Annotated[str, Field(min_length=1, max_length=64)]
    flight: Annotated[str, Field(min_length=1, max_length=16)]
    port: Annotated[str, Field(min_length=1, max_length=64)]
    reported_at: None = None


class LandExit(_Event):
    """An exit recorded at a land port."""

    channel: Literal["land_exit"]
    port: Annotated[str, Field(min_length=1, max_length=64)]
    carrier: None = None
    flight: None = None
    reported_at: None = None


class SelfReport(_Event):
    """A departure the person reported (app-style), confirmed later by a manifest or exit."""

    channel: Literal["self_report"]
    reported_at: datetime = Field(description="When the person reported the departure.")
    carrier: None = None
    flight: None = None

    @model_validator(mode="after")
    def _reported_after(self) -> SelfReport:
        if self.reported_at.tzinfo is None:
            raise ValueError("reported_at needs a time zone")
        return self


DepartureEvent = Annotated[Manifest | LandExit | SelfReport, Field(discriminator="channel")]
ADAPTER: TypeAdapter[Manifest | LandExit | SelfReport] = TypeAdapter(DepartureEvent)
CHANNELS = ("manifest", "land_exit", "self_report")


def json_schema() -> dict[str, Any]:
    """The event schema as JSON Schema (draft 2020-12), titled and versioned."""
    schema = ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://immigrationos.example/schema/departure-event.v{SCHEMA_VERSION}.json",
        "title": f"ImmigrationOS departure event, version {SCHEMA_VERSION}",
        **schema,
    }


def read_event(raw: bytes | str | dict[str, Any]) -> Manifest | LandExit | SelfReport:
    """Parse and validate one event; :class:`Malformed` lists what is wrong."""
    data: Any = raw
    if isinstance(raw, bytes | str):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Malformed(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Malformed(f"an event is a JSON object, not {type(data).__name__}")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    channel = data.get("channel")
    if channel not in CHANNELS:
        raise Malformed(f"unknown channel {channel!r} (one of {', '.join(CHANNELS)})", event_id)
    # Producers send nulls for fields a channel does not have; drop them before validating.
    cleaned = {k: v for k, v in data.items() if v is not None}
    try:
        return ADAPTER.validate_python(cleaned)
    except ValidationError as exc:
        raise Malformed(_problems(exc), event_id) from exc


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(x) for x in error["loc"][1:]) or "event"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def write_schema(path: Path = SCHEMA_FILE) -> Path:
    """Write the JSON Schema file (the shipped one is checked against this by a test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    return path
