"""Court paths: encounter, Notice to Appear, proceedings, hearings, decisions, appeals.

Court records are nested (case -> proceedings -> hearings, decision, appeal), so cases are
assembled as plain dicts per person; the categories that end in court (in proceedings, final
order, voluntary departure, protection grant, removed) share one path and differ only in the
decision they reach and what happens after it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np

from immigrationos.synth import dates, steps
from immigrationos.synth.names import world_data
from immigrationos.synth.steps import Ctx, Y

EWI_CHARGE = "212(a)(6)(A)(i)"
OVERSTAY_CHARGE = "237(a)(1)(B)"
CRIME_CHARGES = ["237(a)(2)(A)(iii)", "237(a)(2)(B)(i)", "237(a)(2)(A)(i)"]
HEARING_TIMES = ["08:30", "09:00", "10:00", "13:00", "14:30"]


def iso(day: int) -> str:
    return (dates.EPOCH + timedelta(days=int(day))).isoformat()


class CaseBuilder:
    """Builds the nested proceedings of one case with scalar draws from the chunk stream."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.rng = ctx.rng

    def between(self, low: int, high: int) -> int:
        return int(low + self.rng.integers(0, max(1, high - low)))

    def hearings(self, opened: int, count: int, final: str | None) -> list[dict[str, Any]]:
        """Master hearings every few months; an individual hearing when one decides the case."""
        location = str(self.rng.choice(world_data()["courts"]))
        out, day = [], opened + self.between(30, 180)
        for i in range(count):
            out.append(self._hearing(day, "master", location))
            if day > self.ctx.asof:
                break
            if i < count - 1:
                day += self.between(60, 240)
        if final == "individual" and out[-1]["date"] <= iso(self.ctx.asof):
            out.append(self._hearing(day + self.between(90, 400), "individual", location))
        return out

    def _hearing(self, day: int, kind: str, location: str) -> dict[str, Any]:
        time = str(self.rng.choice(HEARING_TIMES))
        return {"date": iso(day), "time": time, "type": kind, "location": location}

    def proceeding(self, kind: str, opened: int, hearings: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": kind,
            "opened_on": iso(opened),
            "hearings": hearings,
            "decision": None,
            "appeal": None,
        }

    def appeal(self, decided: int, p_sustain: float) -> tuple[dict[str, Any], int | None]:
        """Appeal filed within 30 days; returns it and the day it made the order final."""
        filed = decided + self.between(3, 30)
        ruled = filed + self.between(120, 700)
        if ruled > self.ctx.asof:
            return {"filed_on": iso(filed), "decided_on": None, "outcome": "pending"}, None
        outcome = "sustained" if self.rng.random() < p_sustain else "dismissed"
        final = ruled if outcome == "dismissed" else None
        return {"filed_on": iso(filed), "decided_on": iso(ruled), "outcome": outcome}, final


def _decided_day(hearings: list[dict[str, Any]]) -> int:
    return (date.fromisoformat(hearings[-1]["date"]) - dates.EPOCH).days


