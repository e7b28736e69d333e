"""Benchmark of prioritization: score 100k and 1M persons with their explanations persisted.

Input: a feature table with exactly the schema :func:`immigrationos.priority.features.compute`
gives (read from a fresh, empty store, so the benchmark follows the schema as it changes),
filled with ``N`` synthetic persons by vectorised numpy: about 8% with one to three convictions
(each with a level, a category, a sentence and a date, aggregated per person as the feature
SQL does), final orders, open proceedings, admissions, border apprehensions, pending relief,
ages 18–80, ~30 offices, ~20 nationalities, evidence lists of 0–3 records with realistic ids,
and about 5% of persons with a legal block. Generation is not counted.

Ours, per backend (SQLite file; PostgreSQL throwaway database when reachable at
``IMMOS_TEST_POSTGRES_URL``): the persons are inserted (setup, not counted), the shipped
``dhs-2021-guidelines`` policy is registered, then one unit of work runs
:func:`immigrationos.priority.service.score_index` (DuckDB evaluation of every rule, score,
tier, fired rules and their evidence as JSON, blocks and groups attached, then one bulk insert
of a ``priority_scores`` row per person, audited) and commits. Stages: *evaluate*
(``service.score``), *persist* (the bulk insert), *commit*, and the total. Then explanation
lookups: one stored score read by (run, person) through the gateway, each in its own audited
unit of work, for 500 random persons (p50/p95); and, slower, ``views.explain`` (the live
explanation: the person's file read, features computed, the policy checked in SQL and in
Python, the lifecycle guards asked) for 100 persons, then the same 100 again (an unchanged file's
features are reused, so the second pass shows what a page asked twice costs).

Peer, in the same run on the same table: ``table.to_pandas()`` (not counted), then plain
Python row by row, what a straightforward implementation does: for each row a dict,
:func:`immigrationos.priority.evaluate.score_one` and the evidence of the fired rules as JSON
with ``json.dumps``. Only evaluation is timed and the peer does not persist. When the peer
would take more than about three minutes at a size, it is measured on a 200k sample and
extrapolated linearly (the output says so). Its tier and score are checked equal to ours.

Each (backend, size) runs in its own subprocess, so peak RSS is its own (measured after ours,
before the peer). Sizes and backends: ``immos bench priority --sizes 100000,1000000 --backend
both`` (the CLI passes them as ``IMMOS_BENCH_SIZES`` and ``IMMOS_BENCH_BACKEND``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from immigrationos.bench import BenchReport, Target, peak_rss_mib
from immigrationos.core.settings import Settings
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Person
from immigrationos.priority import evaluate, features, service
from immigrationos.priority.models import PriorityScore
from immigrationos.priority.policy import Policy, load_policy, shipped_policies
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store import bulk

PG_URL = os.environ.get("IMMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
AS_OF = date(2026, 3, 2)
MAIN_POLICY = "dhs-2021-guidelines.yaml"
OTHER_POLICY = "dhs-2025-enforcement.yaml"
DEFAULT_SIZES = [100_000, 1_000_000]
QUICK_SIZES = [20_000]
TARGET_PERSONS, TARGET_SECONDS = 1_000_000, 10.0
PEER_BUDGET_S = 180.0
PEER_SAMPLE = 200_000
PEER_PROBE = 5_000
SEED = 20260302
PRIORITIZING = Purpose.ENFORCEMENT_PRIORITIZATION

OFFICES = (
    "Atlanta", "Baltimore", "Boston", "Buffalo", "Chicago", "Dallas", "Denver", "Detroit",
    "El Paso", "Harlingen", "Houston", "Los Angeles", "Miami", "New Orleans", "New York City",
    "Newark", "Philadelphia", "Phoenix", "Salt Lake City", "San Antonio", "San Diego",
    "San Francisco", "Seattle", "St. Paul", "Washington", "Orlando", "Las Vegas", "Charlotte",
    "Portland", "Kansas City",
)  # fmt: skip
NATIONALITIES = (
    ("MEX", 0.30), ("GTM", 0.10), ("HND", 0.09), ("SLV", 0.07), ("IND", 0.05), ("CHN", 0.04),
    ("PHL", 0.03), ("VNM", 0.02), ("DOM", 0.03), ("CUB", 0.03), ("HTI", 0.03), ("COL", 0.03),
    ("VEN", 0.04), ("ECU", 0.03), ("BRA", 0.03), ("NGA", 0.02), ("PAK", 0.01), ("UKR", 0.02),
    ("RUS", 0.01), ("PER", 0.02),
)  # fmt: skip
GIVEN = ("Ana", "Jose", "Maria", "Luis", "Carmen", "Wei", "Priya", "Juan", "Rosa", "Ahmed",
         "Olga", "Chinedu", "Minh", "Daniela", "Carlos", "Fatima", "Pedro", "Lucia", "Ivan",
         "Grace")  # fmt: skip
FAMILY = ("Lopez", "Garcia", "Hernandez", "Martinez", "Perez", "Wang", "Patel", "Nguyen",
          "Santos", "Reyes", "Cruz", "Okafor", "Kovalenko", "Flores", "Ramirez", "Morales",
          "Silva", "Diaz", "Torres", "Khan")  # fmt: skip
LEVELS = (("aggravated-felony", 0.04), ("felony", 0.22), ("misdemeanor", 0.56),
          ("infraction", 0.18))  # fmt: skip
CATEGORIES = (
    ("dui", 0.16), ("assault", 0.10), ("weapons", 0.05), ("burglary", 0.05),
    ("drug-trafficking", 0.06), ("drug-possession", 0.12), ("theft", 0.14), ("fraud", 0.06),
    ("homicide", 0.005), ("robbery", 0.03), ("sexual-offense", 0.015), ("traffic", 0.14),
    ("other", 0.08),
)  # fmt: skip
BLOCKS = (
    ("no_pending_protection_claim", "a pending asylum application (I-589) is on record"),
    ("tps_not_valid", "temporary protected status is in effect"),
    ("deferred_action_not_in_effect", "deferred action (DACA) is in effect"),
    ("no_stay", "a stay of removal is in effect"),
    ("victim_petitions_decided",
     "a U, T or VAWA petition is pending: a supervisor must record a decision"),
    ("not_a_citizen", "citizenship status is claimed: no civil immigration authority over a "
     "citizen"),
    ("no_identity_hold", "identity hold: possible merge under review"),
    ("not_departed", "departed on 2025-11-04, after the last entry on record"),
)  # fmt: skip
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_EPOCH = date(1970, 1, 1)
_ASOF_DAY = (AS_OF - _EPOCH).days


def _log(message: str) -> None:
    print(f"[bench priority] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The feature table, generated column by column (no Python loop over persons)


def feature_schema(rt: Runtime) -> pa.Schema:
    """The schema ``features.compute`` gives, read from the (still empty) store of ``rt``."""
    ctx = system_context(PRIORITIZING, "benchmark: feature schema")
    with unit_of_work(rt.sessions, ctx) as gw:
        return features.compute(features.read(gw), AS_OF).schema


def _strings(chars: np.ndarray) -> pa.Array:
    """Rows of fixed-width bytes (an ``n × w`` uint8 matrix) as an Arrow string array."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _ids(rng: np.random.Generator, prefix: str, n: int, width: int = 24) -> pa.Array:
    """``n`` ids shaped like the project's (``prefix-`` and ``width`` hex digits)."""
    head = np.frombuffer(f"{prefix}-".encode(), dtype=np.uint8)
    body = _HEX[rng.integers(0, 16, size=(n, width), dtype=np.uint8)]
    return _strings(np.concatenate([np.broadcast_to(head, (n, head.size)), body], axis=1))


