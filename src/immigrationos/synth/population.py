"""Persons of one chunk: category, nationality, name culture, true name, birth and identifiers.

A person's true identity is fixed here, once; the lifecycle step adds events and the noise
step derives the imperfect copies that source systems hold. Arrays are column-wise (one numpy
array per attribute) so later steps can index them by the person column of any record batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from immigrationos.synth import dates, ids
from immigrationos.synth.config import PopulationMix, WorldConfig
from immigrationos.synth.namegen import draw_names
from immigrationos.synth.names import Culture, cultures, world_data

CATEGORIES = PopulationMix.categories()
#: Registrations before this day got eight-digit A-numbers.
OLD_A_NUMBERS_BEFORE = dates.day(date(2003, 1, 1))


@dataclass
class Persons:
    """Column-wise persons of one chunk (index = position in the chunk)."""

    gid: np.ndarray
    category: np.ndarray  # object: category name
    sex: np.ndarray
    birth_country: np.ndarray
    culture: np.ndarray
    birth: np.ndarray
    names: dict[str, np.ndarray]
    us_from: np.ndarray  # day the person became a citizen (NULL: never); min int: by birth
    first_passport: np.ndarray
    validity: np.ndarray
    home_state: np.ndarray
    a1: np.ndarray  # object: primary A-number or None
    a2: np.ndarray  # object: second (duplicate) A-number or None
    fin: np.ndarray
    itin: np.ndarray
    asof: int
    has_a: np.ndarray  # bool: registered (A-number) by the lifecycle
    a_issued: np.ndarray  # day of first registration (old ones get 8-digit A-numbers)
    encountered: np.ndarray  # bool: fingerprinted at an encounter (FIN)
    has_itin: np.ndarray  # bool
    facts: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.gid)

    def where(self, category: str) -> np.ndarray:
        """Chunk indices of the persons of one category."""
        return np.flatnonzero(self.category == category)

    def fact(self, name: str, idx: np.ndarray, values: Any) -> None:
        """Record a true fact (status, dates) for some persons; absent facts stay null."""
        if name not in self.facts:
            self.facts[name] = _empty_like(values, len(self))
        self.facts[name][idx] = values


def _empty_like(values: Any, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return np.full(n, dates.NULL, dtype=np.int32)
    return np.full(n, None, dtype=object)


def _choice(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def _nationalities(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    nat = world_data()["nationalities"]
    base = {k: float(v["weight"]) for k, v in nat.items()}
    pools = {
        "tps": {k: base[k] for k in world_data()["tps"]},
        "daca": {k: float(v) for k, v in world_data()["daca"].items()},
    }
    out = _choice(rng, base, len(category))
    for cat, weights in pools.items():
        idx = np.flatnonzero(category == cat)
        out[idx] = _choice(rng, weights, len(idx))
    out[category == "citizen_birth"] = "USA"
    return out


def _cultures(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    out = np.empty(len(country), dtype=object)
    nat = world_data()["nationalities"]
    for code in np.unique(country):
        idx = np.flatnonzero(country == code)
        weights = world_data()["usa_cultures"] if code == "USA" else nat[code]["cultures"]
        out[idx] = _choice(rng, weights, len(idx))
    return out


def _names(rng: np.random.Generator, culture: np.ndarray, sex: np.ndarray) -> dict[str, Any]:
    n = len(culture)
    keys = ("given", "middle", "family", "nickname", "given_alt", "family_alt", "one_surname")
    out = {k: np.full(n, None, dtype=object) for k in keys}
    table: dict[str, Culture] = cultures()
    for name in sorted(table):
        idx = np.flatnonzero(culture == name)
        drawn = draw_names(rng, table[name], list(sex[idx]))
        for k in keys:
            out[k][idx] = np.array(drawn[k] + [None], dtype=object)[:-1]
    return out


def make_persons(rng: np.random.Generator, cfg: WorldConfig, gid0: int, n: int) -> Persons:
    """Draw the core attributes of ``n`` persons with global indices from ``gid0``."""
    shares = cfg.population.shares()
    category = _choice(rng, shares, n)
    sex = _choice(rng, {"F": 0.499, "M": 0.499, "X": 0.002}, n)
    country = _nationalities(rng, category)
    culture = _cultures(rng, country)
    asof = dates.day(cfg.as_of_date)
    birth = dates.uniform(rng, asof - dates.years(72), asof - dates.years(20), n)
    states = world_data()["states"]
    gid = np.arange(gid0, gid0 + n, dtype=np.int64)
    return Persons(
        gid=gid,
        category=category,
        sex=sex,
        birth_country=country,
        culture=culture,
        birth=birth,
        names=_names(rng, culture, sex),
        us_from=np.where(category == "citizen_birth", np.iinfo(np.int32).min + 1, dates.NULL),
        first_passport=np.zeros(n, dtype=np.int32),
        validity=np.where(rng.random(n) < 0.2, 5, 10).astype(np.int32),
        home_state=_choice(rng, {k: float(v["weight"]) for k, v in states.items()}, n),
        a1=np.full(n, None, dtype=object),
        a2=np.full(n, None, dtype=object),
        fin=np.full(n, None, dtype=object),
        itin=np.full(n, None, dtype=object),
        asof=asof,
        has_a=np.zeros(n, dtype=bool),
        a_issued=np.full(n, dates.NULL, dtype=np.int32),
        encountered=np.zeros(n, dtype=bool),
        has_itin=np.zeros(n, dtype=bool),
    )


def is_citizen_at(persons: Persons, p: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whether each referenced person was a U.S. citizen on the given day."""
    since = persons.us_from[p]
    return (since != dates.NULL) & (since <= on)


