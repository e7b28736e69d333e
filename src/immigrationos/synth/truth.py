"""Ground truth of persons: who each person really is and what really happened to them.

Only this file carries the name culture and the true name parts; source files never do.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from immigrationos.synth import dates
from immigrationos.synth.population import Persons, passport_number
from immigrationos.synth.sources import person_ids

#: True facts set by the lifecycle scripts: name -> Arrow type (day facts are dates).
FACTS: dict[str, pa.DataType] = {
    "status": pa.string(),
    "entered_on": pa.date32(),
    "lpr_on": pa.date32(),
    "naturalized_on": pa.date32(),
    "derived_on": pa.date32(),
    "admitted_until": pa.date32(),
    "departed_on": pa.date32(),
    "departure_kind": pa.string(),
    "final_order_on": pa.date32(),
    "vd_deadline": pa.date32(),
    "protected_country": pa.string(),
    "tps_valid_until": pa.date32(),
    "daca_valid_until": pa.date32(),
    "conviction_count": pa.int32(),
    "worst_offense_level": pa.string(),
}


def _days(values: np.ndarray) -> pa.Array:
    v = values.astype(np.int32)
    return pa.array(v, pa.int32(), mask=v == dates.NULL).cast(pa.date32())


def _fact(persons: Persons, name: str, dtype: pa.DataType) -> pa.Array:
    values = persons.facts.get(name)
    if values is None:
        return pa.nulls(len(persons), dtype)
    if dtype == pa.date32():
        return _days(values)
    if dtype == pa.int32():
        v = values.astype(np.int64)
        return pa.array(np.where(v == dates.NULL, 0, v).astype(np.int32), pa.int32())
    return pa.array(values, pa.string())


def _passports(persons: Persons) -> pa.Array:
    """Passport numbers issued up to as-of: the foreign series, then the U.S. series."""
    n = len(persons)
    span = persons.validity.astype(np.int64) * 365
    citizen = persons.us_from != dates.NULL
    by_birth = persons.category == "citizen_birth"
    has_foreign = ~by_birth
    has_us = citizen & (~by_birth | (persons.first_passport != 0))
    foreign_end = np.where(citizen & ~by_birth, persons.us_from, persons.asof).astype(np.int64)
    nf = np.where(has_foreign, np.clip((foreign_end - persons.first_passport) // span + 1, 1, 8), 0)
    us_start = np.maximum(persons.first_passport, np.where(by_birth, 0, persons.us_from))
    nu = np.where(has_us, np.clip((persons.asof - us_start) // span + 1, 1, 8), 0)
    who = np.repeat(np.arange(n), nf + nu)
    k = np.arange(len(who)) - np.repeat(np.cumsum(nf + nu) - (nf + nu), nf + nu)
    us = k >= nf[who]
    k = np.where(us, k - nf[who], k)
    numbers = passport_number(persons, who, us, k)
    offsets = np.concatenate([[0], np.cumsum(nf + nu)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(numbers, pa.string()))


def _a_numbers(persons: Persons) -> pa.Array:
    lists = [
        [a for a in (a1, a2) if a is not None]
        for a1, a2 in zip(persons.a1, persons.a2, strict=True)
    ]
    return pa.array(lists, pa.list_(pa.string()))


def persons_table(persons: Persons) -> pa.Table:
    """The chunk's persons as the ``truth/persons.parquet`` rows."""
    names = persons.names
    citizen = persons.us_from != dates.NULL
    cols: dict[str, pa.Array] = {
        "person_id": pa.array(person_ids(persons.gid), pa.string()),
        "name_culture": pa.array(persons.culture, pa.string()),
        "given_name": pa.array(names["given"], pa.string()),
        "middle_name": pa.array(names["middle"], pa.string()),
        "family_name": pa.array(names["family"], pa.string()),
        "birth_date": _days(persons.birth),
        "sex": pa.array(persons.sex, pa.string()),
        "nationality": pa.array(np.where(citizen, "USA", persons.birth_country), pa.string()),
        "birth_country": pa.array(persons.birth_country, pa.string()),
        "category": pa.array(persons.category, pa.string()),
        "citizen": pa.array(citizen),
        "citizen_since": _days(
            np.where(persons.category == "citizen_birth", persons.birth, persons.us_from)
        ),
        "a_numbers": _a_numbers(persons),
        "fin": pa.array(persons.fin, pa.string()),
        "itin": pa.array(persons.itin, pa.string()),
        "passports": _passports(persons),
        "home_state": pa.array(persons.home_state, pa.string()),
    }
    cols.update({name: _fact(persons, name, dtype) for name, dtype in FACTS.items()})
    return pa.table(cols)