def _sorted_ids(rng: np.random.Generator, prefix: str, n: int, width: int) -> pa.Array:
    """Unique, sorted ids (persons come out of the feature SQL ordered by id)."""
    ids = _ids(rng, prefix, n, width)
    keys = np.unique(np.frombuffer(ids.buffers()[2], dtype=f"S{len(prefix) + 1 + width}"))
    if keys.size != n:  # 16**width ids: a collision is practically impossible, but never silent
        raise RuntimeError("generated person ids collided; change the seed")
    return _strings(keys.view(np.uint8).reshape(n, -1))


def _pick(rng: np.random.Generator, choices: tuple[Any, ...], n: int) -> np.ndarray:
    """Indices into ``choices``: weighted by their second item when they are
    ``(value, weight)`` pairs, uniform when they are plain values."""
    if isinstance(choices[0], tuple) and isinstance(choices[0][1], float):
        weights = np.array([w for _, w in choices], dtype=float)
        return rng.choice(len(choices), size=n, p=weights / weights.sum())
    return rng.integers(0, len(choices), size=n)


def _take(values: tuple[Any, ...], idx: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    labels = [v[0] if isinstance(v, tuple) else v for v in values]
    out = pa.array(labels, pa.string()).take(pa.array(idx))
    return out if mask is None else pc.if_else(pa.array(mask), pa.nulls(len(idx), out.type), out)


def _dates(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Days since 1970 as ``date32`` (null where ``valid`` is false)."""
    mask = None if valid is None else ~valid
    return pa.array(days.astype(np.int32), pa.int32(), mask=mask).cast(pa.date32())


def _years(days: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Years from ``days`` to the run date, rounded to 2 places (the feature SQL's form)."""
    return pa.array(np.round((_ASOF_DAY - days) / 365.25, 2), pa.float64(), mask=~valid)


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(counts.size + 1, dtype=np.int32)
    np.cumsum(counts, out=out[1:])
    return out


class Evidence:
    """Builds ``ev_<feature>`` columns: lists of ``{t, id, src, d}`` structs, null when empty."""

    def __init__(self, schema: pa.Schema, rng: np.random.Generator) -> None:
        self.rng = rng
        item = next(f.type for f in schema if f.name.startswith("ev_") and pa.types.is_list(f.type))
        self.list_type: pa.ListType = item
        self.struct_type: pa.StructType = item.value_type

    def items(self, t: Any, ids: pa.Array, src: Any, days: np.ndarray) -> pa.StructArray:
        """Evidence records (one struct each); ``t`` and ``src`` a string or an array."""
        n = len(ids)
        t_arr = pa.repeat(pa.scalar(t, pa.string()), n) if isinstance(t, str) else t
        src_arr = pa.repeat(pa.scalar(src, pa.string()), n) if isinstance(src, str) else src
        return pa.StructArray.from_arrays(
            [t_arr, ids, src_arr, _dates(days)], fields=list(self.struct_type)
        )

    def lists(self, values: pa.StructArray, counts: np.ndarray) -> pa.Array:
        """Consecutive runs of ``values``, ``counts[i]`` for row ``i`` (null when 0)."""
        return pa.ListArray.from_arrays(
            pa.array(_offsets(counts)), values, type=self.list_type, mask=pa.array(counts == 0)
        )

    def fresh(
        self, counts: np.ndarray, t: str, prefix: str, src: str, low: np.ndarray, high: np.ndarray
    ) -> pa.Array:
        """``counts[i]`` new records for row ``i``, dated between ``low[i]`` and ``high[i]``."""
        total = int(counts.sum())
        row = np.repeat(np.arange(counts.size), counts)
        span = np.maximum(high[row] - low[row], 0)
        days = low[row] + (self.rng.random(total) * (span + 1)).astype(np.int64)
        order = np.lexsort((days, row))  # ordered by date within a person, as the SQL lists
        return self.lists(self.items(t, _ids(self.rng, prefix, total), src, days[order]), counts)

    def subset(self, values: pa.StructArray, row: np.ndarray, keep: np.ndarray, n: int) -> pa.Array:
        """The records of ``values`` (row ``row[k]``) where ``keep`` holds, per row."""
        counts = np.bincount(row[keep], minlength=n)
        return self.lists(values.filter(pa.array(keep)), counts)


def generate(schema: pa.Schema, n: int, seed: int = SEED) -> pa.Table:
    """``n`` persons with every column of ``schema``, plausibly distributed and correlated.

    Columns the generator does not know (a feature added later, or one no source carries)
    are null, which is what the feature SQL gives for an uncollected feature.
    """
    rng = np.random.default_rng(seed)
    ev = Evidence(schema, rng)
    cols: dict[str, pa.Array] = {}
    person_id = _sorted_ids(rng, "per", n, 20)
    cols["person_id"] = person_id
    cols["given_name"] = _take(GIVEN, _pick(rng, GIVEN, n))
    cols["family_name"] = _take(FAMILY, _pick(rng, FAMILY, n))
    cols["nationality"] = _take(NATIONALITIES, _pick(rng, NATIONALITIES, n))
    cols["office"] = _take(OFFICES, _pick(rng, OFFICES, n), rng.random(n) < 0.07)

    # -- person: age and its evidence (the golden record's birth date) --------------------
    age = np.clip(rng.normal(37, 13, n), 18, 80.99).astype(np.int64)
    birth = _ASOF_DAY - (age * 365.25).astype(np.int64) - rng.integers(1, 365, n)
    cols["age_years"] = pa.array(age.astype(np.float64))
    ones = np.ones(n, dtype=np.int64)
    cols["ev_age_years"] = ev.lists(ev.items("persons", person_id, "golden record", birth), ones)

    _convictions(cols, ev, rng, n)
    admitted = _entry(cols, ev, rng, n)
    _orders(cols, ev, rng, n)
    _relief(cols, ev, rng, admitted)

    # -- block inputs -----------------------------------------------------------------------
    status = rng.random(n)
    cols["citizenship_status"] = _take(
        ("unknown", "claimed", "citizen"), np.select([status < 0.992, status < 0.998], [0, 1], 2)
    )
    departed = rng.random(n) < 0.03
    dep_days = _ASOF_DAY - rng.integers(1, 5 * 365, n)
    cols["departed_on"] = _dates(dep_days, departed)
    dep = ev.items("departures", _ids(rng, "dep", n), "departures", dep_days)
    cols["ev_dep"] = pa.StructArray.from_arrays(
        [dep.field(i) for i in range(dep.type.num_fields)],
        fields=list(dep.type),
        mask=pa.array(~departed),
    )
    cols["back_on"] = cols["last_entry_date"]
    claimed = status >= 0.992
    blocked = claimed | (rng.random(n) < 0.05)
    counts = np.where(blocked, 1 + (rng.random(n) < 0.2), 0)
    row = np.repeat(np.arange(n), counts)
    which = _pick(rng, BLOCKS, row.size)
    first = _offsets(counts)[:-1][claimed]
    which[first] = [g for g, _ in BLOCKS].index("not_a_citizen")  # claimed citizenship blocks
    block_type = schema.field("blocks").type
    block = pa.StructArray.from_arrays(
        [_take(tuple(g for g, _ in BLOCKS), which), _take(tuple(m for _, m in BLOCKS), which)],
        fields=list(block_type.value_type),
    )
    cols["blocks"] = pa.ListArray.from_arrays(pa.array(_offsets(counts)), block, type=block_type)

    arrays = []
    for field in schema:
        value = cols.get(field.name)
        if value is None:
            arrays.append(pa.nulls(n, field.type))
        else:
            arrays.append(value if value.type == field.type else value.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _convictions(cols: dict[str, pa.Array], ev: Evidence, rng: np.random.Generator, n: int) -> None:
    """Convictions drawn one by one (level, category, sentence, date) and aggregated per
    person exactly as the feature SQL aggregates them."""
    convicted = rng.random(n) < 0.08
    counts = np.where(convicted, rng.choice([1, 2, 3], size=n, p=[0.6, 0.25, 0.15]), 0)
    row = np.repeat(np.arange(n), counts)
    k = row.size
    level = np.array([v for v, _ in LEVELS])[_pick(rng, LEVELS, k)]
    category = np.array([v for v, _ in CATEGORIES])[_pick(rng, CATEGORIES, k)]
    felony_level = np.isin(level, ("felony", "aggravated-felony"))
    has_sentence = rng.random(k) < 0.8
    sentence = (
        np.where(felony_level, np.exp(rng.normal(6.0, 0.9, k)), np.exp(rng.normal(3.2, 1.2, k)))
        .astype(np.int64)
        .clip(1, 9000)
    )
    days = _ASOF_DAY - rng.integers(30, 30 * 365, k)
    order = np.lexsort((days, row))
    level, category, felony_level = level[order], category[order], felony_level[order]
    has_sentence, sentence, days = has_sentence[order], sentence[order], days[order]
    values = ev.items("convictions", _ids(rng, "cnv", k), "convictions", days)

    def flag(name: str, keep: np.ndarray) -> None:
        cols[name] = pa.array(np.bincount(row[keep], minlength=n) > 0)
        cols[f"ev_{name}"] = ev.subset(values, row, keep, n)

    misdemeanor = level == "misdemeanor"
    significant = misdemeanor & (
        np.isin(category, ("dui", "assault", "weapons", "burglary", "drug-trafficking",
                           "sexual-offense")) | (has_sentence & (sentence >= 90))
    )  # fmt: skip
    violent = np.isin(category, ("homicide", "robbery", "sexual-offense")) | (
        (category == "assault") & felony_level
    )
    flag("aggravated_felony", level == "aggravated-felony")
    flag("felony", felony_level)
    flag("significant_misdemeanor", significant)
    flag("violent_offense", violent)
    flag("firearms_offense", category == "weapons")
    flag("drug_trafficking", category == "drug-trafficking")
    cols["misdemeanor_count"] = pa.array(np.bincount(row[misdemeanor], minlength=n))
    cols["ev_misdemeanor_count"] = ev.subset(values, row, misdemeanor, n)
    cols["conviction_count"] = pa.array(counts.astype(np.int64))
    cols["ev_conviction_count"] = ev.lists(values, counts)
    longest = np.full(n, -1, dtype=np.int64)
    np.maximum.at(longest, row[has_sentence], sentence[has_sentence])
    cols["max_sentence_days"] = pa.array(longest, mask=longest < 0)
    cols["ev_max_sentence_days"] = ev.subset(values, row, has_sentence, n)
    last = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last, row, days)
    cols["years_since_last_conviction"] = _years(last, convicted)
    cols["ev_years_since_last_conviction"] = ev.subset(values, row, days == last[row], n)
    last_felony = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_felony, row[felony_level], days[felony_level])
    is_felon = last_felony > np.iinfo(np.int64).min
    cols["years_since_last_felony"] = _years(last_felony, is_felon)
    cols["ev_years_since_last_felony"] = ev.subset(
        values, row, felony_level & (days == last_felony[row]), n
    )


def _entry(cols: dict[str, pa.Array], ev: Evidence, rng: np.random.Generator, n: int) -> np.ndarray:
    """Presence, the last entry, border apprehensions, admissions and overstays; returns who
    has an admission on record."""
    present = rng.random(n) < 0.9
    no_admission = present & (rng.random(n) < 0.25)
    admitted = present & ~no_admission
    border = present & np.where(no_admission, rng.random(n) < 0.4, rng.random(n) < 0.03)
    years = np.clip(rng.exponential(8.0, n) + 0.1, 0.1, 45)
    first = _ASOF_DAY - (years * 365.25).astype(np.int64)
    recent = _ASOF_DAY - rng.integers(5, 6 * 365, n)
    last = np.where(border, recent, first + (rng.random(n) * (_ASOF_DAY - first)).astype(np.int64))
    first = np.minimum(first, last)
    cols["years_in_country"] = _years(first, present)
    cols["last_entry_date"] = _dates(last, present)
    cols["border_apprehension"] = pa.array(border)
    cols["no_admission_record"] = pa.array(no_admission)
    kind = np.where(admitted, 0, 1)
    t = _take(("admissions", "encounters"), kind)
    src = _take(("arrivals", "encounters"), kind)
    ids = pc.if_else(pa.array(admitted), _ids(rng, "adm", n), _ids(rng, "enc", n))
    counts = present.astype(np.int64)
    keep = pa.array(present)
    cols["ev_last_entry_date"] = ev.lists(ev.items(t, ids, src, last).filter(keep), counts)
    first_ids = pc.if_else(pa.array(admitted), _ids(rng, "adm", n), _ids(rng, "enc", n))
    first_seen = ev.lists(ev.items(t, first_ids, src, first).filter(keep), counts)
    cols["ev_years_in_country"] = first_seen
    cols["ev_no_admission_record"] = first_seen
    encounters = np.where(border, 1 + (rng.random(n) < 0.3), 0)
    cols["ev_border_apprehension"] = ev.fresh(
        encounters, "encounters", "enc", "encounters", last - 400, last
    )
    over = rng.random(n) < 0.2
    overstay = np.where(over, rng.integers(1, 3000, n), 0)
    cols["overstay_days"] = pa.array(overstay, pa.int64(), mask=~admitted)
    cols["ev_overstay_days"] = ev.fresh(
        admitted.astype(np.int64), "admissions", "adm", "arrivals", last, last + 180
    )
    return admitted


def _orders(cols: dict[str, pa.Array], ev: Evidence, rng: np.random.Generator, n: int) -> None:
    """Final orders, open proceedings and prior removals."""
    final = rng.random(n) < 0.06
    final_on = _ASOF_DAY - rng.integers(1, 12 * 365, n)
    cols["final_order"] = pa.array(final)
    cols["final_order_date"] = _dates(final_on, final)
    cols["years_since_final_order"] = _years(final_on, final)
    orders = ev.fresh(
        np.where(final, 1 + (rng.random(n) < 0.2), 0), "court_decisions", "dcs", "court",
        final_on - 900, final_on,
    )  # fmt: skip
    cols["ev_final_order"] = cols["ev_final_order_date"] = orders
    cols["ev_years_since_final_order"] = orders
    proceeding = ~final & (rng.random(n) < 0.10)
    cols["in_proceedings"] = pa.array(proceeding)
    cols["ev_in_proceedings"] = ev.fresh(
        proceeding.astype(np.int64), "proceedings", "prc", "court",
        np.full(n, _ASOF_DAY - 4 * 365), np.full(n, _ASOF_DAY - 10),
    )  # fmt: skip
    u = rng.random(n)
    removals = np.select([u < 0.007, u < 0.04], [2, 1], 0)
    cols["prior_removals"] = pa.array(removals.astype(np.int64))
    cols["ev_prior_removals"] = ev.fresh(
        removals, "cases", "case", "this system",
        np.full(n, _ASOF_DAY - 20 * 365), np.full(n, _ASOF_DAY - 30),
    )  # fmt: skip


def _relief(
    cols: dict[str, pa.Array], ev: Evidence, rng: np.random.Generator, admitted: np.ndarray
) -> None:
    """Benefit applications: pending relief, protection, victim petitions, permanent residence
    (only for persons admitted)."""
    n = admitted.size
    low, high = np.full(n, _ASOF_DAY - 8 * 365), np.full(n, _ASOF_DAY - 1)
    for name, share in (("pending_relief", 0.14), ("protected_status", 0.04),
                        ("victim_or_witness", 0.02), ("asylum_pending", 0.05),
                        ("victim_pending", 0.008)):  # fmt: skip
        on = rng.random(n) < share
        cols[name] = pa.array(on)
        counts = np.where(on, 1 + (rng.random(n) < 0.25), 0)
        cols[f"ev_{name}"] = ev.fresh(counts, "benefit_applications", "ben", "benefits", low, high)
    lpr = admitted & (rng.random(n) < 0.12)
    cols["lawful_permanent_resident"] = pa.array(lpr)
    cols["ev_lawful_permanent_resident"] = ev.fresh(
        lpr.astype(np.int64), "admissions", "adm", "arrivals", np.full(n, _ASOF_DAY - 30 * 365),
        high,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# One measurement: ours on one backend and size (and the peer once per size)


def _policies() -> tuple[Policy, Policy | None]:
    paths = {p.name: p for p in shipped_policies()}
    other = load_policy(paths[OTHER_POLICY]) if OTHER_POLICY in paths else None
    return load_policy(paths[MAIN_POLICY]), other


def insert_persons(rt: Runtime, table: pa.Table) -> None:
    """Minimal persons rows for the scores' foreign key (setup, straight to the store as the
    lifecycle benchmark's peer does: not a measured or audited path)."""
    n = table.num_rows
    columns = {
        "id": table.column("person_id"),
        "status": pa.repeat(pa.scalar("active"), n),
        "given_name": table.column("given_name"),
        "family_name": table.column("family_name"),
        "nationality": table.column("nationality"),
        "citizenship_status": table.column("citizenship_status"),
        "golden": pa.repeat(pa.scalar("{}"), n),
    }
    with rt.engine.begin() as conn:
        bulk.insert_columns(conn, Person.__table__, columns)  # type: ignore[arg-type]


@contextlib.contextmanager
def _timing(owner: Any, name: str, into: dict[str, Any], key: str) -> Iterator[None]:
    """Time every call of ``owner.name`` into ``into[key]`` (and keep its result) while open."""
    original: Callable[..., Any] = getattr(owner, name)
    own = name in vars(owner)  # a module's function, or a method looked up on the class

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = original(*args, **kwargs)
        into[key] = into.get(key, 0.0) + time.perf_counter() - started
        into[f"{key}_result"] = result
        return result

    setattr(owner, name, timed)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


def score_and_persist(rt: Runtime, policy: Policy, table: pa.Table) -> dict[str, Any]:
    """Register ``policy`` (not timed), then time one ``score_index`` unit of work by stage,
    and the evaluation alone.

    ``score_index`` streams the evaluation from a worker thread while it writes, so inside
    the run the two overlap: *persist* is the insert, waits for the next slice included.
    *Evaluate* is measured on its own afterwards (``service.score``, the same statement, all
    cores), and its result is what the peer is checked against.
    """
    ctx = system_context(PRIORITIZING, "benchmark: priority run")
    with unit_of_work(rt.sessions, ctx) as gw:
        service.register(gw, policy.text)
    stages: dict[str, Any] = {}
    started = time.perf_counter()
    with unit_of_work(rt.sessions, ctx) as gw, _timing(gw, "insert_bulk", stages, "persist"):
        run = service.score_index(gw, policy, table, as_of=AS_OF, index_version="bench")
        run_id = run.id
        scored = time.perf_counter()
    total, inside = time.perf_counter() - started, scored - started
    with unit_of_work(rt.sessions, ctx) as gw:
        stored = gw.count(PriorityScore, PriorityScore.run_id == run_id, params={"run": run_id})
    started = time.perf_counter()
    result = service.score(policy, table).table
    evaluate_s = time.perf_counter() - started
    return {
        "run_id": run_id,
        "evaluate_s": evaluate_s,
        "persist_s": stages["persist"],
        "commit_s": total - inside,
        "other_s": inside - stages["persist"],
        "total_s": total,
        "stored": stored,
        "tiers": {v["values"]: v["counts"] for v in pc.value_counts(result["tier"]).to_pylist()},
        "ours": result.select(["person_id", "tier", "score"]),
    }


def _percentiles(ms: list[float]) -> tuple[float, float]:
    if not ms:
        return float("nan"), float("nan")
    p50, p95 = np.percentile(np.array(ms), [50, 95])
    return float(p50), float(p95)


def lookup_ms(rt: Runtime, run_id: str, persons: list[str]) -> list[float]:
    """Read one stored score (rules, evidence, blocks) by (run, person) through the gateway,
    each in its own audited unit of work, as a request would."""
    ctx = system_context(PRIORITIZING, "benchmark: explanation lookup")
    out = []
    for pid in persons:
        started = time.perf_counter()
        with unit_of_work(rt.sessions, ctx) as gw:
            rows = gw.select(
                select(PriorityScore).where(
                    PriorityScore.run_id == run_id, PriorityScore.person_id == pid
                ),
                PriorityScore,
                params={"run": run_id, "person": pid},
            )
            if len(rows) != 1 or rows[0].evidence is None:
                raise RuntimeError(f"no stored score for {pid} in {run_id}")
        out.append((time.perf_counter() - started) * 1000)
    return out


def explain_ms(rt: Runtime, policy: Policy, persons: list[str]) -> tuple[list[float], str | None]:
    """``views.explain`` per person (live: file read, features, SQL and Python, guards)."""
    try:
        from immigrationos.priority import views
    except ImportError as exc:
        return [], f"views.explain unavailable: {exc}"
    ctx = system_context(PRIORITIZING, "benchmark: explanation")
    out: list[float] = []
    for pid in persons:
        started = time.perf_counter()
        try:
            with unit_of_work(rt.sessions, ctx) as gw:
                views.explain(gw, pid, policy.key, as_of=AS_OF)
        except Exception as exc:  # report, don't hide: the caller puts it in the notes
            return out, f"views.explain failed for {pid}: {type(exc).__name__}: {exc}"
        out.append((time.perf_counter() - started) * 1000)
    return out, None


def peer_frame(table: pa.Table) -> pd.DataFrame:
    """The table as pandas, nulls as None (so a comparison with an unknown value is false)."""
    frame = table.to_pandas(integer_object_nulls=True, date_as_object=True)
    for name in frame.columns:
        if frame[name].dtype.kind == "f" and frame[name].isna().any():
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def peer_evaluate(policy: Policy, frame: pd.DataFrame) -> list[tuple[str, str, float, str, str]]:
    """Row by row in plain Python: tier, score, fired rules and their evidence as JSON."""
    columns = list(frame.columns)
    evidence_of = {
        r.id: [f"ev_{f}" for f in sorted(r.features) if f"ev_{f}" in frame.columns]
        for r in policy.rules
    }
    out = []
    for values in frame.itertuples(index=False, name=None):
        row = dict(zip(columns, values, strict=True))
        tier, score, fired = evaluate.score_one(policy, row)
        evidence: list[dict[str, Any]] = []
        for rule_id in fired:
            for column in evidence_of[rule_id]:
                items = row[column]
                if items is not None:
                    evidence.extend({**e, "rule": rule_id} for e in items if e is not None)
        out.append(
            (row["person_id"], tier, score, json.dumps(fired), json.dumps(evidence, default=str))
        )
    return out


def measure_peer(policy: Policy, table: pa.Table, ours: pa.Table) -> dict[str, Any]:
    """Time the peer (a probe first; a sample when the whole would exceed the budget)."""
    n = table.num_rows
    probe_rows = min(n, PEER_PROBE)
    probe = peer_frame(table.slice(0, probe_rows))
    started = time.perf_counter()
    peer_evaluate(policy, probe)
    per_row = (time.perf_counter() - started) / probe_rows
    rows = n if per_row * n <= PEER_BUDGET_S else min(n, PEER_SAMPLE)
    started = time.perf_counter()
    frame = peer_frame(table.slice(0, rows))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    results = peer_evaluate(policy, frame)
    seconds = time.perf_counter() - started
    del frame
    ours_rows = ours.slice(0, rows).to_pylist()
    disagree = sum(
        1
        for (pid, tier, score, _, _), o in zip(results, ours_rows, strict=True)
        if (pid, tier, score) != (o["person_id"], o["tier"], o["score"])
    )
    return {
        "rows": rows,
        "seconds": seconds,
        "seconds_at_n": seconds * n / rows,
        "extrapolated": rows < n,
        "load_s": load_s,
        "disagree": disagree,
        "rss_mib": peak_rss_mib(),
    }


def measure(
    backend: str, url: str, size: int, data_dir: Path, peer: bool, lookups: int, explains: int
) -> dict[str, Any]:
    """Ours on one backend and size, lookups, explanations, and (if asked) the peer."""
    rt = open_runtime(
        Settings(mode="demo", data_dir=data_dir, database_url=url, documents_pdf=False)
    )
    try:
        schema = feature_schema(rt)
        started = time.perf_counter()
        table = generate(schema, size)
        generate_s = time.perf_counter() - started
        _log(
            f"{backend} {size:,}: generated in {generate_s:.1f} s ({table.nbytes / 2**20:.0f} MiB)"
        )
        started = time.perf_counter()
        insert_persons(rt, table)
        setup_s = time.perf_counter() - started
        main, other = _policies()
        ours = score_and_persist(rt, main, table)
        rss = peak_rss_mib()
        _log(f"{backend} {size:,}: scored and stored in {ours['total_s']:.2f} s")
        rng = np.random.default_rng(SEED + 1)
        ids = table.column("person_id")
        sample = ids.take(pa.array(rng.choice(size, min(lookups, size), replace=False)))
        lookup = lookup_ms(rt, ours["run_id"], sample.to_pylist())
        explained, explain_error = explain_ms(rt, main, sample.to_pylist()[:explains])
        again, _ = explain_ms(rt, main, sample.to_pylist()[:explains])  # same files, asked again
        other_s = None
        if other is not None:
            started = time.perf_counter()
            service.score(other, table)
            other_s = time.perf_counter() - started
        peer_result = measure_peer(main, table, ours["ours"]) if peer else None
        if peer_result:
            _log(f"{backend} {size:,}: peer {peer_result['seconds']:.1f} s on "
                 f"{peer_result['rows']:,} rows")  # fmt: skip
    finally:
        rt.close()
    return {
        "backend": backend,
        "persons": size,
        "generate_s": generate_s,
        "setup_s": setup_s,
        **{k: v for k, v in ours.items() if k not in ("ours", "run_id")},
        "rss_mib": rss,
        "lookup_ms": _percentiles(lookup),
        "lookups": len(lookup),
        "explain_ms": _percentiles(explained),
        "explain_again_ms": _percentiles(again),
        "explains": len(explained),
        "explain_error": explain_error,
        "evaluate_2025_s": other_s,
        "peer": peer_result,
    }


def _child(argv: list[str]) -> None:
    backend, url, size, data_dir, peer, lookups, explains = argv
    result = measure(
        backend, url, int(size), Path(data_dir), peer == "1", int(lookups), int(explains)
    )
    print(json.dumps(result, default=str))


def _in_subprocess(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement {args[:3]} failed (exit {done.returncode}; see stderr)")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# Databases and the report


def _postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"


@contextlib.contextmanager
def _database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh store's URL: a SQLite file in ``folder``, or a throwaway PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/bench.db"
        return
    name = f"immos_bench_priority_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _row(m: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    lookup, explained = m["lookup_ms"], m["explain_ms"]
    return {
        "backend": m["backend"],
        "persons": m["persons"],
        "evaluate_s": round(m["evaluate_s"], 2),
        "persist_s": round(m["persist_s"], 2),
        "commit_s": round(m["commit_s"], 2),
        "score_index_s": round(m["total_s"], 2),
        "persons_per_s": round(m["persons"] / m["total_s"]),
        "peer_eval_s": round(peer["seconds_at_n"], 1),
        "peer_measured_on": peer["rows"],
        "peer_vs_ours_eval": round(peer["seconds_at_n"] / m["evaluate_s"], 1),
        "peak_rss_mib": round(m["rss_mib"]),
        "lookup_p50_ms": round(lookup[0], 2),
        "lookup_p95_ms": round(lookup[1], 2),
        "explain_p50_ms": round(explained[0], 1),
        "explain_p95_ms": round(explained[1], 1),
        "stored_scores": m["stored"],
        # in the JSON, not the table
        "explain_again_p50_ms": round(m["explain_again_ms"][0], 1),
        "explain_again_p95_ms": round(m["explain_again_ms"][1], 1),
        "generate_s": round(m["generate_s"], 2),
        "setup_s": round(m["setup_s"], 2),
        "other_s": round(m["other_s"], 3),
        "peer_load_s": round(peer["load_s"], 2),
        "peer_measured_s": round(peer["seconds"], 2),
        "peer_extrapolated": peer["extrapolated"],
        "peer_disagreements": peer["disagree"],
        "peer_peak_rss_mib": round(peer["rss_mib"]),
        "lookups": m["lookups"],
        "explains": m["explains"],
        "explain_error": m["explain_error"],
        "evaluate_2025_s": None if m["evaluate_2025_s"] is None else round(m["evaluate_2025_s"], 2),
        "tiers": m["tiers"],
    }


COLUMNS = [
    "backend", "persons", "evaluate_s", "persist_s", "commit_s", "score_index_s",
    "persons_per_s", "peer_eval_s", "peer_measured_on", "peer_vs_ours_eval", "peak_rss_mib",
    "lookup_p50_ms", "lookup_p95_ms", "explain_p50_ms", "explain_p95_ms", "stored_scores",
]  # fmt: skip


def _options(
    quick: bool, sizes: list[int] | None, backend: str | None
) -> tuple[list[int], list[str], bool]:
    env_sizes = os.environ.get("IMMOS_BENCH_SIZES", "").strip()
    if sizes is None and env_sizes:
        sizes = [int(s.replace("_", "")) for s in env_sizes.split(",") if s.strip()]
    sizes = sizes or (QUICK_SIZES if quick else DEFAULT_SIZES)
    backend = backend or os.environ.get("IMMOS_BENCH_BACKEND") or "both"
    if backend not in ("sqlite", "postgresql", "both"):
        raise ValueError(f"backend must be sqlite, postgresql or both, not {backend!r}")
    wanted = ["sqlite", "postgresql"] if backend == "both" else [backend]
    return sizes, wanted, backend == "both"


def run(
    quick: bool = False,
    sizes: list[int] | None = None,
    backend: str | None = None,
    lookups: int = 500,
    explains: int = 100,
) -> BenchReport:
    """Score each size on each backend (each in a subprocess) beside the pandas peer."""
    sizes, backends, optional_pg = _options(quick, sizes, backend)
    notes: list[str] = []
    if "postgresql" in backends:
        problem = _postgres_problem()
        if problem and optional_pg:
            backends.remove("postgresql")
            notes.append(f"PostgreSQL not reachable at {PG_URL} ({problem}): SQLite only")
        elif problem:
            raise RuntimeError(f"PostgreSQL not reachable at {PG_URL}: {problem}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="immos-bench-priority-") as tmp:
        for size in sizes:
            peer: dict[str, Any] | None = None
            for name in backends:
                folder = Path(tempfile.mkdtemp(prefix=f"{name}-{size}-", dir=tmp))
                with _database(name, folder) as url:
                    _log(f"{name} {size:,}: measuring")
                    m = _in_subprocess(
                        name, url, str(size), str(folder), "0" if peer else "1", str(lookups),
                        str(explains),
                    )  # fmt: skip
                peer = peer or m["peer"]
                assert peer is not None
                rows.append(_row(m, peer))
    return BenchReport(
        "Prioritization: score and persist with explanations, vs pandas row by row",
        COLUMNS,
        rows,
        _targets(rows),
        notes + _notes(rows),
    )


def _targets(rows: list[dict[str, Any]]) -> list[Target]:
    out = []
    for row in rows:
        if row["persons"] >= TARGET_PERSONS:
            out.append(
                Target(
                    f"{TARGET_PERSONS:,} persons scored with explanations persisted in under "
                    f"{TARGET_SECONDS:g} s on 2 cores ({row['backend']})",
                    row["score_index_s"] < TARGET_SECONDS,
                    f"{row['score_index_s']} s: evaluate {row['evaluate_s']} s, persist "
                    f"{row['persist_s']} s, commit {row['commit_s']} s",
                )
            )
    return out


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes = [
        "input: a generated feature table with the exact schema of features.compute (read from "
        "a fresh store), not counted; policy dhs-2021-guidelines@1.0.0",
        "ours: one unit of work running service.score_index (DuckDB: rules, score, tier, fired "
        "rules and evidence JSON, blocks, office, nationality, age band, streamed from a worker "
        "thread; each slice bulk-inserted as a priority_scores row per person while the next is "
        "computed, audited once) and its commit; persist = gateway insert_bulk (the insert, "
        "the evaluation streamed beside it), score_index_s = all of it incl. commit; evaluate "
        "= service.score (the same statement, all cores) measured on its own afterwards",
        "peer: table.to_pandas() (not counted), then per row a dict, evaluate.score_one and "
        "json.dumps of the fired rules and their evidence; evaluation only, nothing persisted; "
        "peer_vs_ours_eval = peer seconds / ours evaluate seconds at the same size",
        "lookup: one stored score read by (run_id, person_id) through the gateway, each in its "
        "own audited unit of work; explain: views.explain live (file read, features, SQL and "
        "Python check, lifecycle guards), each person once; explain_again (JSON only): the same "
        "persons asked again, their files unchanged (features computed from an equal file are "
        "reused)",
        "each (backend, size) runs in a fresh subprocess; peak_rss_mib is measured after ours "
        "(generated table included), before lookups and the peer",
    ]
    for row in rows:
        if row["peer_extrapolated"]:
            notes.append(
                f"{row['backend']} {row['persons']:,}: the peer was measured on a "
                f"{row['peer_measured_on']:,}-row sample ({row['peer_measured_s']} s) and "
                f"extrapolated linearly to {row['persons']:,} rows"
            )
        if row["peer_disagreements"]:
            notes.append(
                f"{row['backend']} {row['persons']:,}: the peer disagreed with ours on "
                f"{row['peer_disagreements']:,} persons (tier or score)"
            )
        if row["explain_error"]:
            notes.append(f"{row['backend']} {row['persons']:,}: {row['explain_error']}")
    return notes


if __name__ == "__main__":
    _child(sys.argv[1:])
