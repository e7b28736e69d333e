"""NATS JetStream fixtures: the server, a stream of one's own per test, a store ready for
departure events, and synthetic events.

The server is ``IMMOS_NATS_URL`` (default nats://127.0.0.1:4222, with JetStream). Without
one these tests skip with the reason; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from tests.conftest import IN_CI

from immigrationos.core.settings import Settings
from immigrationos.departures.nats_transport import nats_url
from immigrationos.gateway.context import system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

NATS_URL = nats_url()


@cache
def _nats_unavailable() -> str | None:
    async def quiet(_: Exception) -> None:
        pass

    async def probe() -> None:
        nc = await nats.connect(
            NATS_URL, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=1,
            error_cb=quiet,
        )  # fmt: skip
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
        return None
    except Exception as exc:
        return f"NATS JetStream not reachable at {NATS_URL}: {type(exc).__name__}: {exc}"


def require_nats() -> None:
    """Skip (or, under CI=true, fail) when the NATS server with JetStream is absent."""
    reason = _nats_unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true requires NATS: {reason}")
        pytest.skip(reason)


@dataclass(frozen=True)
class Names:
    """A stream, subject and durable of one test's own (they never collide with a demo's)."""

    stream: str
    subject: str
    durable: str

    @property
    def routing(self) -> dict[str, str]:
        return {"stream": self.stream, "subject": self.subject}


async def _delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


@pytest.fixture
def nats_names() -> Iterator[Names]:
    """Unique names for this test; the stream is deleted afterwards."""
    require_nats()
    tag = uuid.uuid4().hex[:10]
    names = Names(f"IMMOS_T_{tag}", f"immos.test.{tag}.departures", f"immos-t-{tag}")
    yield names
    asyncio.run(_delete_stream(names.stream))


def store_settings(folder: Path) -> Settings:
    """Demo settings on a SQLite file in ``folder`` (HTML documents only: PDFs are slow)."""
    return Settings(
        mode="demo",
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'immos.db'}",
        documents_pdf=False,
    )


def register_departures(runtime: Runtime) -> None:
    """Register the shipped departures source (the processor refuses to run without it)."""
    ctx = system_context(Purpose.DATA_INTEGRATION, "departure transport tests")
    (definition,) = [d for d in shipped_definitions() if d.id == "departures"]
    with transaction(runtime.sessions) as session:
        register(session, definition, ctx)


@pytest.fixture
def departures_store(tmp_path: Path) -> Iterator[Runtime]:
    """An empty migrated SQLite store with the departures source registered."""
    runtime = open_runtime(store_settings(tmp_path))
    register_departures(runtime)
    try:
        yield runtime
    finally:
        runtime.close()


# -- synthetic events ------------------------------------------------------------------------

COUNTRIES = ("MEX", "GTM", "HND", "SLV", "IND", "CHN", "PHL", "VNM", "NGA", "BRA", "COL", "UKR")
PORTS = ("JFK", "LAX", "MIA", "ORD", "IAH", "SFO", "San Ysidro", "El Paso", "Laredo")
CARRIERS = ("AA", "DL", "UA", "AM", "CM", "AV")


def _name(rng: random.Random) -> str:
    letters = string.ascii_lowercase
    return "".join(rng.choice(letters) for _ in range(rng.randint(3, 10))).capitalize()


def synthetic_event(rng: random.Random, event_id: str, at: datetime) -> dict[str, Any]:
    """A valid departure event of a made-up person (schema version 1)."""
    channel = rng.choices(("manifest", "land_exit", "self_report"), (70, 25, 5))[0]
    birth = date(1940, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    event: dict[str, Any] = {
        "event_id": event_id, "channel": channel,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "family_name": _name(rng), "given_name": _name(rng),
        "birth_date": birth.isoformat(), "sex": rng.choice("MF"),
        "citizenship": rng.choice(COUNTRIES), "document_type": "passport",
        "document_no": f"P{rng.randrange(10**8):08d}", "document_country": rng.choice(COUNTRIES),
        "document_expiry": (at.date() + timedelta(days=rng.randrange(30, 3650))).isoformat(),
        "port": rng.choice(PORTS),
    }  # fmt: skip
    if channel == "manifest":
        carrier = rng.choice(CARRIERS)
        event |= {"carrier": carrier, "flight": f"{carrier}{rng.randrange(1, 9999)}"}
    elif channel == "self_report":
        event["reported_at"] = (at + timedelta(hours=rng.randrange(1, 48))).isoformat()
    return event


def synthetic_events(count: int, prefix: str, seed: int = 1) -> list[bytes]:
    """``count`` valid events with ids ``<prefix>-000001`` …, occurring over the past year."""
    rng = random.Random(seed)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    return [
        orjson.dumps(synthetic_event(rng, f"{prefix}-{i:06d}", start + timedelta(seconds=300 * i)))
        for i in range(1, count + 1)
    ]
