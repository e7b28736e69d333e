"""Records that cut across categories: criminal convictions and taxpayer addresses.

Convictions are a minority attribute of any category (citizens included), with most of them
minor; tax-address rows belong to ITIN holders and include shared mail-drop addresses, the
pattern an inspector-general review found in real release records.
"""

from __future__ import annotations

import numpy as np

from immigrationos.synth import dates, steps
from immigrationos.synth.names import world_data
from immigrationos.synth.steps import Ctx, Y

#: Conviction-rate multiplier by category (court-bound categories have more).
CONVICTION_FACTOR = {
    "in_proceedings": 3.0,
    "final_order": 4.0,
    "removed": 5.0,
    "voluntary_departure": 2.0,
    "citizen_birth": 0.8,
}
COURT_CATEGORIES = {
    "in_proceedings",
    "final_order",
    "removed",
    "voluntary_departure",
    "protection_grant",
}


def convictions(ctx: Ctx) -> None:
    """Criminal dispositions for a minority of persons, with offense level and sentence."""
    ps = ctx.persons
    factor = np.array([CONVICTION_FACTOR.get(c, 1.0) for c in ps.category])
    adult = ps.birth + dates.years(19) < ctx.asof
    who = np.flatnonzero(adult & (ctx.u(len(ps)) < ctx.cfg.population.conviction_rate * factor))
    p = np.repeat(who, ctx.rng.choice([1, 2, 3], size=len(who), p=[0.6, 0.3, 0.1]))
    on = ctx.days(np.maximum(ps.birth[p] + dates.years(18), ctx.start - 5 * Y), ctx.asof, len(p))
    category, level = _offenses(ctx, len(p))
    state = ps.home_state[p].copy()
    away = ctx.u(len(p)) < 0.2
    state[away] = ctx.pick(list(world_data()["states"]), int(away.sum()))
    ctx.book.add(
        "convictions", p, on, state=state, offense_category=category,
        offense_level=np.array(world_data()["offense_levels"], dtype=object)[level],
        conviction_date=on, sentence_days=_sentences(ctx, level),
    )  # fmt: skip
    _facts(ctx, p, level)
    _jail_encounters(ctx, p, on)


def _offenses(ctx: Ctx, n: int) -> tuple[np.ndarray, np.ndarray]:
    table = world_data()["offenses"]
    names = list(table)
    category = ctx.pick(names, n, [float(table[k]["weight"]) for k in names])
    level = np.zeros(n, dtype=np.int64)
    for name in names:
        idx = np.flatnonzero(category == name)
        probs = np.asarray(table[name]["levels"], dtype=float)
        level[idx] = ctx.rng.choice(4, size=len(idx), p=probs / probs.sum())
    return category, level


def _sentences(ctx: Ctx, level: np.ndarray) -> np.ndarray:
    low = np.array([0, 0, 365, 730])[level]
    high = np.array([1, 365, 3650, 9000])[level]
    return ctx.days(low, high, len(level)).astype(np.int64)


def _facts(ctx: Ctx, p: np.ndarray, level: np.ndarray) -> None:
    uniq, count = np.unique(p, return_counts=True)
    worst = np.zeros(len(ctx.persons), dtype=np.int64) - 1
    np.maximum.at(worst, p, level)
    ctx.persons.fact("conviction_count", uniq, count.astype(np.int32))
    names = np.array(world_data()["offense_levels"], dtype=object)
    ctx.persons.fact("worst_offense_level", uniq, names[worst[uniq]])


def _jail_encounters(ctx: Ctx, p: np.ndarray, on: np.ndarray) -> None:
    """Some convicted noncitizens are encountered at a jail after conviction."""
    ps = ctx.persons
    eligible = (ps.us_from[p] == dates.NULL) & ~np.isin(ps.category[p], list(COURT_CATEGORIES))
    pick = eligible & (ctx.u(len(p)) < 0.3)
    when = np.minimum(on[pick] + ctx.days(1, 120, int(pick.sum())), ctx.asof).astype(np.int32)
    disposition = ctx.pick(["detained", "released", "no action"], int(pick.sum()), [0.3, 0.4, 0.3])
    steps.encounter(ctx, p[pick], when, disposition)


def tax_addresses(ctx: Ctx) -> None:
    """Yearly address rows of ITIN holders; some at shared mail-drop addresses."""
    ps = ctx.persons
    holders = np.flatnonzero(ps.has_itin)
    entered = ps.facts.get("entered_on", np.full(len(ps), dates.NULL))[holders]
    first = np.maximum(dates.parts(np.maximum(entered, ctx.start))[0] + 1, 2000)
    last = dates.parts(np.array([ctx.asof]))[0][0] - 1
    count = np.minimum(ctx.rng.integers(1, 7, len(holders)), np.maximum(last - first + 1, 0))
    p = np.repeat(holders, count)
    year = last - (np.arange(len(p)) - np.repeat(np.cumsum(count) - count, count))
    filed = dates.ymd(year + 1, np.full(len(p), 4), np.full(len(p), 15))
    line, city, state, postcode = addresses(ctx, p)
    reuse = ctx.u(len(p)) < ctx.cfg.noise.address_reuse
    _mail_drops(ctx, reuse, line, city, state, postcode)
    label = np.full(len(p), None, dtype=object)
    label[reuse] = "address_reuse"
    ctx.book.add(
        "tax_addresses", p, filed, address_line=line, city=city, state=state,
        postcode=postcode, tax_year=year, _noise=label,
    )  # fmt: skip


def addresses(ctx: Ctx, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """A street address in each person's home state (one per person, stable)."""
    wd = world_data()
    g = ctx.persons.gid[p].astype(np.int64)  # hashed, so a person keeps one address
    number = (g * 7919) % 9899 + 1
    street = np.array(wd["streets"], dtype=object)[(g * 31) % len(wd["streets"])]
    kind = np.array(wd["street_kinds"], dtype=object)[(g * 17) % len(wd["street_kinds"])]
    line = number.astype(str).astype(object) + " " + street + " " + kind
    state = ctx.persons.home_state[p]
    cities = [wd["states"][s]["cities"] for s in state]
    city = np.array([c[int(x) % len(c)] for c, x in zip(cities, g, strict=True)], dtype=object)
    zips = np.array([str(wd["states"][s]["zip"]) for s in state], dtype=object)
    postcode = zips + np.char.zfill(((g * 7) % 10_000).astype(str), 4).astype(object)
    return line, city, state.copy(), postcode


def _mail_drops(ctx: Ctx, reuse: np.ndarray, *cols: np.ndarray) -> None:
    """Replace the address of ``reuse`` rows by one of a few shared mail-drop addresses."""
    rows = np.flatnonzero(reuse)
    if len(rows) == 0:
        return
    drops = max(1, len(rows) // 40)
    pick = ctx.rng.integers(0, drops, len(rows))
    first = rows[np.unique(pick, return_index=True)[1]]
    line = cols[0]
    suite = ctx.rng.integers(100, 999, len(first)).astype(str)
    line[first] = line[first] + " Ste " + suite.astype(object)
    lookup = {int(k): int(r) for k, r in zip(np.unique(pick), first, strict=True)}
    src = np.array([lookup[int(k)] for k in pick])
    for col in cols:
        col[rows] = col[src]
