"""Category scripts: the life of each kind of person, as the records it leaves behind.

One function per population category (court-related ones are in ``court.py``); each draws
the true event dates for its persons, books the records, and stores the true facts (status,
departure) that the ground-truth file exposes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np

from immigrationos.synth import court, dates, steps
from immigrationos.synth.names import world_data
from immigrationos.synth.steps import Ctx, Y

IMMIGRANT_CLASSES = ["IR1", "CR1", "F21", "F41", "E21", "IR5", "DV"]


def _green_card(ctx: Ctx, p: np.ndarray, entry: np.ndarray) -> np.ndarray:
    """Immigrant visa at entry, or adjustment (I-130 + I-485) after a nonimmigrant entry."""
    n = len(p)
    consular = ctx.u(n) < 0.55
    klass = ctx.pick(IMMIGRANT_CLASSES, n)
    klass[~consular] = ctx.pick(["B2", "F1", "H1B"], int((~consular).sum()))
    until = np.where(consular, dates.NULL, entry + 180).astype(np.int32)
    steps.visa(ctx, p, entry, klass)
    steps.admit(ctx, p, entry, klass, until)
    filed = (entry + ctx.days(60, 2 * Y, n)).astype(np.int32)
    decided = (filed + ctx.days(180, 2 * Y, n)).astype(np.int32)
    adj = np.flatnonzero(~consular)
    for form in ("I-130", "I-485"):
        steps.benefit(ctx, p[adj], form, filed[adj], status="approved", decided_on=decided[adj])
    lpr_on = np.where(consular, entry, decided).astype(np.int32)
    steps.register(ctx, p, np.where(consular, entry, filed).astype(np.int32))
    ctx.persons.fact("lpr_on", p, lpr_on)
    steps.foreign_passport(ctx, p, entry)
    return lpr_on


def _us_passport(ctx: Ctx, p: np.ndarray, since: np.ndarray, share: float) -> np.ndarray:
    got = p[ctx.u(len(p)) < share]
    since_got = since[np.isin(p, got)]
    issued = ctx.days(since_got + 30, ctx.asof, len(got))
    ctx.book.add("citizenship_evidence", got, issued, kind="passport", issued_on=issued)
    return got


def _travel(ctx: Ctx, p: np.ndarray, after: np.ndarray, share: float, returns: bool) -> None:
    """Trips abroad: a departure and (for residents) the re-entry."""
    trav = ctx.u(len(p)) < share
    who, since = p[trav], after[trav]
    out = ctx.days(since + 30, ctx.asof - 30, len(who))
    steps.depart(ctx, who, out)
    if returns:
        back = (out + ctx.days(5, 60, len(who))).astype(np.int32)
        who, back = ctx.seen(who, back)
        steps.admit(ctx, who, back, "LPR")


def citizen_birth(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    birth = ctx.days(ctx.asof - dates.years(85), ctx.asof - Y, n)
    ctx.persons.birth[p] = birth
    cert = (birth + ctx.days(1, 60, n)).astype(np.int32)
    ctx.book.add("citizenship_evidence", p, cert, kind="birth", issued_on=cert)
    adult = birth + dates.years(18) < ctx.asof - 60
    holders = _us_passport(
        ctx, p[adult], np.maximum(birth[adult] + dates.years(18), ctx.start), 0.45
    )
    ctx.persons.first_passport[holders] = np.maximum(
        ctx.persons.birth[holders] + dates.years(18), ctx.start
    )
    _travel(ctx, holders, ctx.persons.first_passport[holders], 0.6, returns=False)
    wrong = p[adult & (ctx.u(n) < 0.003)]
    steps.encounter(ctx, wrong, ctx.days(ctx.start, ctx.asof, len(wrong)), "released")
    ctx.persons.fact("status", p, "citizen")


def citizen_naturalized(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    entry = ctx.days(ctx.start - 8 * Y, ctx.asof - 7 * Y, n)
    steps.entry_as_adult(ctx, p, entry, 18, 45)
    lpr_on = _green_card(ctx, p, entry)
    nat = np.minimum(lpr_on + 5 * Y + ctx.days(0, 6 * Y, n), ctx.asof - 30).astype(np.int32)
    steps.benefit(
        ctx, p, "N-400", (nat - ctx.days(150, Y, n)).astype(np.int32), status="approved",
        decided_on=nat,
    )  # fmt: skip
    ctx.book.add("citizenship_evidence", p, nat, kind="naturalization", issued_on=nat)
    ctx.persons.us_from[p] = nat
    _us_passport(ctx, p, nat, 0.6)
    old = p[ctx.u(n) < 0.05]
    pos = np.searchsorted(p, old)
    steps.encounter(ctx, old, ctx.days(entry[pos], nat[pos], len(old)), "no action")
    late = p[ctx.u(n) < 0.02]
    steps.encounter(
        ctx, late, ctx.days(nat[np.searchsorted(p, late)], ctx.asof, len(late)), "released"
    )
    ctx.persons.fact("status", p, "citizen")
    ctx.persons.fact("naturalized_on", p, nat)
    ctx.persons.fact("entered_on", p, entry)


def citizen_derived(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    birth = ctx.days(ctx.asof - dates.years(40), ctx.asof - dates.years(8), n)
    ctx.persons.birth[p] = birth
    entry = ctx.days(
        np.maximum(ctx.start - 8 * Y, birth + Y), np.minimum(birth + 15 * Y, ctx.asof - 2 * Y), n
    )
    klass = ctx.pick(["IR2", "CR2"], n)
    steps.visa(ctx, p, entry, klass)
    steps.admit(ctx, p, entry, klass)
    steps.register(ctx, p, entry)
    steps.foreign_passport(ctx, p, entry)
    derived = np.minimum(entry + ctx.days(2 * Y, 8 * Y, n), ctx.asof - 1)
    derived = np.minimum(derived, birth + dates.years(18) - 1).astype(np.int32)
    derived = np.maximum(derived, entry).astype(np.int32)
    cert = (derived + ctx.days(Y // 2, 6 * Y, n)).astype(np.int32)
    has = (ctx.u(n) < 0.6) & (cert <= ctx.asof)
    ctx.book.add("citizenship_evidence", p[has], cert[has], kind="derived", issued_on=cert[has])
    ctx.persons.us_from[p] = derived
    adult = birth + dates.years(18) < ctx.asof - 30
    wrong = p[adult & (ctx.u(n) < 0.03)]
    since = np.maximum(birth[np.searchsorted(p, wrong)] + dates.years(18), ctx.start)
    steps.encounter(ctx, wrong, ctx.days(since, ctx.asof, len(wrong)), "released")
    ctx.persons.fact("status", p, "citizen")
    ctx.persons.fact("derived_on", p, derived)
    ctx.persons.fact("entered_on", p, entry)


def lpr(ctx: Ctx, p: np.ndarray) -> None:
    entry = ctx.days(ctx.start, ctx.asof - Y, len(p))
    steps.entry_as_adult(ctx, p, entry, 18, 55)
    lpr_on = _green_card(ctx, p, entry)
    _travel(ctx, p, lpr_on, 0.4, returns=True)
    ctx.persons.fact("status", p, np.where(lpr_on <= ctx.asof, "lpr", "lpr-pending"))
    ctx.persons.fact("entered_on", p, entry)


def _visit_class(ctx: Ctx, p: np.ndarray) -> np.ndarray:
    n = len(p)
    vwp = np.isin(ctx.persons.birth_country[p], world_data()["visa_waiver"])
    klass = np.where(ctx.u(n) < 0.8, "B2", "B1").astype(object)
    klass[vwp] = np.where(ctx.u(int(vwp.sum())) < 0.75, "WT", "WB")
    return klass


def _visitor(ctx: Ctx, p: np.ndarray, kind: str) -> None:
    n = len(p)
    klass = _visit_class(ctx, p)
    margin = 10 if kind == "on_time" else 220
    entry = ctx.days(ctx.start, ctx.asof - margin, n)
    steps.entry_as_adult(ctx, p, entry, 18, 70)
    steps.foreign_passport(ctx, p, entry)
    earlier = (ctx.u(n) < 0.3) & (entry > ctx.start + 2 * Y)
    first = ctx.days(ctx.start, entry[earlier] - Y, int(earlier.sum()))
    back = steps.visit(ctx, p[earlier], first, klass[earlier])
    steps.depart(ctx, p[earlier], ctx.days(first + 1, back, len(first)))
    until = steps.visit(ctx, p, entry, klass)
    left = _leave(ctx, p, entry, until, kind)
    ctx.persons.fact("entered_on", p, entry)
    ctx.persons.fact("admitted_until", p, until)
    status = np.where(left != dates.NULL, "departed", "in-status").astype(object)
    status[(left == dates.NULL) & (until < ctx.asof)] = "overstay"
    ctx.persons.fact("status", p, status)
    ctx.persons.has_itin[p[(kind == "overstay") & (ctx.u(n) < 0.25)]] = True


def _leave(ctx: Ctx, p: np.ndarray, entry: np.ndarray, until: np.ndarray, kind: str) -> np.ndarray:
    """Book the departure of a visit; returns the departure day (NULL if none by as-of)."""
    n = len(p)
    if kind == "on_time":
        out = ctx.days(entry + 1, until + 1, n)
    elif kind == "late":
        out = (until + ctx.days(1, 400, n)).astype(np.int32)
    else:
        out = np.where(ctx.u(n) < 0.1, until + ctx.days(60, 1500, n), dates.NULL).astype(np.int32)
    out = np.where(out <= ctx.asof, out, dates.NULL).astype(np.int32)
    went = out != dates.NULL
    reported = went & ((kind == "overstay") | ((kind == "late") & (ctx.u(n) < 0.2)))
    steps.self_report(ctx, p[reported], out[reported])
    steps.depart(ctx, p[went & ~reported], out[went & ~reported])
    label = {"on_time": "on-time", "late": "late", "overstay": "self-deported"}[kind]
    ctx.persons.fact("departed_on", p[went], out[went])
    ctx.persons.fact("departure_kind", p[went], label)
    return out


def visitor_on_time(ctx: Ctx, p: np.ndarray) -> None:
    _visitor(ctx, p, "on_time")


def visitor_late(ctx: Ctx, p: np.ndarray) -> None:
    _visitor(ctx, p, "late")


def visitor_overstay(ctx: Ctx, p: np.ndarray) -> None:
    _visitor(ctx, p, "overstay")


def _sojourner(
    ctx: Ctx, p: np.ndarray, classes: list[str], weights: list[float], stay: int
) -> None:
    """Students and workers: visa, admission, and departure at the end of the programme."""
    n = len(p)
    klass = ctx.pick(classes, n, weights)
    entry = ctx.days(ctx.start, ctx.asof - 30, n)
    steps.entry_as_adult(ctx, p, entry, 18, 32)
    steps.foreign_passport(ctx, p, entry)
    steps.visa(ctx, p, entry, klass)
    until = np.where(klass == "F1", dates.NULL, entry + stay).astype(np.int32)
    until[klass == "J1"] = dates.NULL
    steps.admit(ctx, p, entry, klass, until)
    out = (entry + ctx.days(Y, 6 * Y, n)).astype(np.int32)
    leaves = (ctx.u(n) < 0.7) & (out <= ctx.asof)
    steps.depart(ctx, p[leaves], out[leaves])
    ctx.persons.fact("departed_on", p[leaves], out[leaves])
    ctx.persons.fact("departure_kind", p[leaves], "on-time")
    ctx.persons.fact("status", p, np.where(leaves, "departed", "in-status"))
    ctx.persons.fact("entered_on", p, entry)


def student(ctx: Ctx, p: np.ndarray) -> None:
    _sojourner(ctx, p, ["F1", "J1"], [0.8, 0.2], 0)
    ctx.persons.has_itin[p[ctx.u(len(p)) < 0.15]] = True


def temporary_worker(ctx: Ctx, p: np.ndarray) -> None:
    _sojourner(ctx, p, ["H1B", "L1", "O1"], [0.7, 0.2, 0.1], 3 * Y)


def tps(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    entry = ctx.days(ctx.start, ctx.asof - 3 * Y, n)
    steps.entry_as_adult(ctx, p, entry, 18, 55)
    steps.foreign_passport(ctx, p, entry)
    ewi = ctx.u(n) < 0.5
    steps.visit(ctx, p[~ewi], entry[~ewi], np.full(int((~ewi).sum()), "B2", dtype=object))
    filed = ctx.days(entry + 30, ctx.asof - 2 * Y, n)
    steps.register(ctx, p, filed)
    valid = _renewals(ctx, p, filed, "I-821", 18 * 30, 5)
    ctx.persons.fact("tps_valid_until", p, valid)
    ctx.persons.fact("status", p, np.where(valid >= ctx.asof, "tps", "tps-expired"))
    ctx.persons.fact("entered_on", p, entry)
    ctx.persons.has_itin[p[ctx.u(n) < 0.3]] = True


def _renewals(
    ctx: Ctx, p: np.ndarray, first: np.ndarray, form: str, term: int, most: int
) -> np.ndarray:
    """Initial filing plus periodic re-registrations; returns the latest valid-until day."""
    n = len(p)
    count = ctx.rng.integers(1, most + 1, n)
    valid = np.full(n, dates.NULL, dtype=np.int32)
    for k in range(most):
        act = np.flatnonzero((count > k) & (first + k * term <= ctx.asof))
        filed = (first[act] + k * term).astype(np.int32)
        status, decided = steps.decision(ctx, filed, 0.95, 60, 240)
        until = np.where(status == "approved", decided + term, dates.NULL).astype(np.int32)
        steps.benefit(
            ctx, p[act], form, filed, status=status, decided_on=decided, valid_until=until
        )
        valid[act] = np.maximum(valid[act], until)
    return valid


def daca(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    cutoff = dates.day(date(2007, 6, 15))
    birth = ctx.days(cutoff - dates.years(25), cutoff - dates.years(1), n)
    ctx.persons.birth[p] = birth
    entry = ctx.days(birth + 180, np.minimum(birth + dates.years(15), cutoff), n)
    visa_entry = ctx.u(n) < 0.3
    steps.visit(
        ctx, p[visa_entry], entry[visa_entry], np.full(int(visa_entry.sum()), "B2", dtype=object)
    )
    ctx.persons.first_passport[p] = np.maximum(entry - 365, birth + 30)
    program = dates.day(date(2012, 8, 15))
    first = ctx.days(program, program + 5 * Y, n)
    steps.register(ctx, p, first)
    valid = _renewals(ctx, p, first, "I-821D", 2 * Y, 7)
    ctx.persons.fact("daca_valid_until", p, valid)
    ctx.persons.fact("status", p, np.where(valid >= ctx.asof, "daca", "daca-expired"))
    ctx.persons.fact("entered_on", p, entry)
    ctx.persons.has_itin[p[ctx.u(n) < 0.3]] = True


def asylum_seeker(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    entry = ctx.days(ctx.asof - 10 * Y, ctx.asof - 120, n)
    steps.entry_as_adult(ctx, p, entry, 18, 50)
    steps.foreign_passport(ctx, p, entry)
    ewi = ctx.u(n) < 0.6
    steps.encounter(
        ctx, p[ewi], entry[ewi], ctx.pick(["NTA issued", "released"], int(ewi.sum()), [0.7, 0.3])
    )
    steps.visit(ctx, p[~ewi], entry[~ewi], np.full(int((~ewi).sum()), "B2", dtype=object))
    filed = np.minimum(entry + ctx.days(30, Y, n), ctx.asof - 1).astype(np.int32)
    status, decided = steps.decision(ctx, filed, 0.5, 180, 5 * Y)
    steps.benefit(ctx, p, "I-589", filed, status=status, decided_on=decided)
    steps.register(ctx, p, np.where(ewi, entry, filed).astype(np.int32))
    in_court = (status == "denied") | (ewi & (status == "pending") & (ctx.u(n) < 0.5))
    court.open_cases(ctx, p[in_court], np.maximum(entry, filed)[in_court], ewi[in_court])
    ctx.persons.fact("status", p, np.where(status == "approved", "asylee", "asylum-" + status))
    ctx.persons.fact("entered_on", p, entry)
    ctx.persons.has_itin[p[ctx.u(n) < 0.4]] = True


SCRIPTS: dict[str, Callable[[Ctx, np.ndarray], None]] = {
    "citizen_birth": citizen_birth,
    "citizen_naturalized": citizen_naturalized,
    "citizen_derived": citizen_derived,
    "lpr": lpr,
    "visitor_on_time": visitor_on_time,
    "visitor_late": visitor_late,
    "visitor_overstay": visitor_overstay,
    "student": student,
    "temporary_worker": temporary_worker,
    "asylum_seeker": asylum_seeker,
    "tps": tps,
    "daca": daca,
    **court.SCRIPTS,
}
