"""Lifecycle building blocks: one function per kind of recorded event.

Each step books the record(s) a source system would hold for a batch of persons and updates
what the truth knows (registration, fingerprints). Category scripts in ``lifecycle.py`` and
``court.py`` are compositions of these steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from immigrationos.synth import dates
from immigrationos.synth.book import Book
from immigrationos.synth.config import WorldConfig
from immigrationos.synth.names import world_data
from immigrationos.synth.population import Persons, nationality_at

DAY_SECONDS = 86_400
Y = dates.years(1)
STAY_DAYS = {"WT": 90, "WB": 90, "B1": 180, "B2": 180}


@dataclass
class Ctx:
    """What every step needs: the chunk's random stream, its persons and the record book."""

    rng: np.random.Generator
    persons: Persons
    book: Book
    cfg: WorldConfig
    start: int
    asof: int

    def u(self, n: int) -> np.ndarray:
        return self.rng.random(n)

    def days(self, low: Any, high: Any, n: int) -> np.ndarray:
        return dates.uniform(self.rng, low, high, n)

    def pick(self, options: list[str], n: int, p: list[float] | None = None) -> np.ndarray:
        w = None if p is None else np.asarray(p, dtype=float) / sum(p)
        return np.array(options, dtype=object)[self.rng.choice(len(options), size=n, p=w)]

    def seen(self, p: np.ndarray, on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep only events on or before the as-of date (later ones are not yet recorded)."""
        keep = on <= self.asof
        return p[keep], on[keep]


def register(ctx: Ctx, p: np.ndarray, on: np.ndarray) -> None:
    """The person gets an A-number (first registration date kept)."""
    ps = ctx.persons
    ps.has_a[p] = True
    current = ps.a_issued[p]
    ps.a_issued[p] = np.where(current == dates.NULL, on, np.minimum(current, on))


def _land(ctx: Ctx, p: np.ndarray) -> np.ndarray:
    nat = world_data()["nationalities"]
    land = {k for k, v in nat.items() if v.get("land")}
    return np.isin(ctx.persons.birth_country[p], list(land))


def admit(ctx: Ctx, p: np.ndarray, on: np.ndarray, klass: Any, until: Any = dates.NULL) -> None:
    """An I-94 admission record (one per entry)."""
    n = len(p)
    land = _land(ctx, p) & (ctx.u(n) < 0.4)
    sea = ~land & (ctx.u(n) < 0.03)
    mode = np.where(land, "land", np.where(sea, "sea", "air")).astype(object)
    wd = world_data()
    port = ctx.pick(wd["air_ports"], n)
    port[sea] = ctx.pick(wd["sea_ports"], int(sea.sum()))
    port[land] = ctx.pick(wd["land_ports"], int(land.sum()))
    ctx.book.add(
        "arrivals", p, on, class_of_admission=klass, mode=mode, port=port,
        admitted_on=on, admitted_until=until,
    )  # fmt: skip


def visa(ctx: Ctx, p: np.ndarray, admit_on: np.ndarray, klass: Any) -> None:
    """A visa issued at the consular post of the person's country, before the entry."""
    issued = (admit_on - ctx.days(15, 700, len(p))).astype(np.int32)
    nat = world_data()["nationalities"]
    post = np.array([nat[c]["post"] for c in ctx.persons.birth_country[p]], dtype=object)
    ctx.book.add("visas", p, issued, visa_class=klass, issued_on=issued, post=post)


def encounter(ctx: Ctx, p: np.ndarray, on: np.ndarray, disposition: Any) -> None:
    """An enforcement encounter (fingerprints taken, so the person gets a FIN)."""
    p, on = ctx.seen(p, on)
    ctx.persons.encountered[p] = True
    office = ctx.pick(world_data()["field_offices"], len(p))
    ctx.book.add("encounters", p, on, encounter_date=on, office=office, disposition=disposition)


def benefit(ctx: Ctx, p: np.ndarray, form: str, filed: np.ndarray, **fields: Any) -> None:
    """A benefit application (receipt), with status and dates."""
    p_seen = filed <= ctx.asof
    cols = {k: (v[p_seen] if isinstance(v, np.ndarray) else v) for k, v in fields.items()}
    ctx.book.add("benefits", p[p_seen], filed[p_seen], form=form, filed_on=filed[p_seen], **cols)


def decision(ctx: Ctx, filed: np.ndarray, p_ok: float, lo: int, hi: int) -> tuple[np.ndarray, ...]:
    """Status and decision day of applications: approved, denied, or pending at as-of."""
    n = len(filed)
    decided = (filed + ctx.days(lo, hi, n)).astype(np.int32)
    approved = ctx.u(n) < p_ok
    status = np.where(approved, "approved", "denied").astype(object)
    pending = decided > ctx.asof
    status[pending] = "pending"
    decided = np.where(pending, dates.NULL, decided).astype(np.int32)
    return status, decided


def depart(ctx: Ctx, p: np.ndarray, on: np.ndarray, removal: bool = False) -> np.ndarray:
    """A verified departure (carrier manifest, or land exit for land-border nationals)."""
    p, on = ctx.seen(p, on)
    n = len(p)
    land = _land(ctx, p) & (ctx.u(n) < 0.5) & (not removal)
    wd = world_data()
    carrier = ctx.pick(wd["airlines"], n)
    flight = np.char.add(carrier.astype(str), ctx.rng.integers(10, 9999, n).astype(str))
    if removal:
        carrier[:] = "CHARTER"
        flight = np.char.add("RPN", ctx.rng.integers(100, 999, n).astype(str))
    flight = flight.astype(object)
    port = ctx.pick(wd["air_ports"], n)
    port[land] = ctx.pick(wd["land_ports"], int(land.sum()))
    carrier[land] = None
    flight[land] = None
    doc = np.where(removal & (ctx.u(n) < 0.4), "travel-document", "passport").astype(object)
    channel = np.where(land, "land_exit", "manifest").astype(object)
    _departure(ctx, p, on, channel=channel, carrier=carrier, flight=flight, port=port, doc=doc)
    return p


def self_report(ctx: Ctx, p: np.ndarray, on: np.ndarray) -> None:
    """A self-reported departure, later confirmed by a manifest or land exit for most."""
    p, on = ctx.seen(p, on)
    n = len(p)
    seconds = on.astype(np.int64) * DAY_SECONDS + ctx.rng.integers(0, DAY_SECONDS, n)
    reported = seconds + ctx.rng.integers(0, 10 * DAY_SECONDS, n)
    _departure(ctx, p, on, channel="self_report", seconds=seconds, reported_at=reported)
    confirmed = ctx.u(n) < ctx.cfg.population.self_report_confirmed
    depart(ctx, p[confirmed], (on[confirmed] + ctx.days(0, 3, int(confirmed.sum()))))


def _departure(ctx: Ctx, p: np.ndarray, on: np.ndarray, doc: Any = "passport", **cols: Any) -> None:
    n = len(p)
    seconds = cols.pop("seconds", None)
    if seconds is None:
        seconds = on.astype(np.int64) * DAY_SECONDS + ctx.rng.integers(0, DAY_SECONDS, n)
    ctx.book.add("departures", p, on, occurred_at=seconds, document_type=doc, **cols)


def entry_as_adult(ctx: Ctx, p: np.ndarray, entry: np.ndarray, lo: float, hi: float) -> None:
    """Birth dates making the persons ``lo``-``hi`` years old at entry."""
    ctx.persons.birth[p] = entry - ctx.days(dates.years(lo), dates.years(hi), len(p))


def foreign_passport(ctx: Ctx, p: np.ndarray, entry: np.ndarray) -> None:
    """First passport issued some months or years before the entry."""
    ctx.persons.first_passport[p] = entry - ctx.days(30, 5 * Y, len(p))


def visit(ctx: Ctx, p: np.ndarray, entry: np.ndarray, klass: np.ndarray) -> np.ndarray:
    """A visitor admission (visa first unless visa waiver); returns the admit-until day."""
    until = (entry + np.array([STAY_DAYS[k] for k in klass], dtype=np.int32)).astype(np.int32)
    needs_visa = np.isin(klass, ["B1", "B2"])
    visa(ctx, p[needs_visa], entry[needs_visa], klass[needs_visa])
    admit(ctx, p, entry, klass, until)
    return until


def citizenship(ctx: Ctx, p: np.ndarray) -> np.ndarray:
    """The country code of each person's citizenship today (for facts)."""
    return nationality_at(ctx.persons, p, np.full(len(p), ctx.asof, dtype=np.int32))