def nationality_at(persons: Persons, p: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Citizenship on a day: the birth country until naturalisation, then USA."""
    return np.where(is_citizen_at(persons, p, on), "USA", persons.birth_country[p]).astype(object)


def passport_index(persons: Persons, p: np.ndarray, on: np.ndarray) -> tuple[np.ndarray, ...]:
    """Which passport (series, index) a person held on a day, and how many that series has."""
    us = is_citizen_at(persons, p, on)
    start = np.where(us, np.maximum(persons.first_passport[p], persons.us_from[p]), 0)
    start = np.where(us, start, persons.first_passport[p]).astype(np.int64)
    span = persons.validity[p].astype(np.int64) * 365
    k = np.clip((on.astype(np.int64) - start) // span, 0, 7)
    later = (persons.us_from[p] != dates.NULL) & ~us  # the foreign series ends at citizenship
    end = np.where(later, persons.us_from[p], persons.asof).astype(np.int64)
    count = np.clip((end - start) // span + 1, 1, 8)
    return us, start, span, k, np.maximum(count, k + 1)


def passport_number(persons: Persons, p: np.ndarray, us: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Passport numbers: foreign series use slots 0-7 of the person's key, U.S. 8-15."""
    return ids.passport(persons.gid[p], k + np.where(us, 8, 0))


def issue_identifiers(rng: np.random.Generator, persons: Persons, dup_rate: float) -> None:
    """A-numbers (with occasional duplicates), FINs and ITINs for persons flagged to have them."""
    idx = np.flatnonzero(persons.has_a)
    old = persons.a_issued[idx] < OLD_A_NUMBERS_BEFORE
    persons.a1[idx] = ids.a_number(persons.gid[idx], False, old)
    dup = idx[rng.random(len(idx)) < dup_rate]
    persons.a2[dup] = ids.a_number(persons.gid[dup], True, np.zeros(len(dup), dtype=bool))
    fin_idx = np.flatnonzero(persons.has_a | persons.encountered)
    persons.fin[fin_idx] = ids.digits(ids.FIN.numbers(persons.gid[fin_idx]), 10)
    itin_idx = np.flatnonzero(persons.has_itin)
    persons.itin[itin_idx] = ids.itin(persons.gid[itin_idx])