def _arrive(ctx: Ctx, p: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Entry without inspection (with a border encounter) or a visa overstay; returns the
    encounter day that starts the case and whether entry was without inspection."""
    n = len(p)
    entry = ctx.days(lo, hi, n)
    steps.entry_as_adult(ctx, p, entry, 18, 55)
    steps.foreign_passport(ctx, p, entry)
    ewi = ctx.u(n) < 0.6
    until = np.zeros(n, dtype=np.int32)
    until[~ewi] = steps.visit(
        ctx, p[~ewi], entry[~ewi], np.full(int((~ewi).sum()), "B2", dtype=object)
    )
    met = np.where(ewi, entry, np.minimum(until + ctx.days(30, 2 * Y, n), hi + Y)).astype(np.int32)
    steps.encounter(ctx, p, met, "NTA issued")
    steps.register(ctx, p, met)
    ctx.persons.fact("entered_on", p, entry)
    return met, ewi


def _charges(ctx: Ctx, ewi: np.ndarray) -> np.ndarray:
    charge = np.where(ewi, EWI_CHARGE, OVERSTAY_CHARGE).astype(object)
    crime = ctx.u(len(ewi)) < 0.1
    charge[crime] = ctx.pick(CRIME_CHARGES, int(crime.sum()))
    return charge


def book_cases(
    ctx: Ctx, p: np.ndarray, nta: np.ndarray, charge: np.ndarray, cases: list[Any]
) -> None:
    procs = np.empty(len(cases), dtype=object)
    procs[:] = cases
    ctx.book.add("court", p, nta, charge=charge, nta_served_on=nta, proceedings=procs)


def open_cases(ctx: Ctx, p: np.ndarray, since: np.ndarray, ewi: np.ndarray) -> None:
    """Removal proceedings still open at as-of (asylum seekers, people in proceedings)."""
    b = CaseBuilder(ctx)
    nta = np.minimum(since + ctx.days(0, 60, len(p)), ctx.asof - 121).astype(np.int32)
    cases = []
    for day in nta:
        opened = int(day) + b.between(10, 120)
        proc = b.proceeding("removal-240", opened, b.hearings(opened, b.between(1, 5), None))
        if b.rng.random() < 0.1 and proc["hearings"][-1]["date"] <= iso(ctx.asof):
            proc["decision"] = {"type": "admin-closed", "decided_on": proc["hearings"][-1]["date"]}
        cases.append([proc])
    book_cases(ctx, p, nta, _charges(ctx, ewi), cases)
    ctx.persons.fact("status", p, "in-proceedings")


def in_proceedings(ctx: Ctx, p: np.ndarray) -> None:
    met, ewi = _arrive(ctx, p, ctx.asof - 8 * Y, ctx.asof - Y)
    met = np.minimum(met, ctx.asof - 90).astype(np.int32)
    _prior_cases(ctx, p, met, 0.05)
    open_cases(ctx, p, met, ewi)
    ctx.persons.has_itin[p[ctx.u(len(p)) < 0.3]] = True


def _prior_cases(ctx: Ctx, p: np.ndarray, before: np.ndarray, share: float) -> None:
    """An earlier, terminated case for some persons (so they have two court cases)."""
    b = CaseBuilder(ctx)
    who = np.flatnonzero((ctx.u(len(p)) < share) & (before > ctx.start + 3 * Y))
    nta = ctx.days(ctx.start, before[who] - 2 * Y, len(who))
    cases = []
    for day in nta:
        proc = b.proceeding("removal-240", int(day) + 30, b.hearings(int(day) + 30, 2, None))
        proc["decision"] = {"type": "terminated", "decided_on": proc["hearings"][-1]["date"]}
        cases.append([proc])
    book_cases(ctx, p[who], nta, np.full(len(who), OVERSTAY_CHARGE, dtype=object), cases)


def _decide(
    ctx: Ctx, p: np.ndarray, kinds: np.ndarray, extra: Any = None
) -> tuple[np.ndarray, ...]:
    """Cases that reached a decision; returns decision and final-order days per person."""
    met, ewi = _arrive(ctx, p, ctx.start, ctx.asof - 6 * Y)
    b = CaseBuilder(ctx)
    nta = (met + ctx.days(0, 30, len(p))).astype(np.int32)
    decided = np.zeros(len(p), dtype=np.int32)
    final = np.full(len(p), dates.NULL, dtype=np.int32)
    cases = []
    for i, kind in enumerate(kinds):
        proc, decided[i], final[i] = _decided_case(b, kind, int(nta[i]), extra, i)
        cases.append([proc])
    book_cases(ctx, p, nta, _charges(ctx, ewi), cases)
    return decided, final


def _decided_case(b: CaseBuilder, kind: str, nta: int, extra: Any, i: int) -> tuple[Any, int, int]:
    if kind == "expedited":
        proc = b.proceeding("expedited-235b1", nta, [])
        day = nta + b.between(1, 14)
        proc["decision"] = {"type": "removal-ordered", "decided_on": iso(day)}
        return proc, day, day
    opened = nta + b.between(10, 120)
    absentia = kind == "in-absentia"
    proc = b.proceeding(
        "removal-240",
        opened,
        b.hearings(opened, b.between(1, 4), None if absentia else "individual"),
    )
    day = _decided_day(proc["hearings"])
    proc["decision"] = {"type": kind, "decided_on": iso(day)}
    if extra is not None:
        proc["decision"].update(extra(day, i))
    final: int | None = day if absentia else day + 30
    if kind == "removal-ordered" and b.rng.random() < 0.35:
        proc["appeal"], final = b.appeal(day, 0.15)
    return proc, day, int(dates.NULL) if final is None else final


def final_order(ctx: Ctx, p: np.ndarray) -> None:
    kinds = ctx.pick(["removal-ordered", "in-absentia"], len(p), [0.55, 0.45])
    _prior_cases(ctx, p, np.full(len(p), ctx.asof - 5 * Y, dtype=np.int32), 0.1)
    _, final = _decide(ctx, p, kinds)
    ctx.persons.fact("final_order_on", p, final)
    status = np.where(final != dates.NULL, "final-order", "appeal-pending").astype(object)
    leave = (final != dates.NULL) & (ctx.u(len(p)) < 0.1)
    out = (final[leave] + ctx.days(30, 900, int(leave.sum()))).astype(np.int32)
    steps.self_report(ctx, p[leave], out)
    _departed(ctx, p[leave], out, "self-deported")
    status[np.flatnonzero(leave)[out <= ctx.asof]] = "departed"
    ctx.persons.fact("status", p, status)
    ctx.persons.has_itin[p[ctx.u(len(p)) < 0.2]] = True


def _departed(ctx: Ctx, p: np.ndarray, on: np.ndarray, kind: str) -> None:
    seen = on <= ctx.asof
    ctx.persons.fact("departed_on", p[seen], on[seen])
    ctx.persons.fact("departure_kind", p[seen], kind)


def voluntary_departure(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    allowed = np.where(ctx.u(n) < 0.3, 120, 60)
    kinds = np.full(n, "voluntary-departure", dtype=object)
    decided, _ = _decide(ctx, p, kinds, lambda day, i: {"vd_deadline": iso(day + allowed[i])})
    deadline = (decided + allowed).astype(np.int32)
    u = ctx.u(n)
    out = np.where(u < 0.6, decided + ctx.days(1, allowed + 1, n), deadline + ctx.days(1, 300, n))
    go = u < 0.8
    report = go & (ctx.u(n) < 0.5)
    steps.self_report(ctx, p[report], out[report].astype(np.int32))
    steps.depart(ctx, p[go & ~report], out[go & ~report].astype(np.int32))
    late = out > deadline
    _departed(ctx, p[go & ~late], out[go & ~late].astype(np.int32), "voluntary-on-time")
    _departed(ctx, p[go & late], out[go & late].astype(np.int32), "voluntary-late")
    ctx.persons.fact("vd_deadline", p, deadline)
    status = np.where(go & ~late, "departed-voluntarily", "vd-deadline-missed").astype(object)
    status[go & late] = "departed-late"
    ctx.persons.fact("status", p, status)


def protection_grant(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    kinds = ctx.pick(["withholding-granted", "cat-granted"], n, [0.6, 0.4])
    country = ctx.persons.birth_country[p]
    decided, _ = _decide(ctx, p, kinds, lambda day, i: {"protected_country": str(country[i])})
    asked = ctx.u(n) < 0.6
    filed = (decided[asked] - ctx.days(200, 2 * Y, int(asked.sum()))).astype(np.int32)
    steps.benefit(ctx, p[asked], "I-589", filed, status="denied", decided_on=decided[asked])
    ctx.persons.fact("protected_country", p, country)
    ctx.persons.fact("status", p, "protection-granted")


def removed(ctx: Ctx, p: np.ndarray) -> None:
    n = len(p)
    kinds = ctx.pick(["removal-ordered", "in-absentia", "expedited"], n, [0.45, 0.3, 0.25])
    _, final = _decide(ctx, p, kinds)
    gone = final != dates.NULL
    out = (final + ctx.days(20, 300, n)).astype(np.int32)
    left = steps.depart(ctx, p[gone], out[gone], removal=True)
    _departed(ctx, p[gone], out[gone], "removed")
    ctx.persons.fact("final_order_on", p, final)
    ctx.persons.fact("status", p, np.where(gone, "removed", "appeal-pending"))
    _reinstate(ctx, left, out[np.isin(p, left)])


def _reinstate(ctx: Ctx, p: np.ndarray, removed_on: np.ndarray) -> None:
    """Some removed persons re-enter; their prior order is reinstated (a second case)."""
    again = ctx.u(len(p)) < 0.15
    p, back = p[again], (removed_on[again] + ctx.days(60, 1000, int(again.sum()))).astype(np.int32)
    p, back = ctx.seen(p, np.minimum(back, ctx.asof - 30).astype(np.int32))
    steps.encounter(ctx, p, back, "reinstated")
    b = CaseBuilder(ctx)
    cases, decided = [], np.zeros(len(p), dtype=np.int32)
    for i, day in enumerate(back):
        proc = b.proceeding("reinstatement", int(day), [])
        decided[i] = int(day) + b.between(1, 30)
        proc["decision"] = {"type": "removal-ordered", "decided_on": iso(decided[i])}
        cases.append([proc])
    book_cases(ctx, p, back, np.full(len(p), EWI_CHARGE, dtype=object), cases)
    out = (decided + ctx.days(10, 90, len(p))).astype(np.int32)
    steps.depart(ctx, p, out, removal=True)
    _departed(ctx, p, out, "removed")
    ctx.persons.fact("status", p[out <= ctx.asof], "removed")
    ctx.persons.fact("status", p[out > ctx.asof], "reinstated-order")


SCRIPTS = {
    "in_proceedings": in_proceedings,
    "final_order": final_order,
    "voluntary_departure": voluntary_departure,
    "protection_grant": protection_grant,
    "removed": removed,
}
