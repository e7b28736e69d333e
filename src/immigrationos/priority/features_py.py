"""The features of a few persons in plain Python: :func:`features.compute`'s table without
DuckDB's fixed cost.

DuckDB plans and runs the feature SQL in about 150 ms however few the rows, and an explanation
or a worklist page needs one person's file, or a few. :func:`compute_py` computes the same
table (columns, Arrow types, values and row order) from the same snapshot. Each function below
mirrors one CTE of :func:`features.plan`, with SQL's NULL semantics: a missing value is
``None``, an aggregate ignores it, a condition on it is not true (the plan never negates a
condition that can be NULL, so "not true" is all a filter needs). Tests hold the two equal.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import duckdb
import orjson
import pyarrow as pa

from immigrationos.lifecycle.facts import IMMIGRANT_CLASSES
from immigrationos.lifecycle.guards import PROTECTION_FORMS, VICTIM_FORMS
from immigrationos.priority.features import (
    DEPARTED_STATES,
    EWI_CHARGE,
    FELONY_LEVELS,
    FINAL_STATES,
    ORDER_DECISIONS,
    SIGNIFICANT_MISDEMEANORS,
    SUMMARY_PROCEEDINGS,
    VIOLENT,
    Snapshot,
    _queries,
    _to_arrow,
    _with_uncollected,
    plan,
    proceedings_states,
    withhold,
)

Row = dict[str, Any]
Ev = dict[str, Any]
"""An evidence record: ``{"t": table, "id": id, "src": source, "d": date}``."""
K = TypeVar("K")

#: The reads keyed by person id.
_PERSON_READS = (
    "convictions",
    "admissions",
    "encounters",
    "benefits",
    "court_cases",
    "departures",
    "cases",
    "evidence",
)


def compute_py(snapshot: Snapshot, as_of: date) -> pa.Table:
    """The same table as features.compute(snapshot, as_of), computed in plain Python (for the
    few persons of an explanation or a worklist page)."""
    # a row also carries the values its columns come from: from_pylist keeps the schema's, and
    # leaves the features no source carries null (the schema has their columns)
    rows = [_row(f, as_of) for f in _files(snapshot)]
    return withhold(pa.Table.from_pylist(rows, schema=_schema()), snapshot.unknown)


#: What says whether a person has left: :func:`departures_py` needs only these reads.
DEPARTURE_READS = ("persons", "admissions", "encounters", "court_cases", "departures", "cases")
DEPARTURE_COLUMNS = ["person_id", "departed_on", "ev_dep", "back_on"]


def departures_py(snapshot: Snapshot, as_of: date) -> pa.Table:
    """:data:`DEPARTURE_COLUMNS` of :func:`compute_py` from a snapshot of (at least)
    :data:`DEPARTURE_READS`: a worklist page re-checks whether its leads have left with six
    reads, not fifteen (the other reads are taken as empty; none feeds these columns), and
    computes only the two parts of the row these columns come from."""
    whole = Snapshot(_empty_reads() | snapshot.tables, snapshot.unknown)
    rows = []
    for f in _files(whole):
        where = _whereabouts(f, as_of)
        departed, back = _gone(where, _case_state(f))
        rows.append({"person_id": f.person["id"], "departed_on": departed,
                     "ev_dep": where["ev_dep"], "back_on": back})  # fmt: skip
    schema = pa.schema([_schema().field(name) for name in DEPARTURE_COLUMNS])
    return withhold(pa.Table.from_pylist(rows, schema=schema), snapshot.unknown)


@lru_cache(maxsize=1)
def _empty_reads() -> dict[str, pa.Table]:
    """Every read of the snapshot, empty (made once per process; Arrow tables are immutable)."""
    return {name: _to_arrow(stmt, []) for name, (stmt, _) in _queries().items()}


@lru_cache(maxsize=1)
def _schema() -> pa.Schema:
    """:func:`features.compute`'s schema, from the plan run once over an empty snapshot (once
    per process): the plan's columns, then a column for each feature no source carries."""
    con = duckdb.connect()
    try:
        Snapshot(_empty_reads()).register(con)
        table = con.sql(plan(), params={"asof": date(2000, 1, 1)}).to_arrow_table()
    finally:
        con.close()
    return _with_uncollected(table).schema


# -- the file of one person ---------------------------------------------------------------


@dataclass
class _File:
    """One person's rows from every read, children joined to their parents as the plan does."""

    person: Row
    convictions: list[Row]
    admissions: list[Row]
    encounters: list[Row]
    benefits: list[Row]
    court_cases: list[Row]
    departures: list[Row]
    cases: list[Row]
    evidence: list[Row]
    proceedings: list[tuple[Row, Row, list[Row]]]
    """(court case, proceeding, the proceeding's decisions) for each proceeding."""
    appeals: dict[str, list[Row]]
    """Appeals by decision id."""
    final_events: dict[str, list[Row]]
    """Events into FINAL_ORDER by case id."""
    conditions: list[tuple[Row, Row]]
    """(case, condition) for each condition on the person's cases."""


def _group(rows: Iterable[Row], key: str) -> dict[Any, list[Row]]:
    """Rows by the value of one column (the side of a join)."""
    out: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        out[row[key]].append(row)
    return out


def _files(snapshot: Snapshot) -> list[_File]:
    """Each active person's file, in person id order (the plan's ORDER BY)."""
    tables = snapshot.tables
    by_person = {name: _group(tables[name].to_pylist(), "person_id") for name in _PERSON_READS}
    procs = _group(tables["proceedings"].to_pylist(), "court_case_id")
    decisions = _group(tables["decisions"].to_pylist(), "proceeding_id")
    appeals = _group(tables["appeals"].to_pylist(), "decision_id")
    events = _group(tables["final_events"].to_pylist(), "case_id")
    conditions = _group(tables["conditions"].to_pylist(), "case_id")
    files = []
    for person in sorted(tables["persons"].to_pylist(), key=lambda p: p["id"]):
        reads = {name: rows.get(person["id"], []) for name, rows in by_person.items()}
        court = [
            (cc, p, decisions.get(p["id"], []))
            for cc in reads["court_cases"]
            for p in procs.get(cc["id"], [])
        ]
        files.append(
            _File(
                person,
                **reads,
                proceedings=court,
                appeals={d["id"]: appeals.get(d["id"], []) for _, _, ds in court for d in ds},
                final_events={c["id"]: events.get(c["id"], []) for c in reads["cases"]},
                conditions=[(c, k) for c in reads["cases"] for k in conditions.get(c["id"], [])],
            )
        )
    return files


# -- SQL's semantics --------------------------------------------------------------------------


def _by(on: date | None, as_of: date) -> bool:
    """``on <= as_of`` (not true for NULL)."""
    return on is not None and on <= as_of


def _between(x: date | None, lo: date | None, hi: date | None) -> bool:
    """``x BETWEEN lo AND hi`` (not true if any is NULL)."""
    return x is not None and lo is not None and hi is not None and lo <= x <= hi


def _day(at: datetime | None) -> date | None:
    """``CAST(at AS DATE)``."""
    return None if at is None else at.date()


def _max(values: Iterable[K | None]) -> K | None:
    """SQL ``max`` (also ``greatest`` in DuckDB): NULLs ignored, NULL if nothing is left."""
    present = [v for v in values if v is not None]
    return max(present) if present else None  # type: ignore[type-var]


def _min(values: Iterable[K | None]) -> K | None:
    """SQL ``min``: NULLs ignored, NULL if nothing is left."""
    present = [v for v in values if v is not None]
    return min(present) if present else None  # type: ignore[type-var]


def _nulls_last(*values: Any) -> tuple[Any, ...]:
    """A sort key ordering as DuckDB does: each value ascending, NULL after every value."""
    return tuple(x for v in values for x in (v is None, v))


def _round2(x: float) -> float:
    """DuckDB's ``round(x, 2)`` of a double: ``x * 100`` rounded half away from zero."""
    y = abs(x) * 100.0
    whole = math.floor(y)
    if y - whole >= 0.5:
        whole += 1
    return math.copysign(whole / 100.0, x)


def _years(since: date | None, as_of: date) -> float | None:
    """``round(date_diff('day', since, $asof) / 365.25, 2)``."""
    return None if since is None else _round2((as_of - since).days / 365.25)


def _concat(a: list[Ev] | None, b: list[Ev] | None) -> list[Ev]:
    """DuckDB's ``list_concat``: a NULL list counts as empty (two NULLs give ``[]``)."""
    return [*(a or []), *(b or [])]


def _ev(t: str, on: date | None, id_: str, src: str | None) -> Ev:
    """The evidence struct ``{'t': t, 'id': id, 'src': src, 'd': on}``."""
    return {"t": t, "id": id_, "src": src, "d": on}


def _evidence(t: str, rows: Iterable[Row], on: str, keep: Callable[[Row], bool]) -> list[Ev] | None:
    """``list({t, id, src, d} ORDER BY on, id) FILTER (WHERE keep)``: NULL when none is kept."""
    kept = sorted((r for r in rows if keep(r)), key=lambda r: _nulls_last(r[on], r["id"]))
    return [_ev(t, r[on], r["id"], r["source_id"]) for r in kept] or None


def _every(_: Row) -> bool:
    """The filter keeping every row (``FILTER (WHERE TRUE)``)."""
    return True


def _coalesce(*values: K | None) -> K | None:
    """SQL ``coalesce``: the first value that is not NULL."""
    return next((v for v in values if v is not None), None)


def _as_varchar(value: Any) -> str | None:
    """A JSON value as DuckDB's JSON functions give it as VARCHAR (a string unquoted)."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


# -- the CTEs -----------------------------------------------------------------------------


def _conv(f: _File, as_of: date) -> Row:
    """``conv``: convictions up to the date, and the "years since" features built on them."""
    rows = [c for c in f.convictions if _by(c["conviction_date"], as_of)]

    def felony(c: Row) -> bool:
        return c["offense_level"] in FELONY_LEVELS

    def misdemeanor(c: Row) -> bool:
        return c["offense_level"] == "misdemeanor"

    def significant(c: Row) -> bool:
        return misdemeanor(c) and (
            c["offense_category"] in SIGNIFICANT_MISDEMEANORS or (c["sentence_days"] or 0) >= 90
        )

    def violent(c: Row) -> bool:
        return c["offense_category"] in VIOLENT or (
            c["offense_category"] == "assault" and felony(c)
        )

    checks: dict[str, Callable[[Row], bool]] = {
        "aggravated_felony": lambda c: c["offense_level"] == "aggravated-felony",
        "felony": felony,
        "significant_misdemeanor": significant,
        "violent_offense": violent,
        "firearms_offense": lambda c: c["offense_category"] == "weapons",
        "drug_trafficking": lambda c: c["offense_category"] == "drug-trafficking",
    }
    out: Row = {}
    for name, check in checks.items():
        out[name] = any(check(c) for c in rows)
        out[f"ev_{name}"] = _evidence("convictions", rows, "conviction_date", check)
    out["misdemeanor_count"] = sum(1 for c in rows if misdemeanor(c))
    out["ev_misdemeanor_count"] = _evidence("convictions", rows, "conviction_date", misdemeanor)
    out["conviction_count"] = len(rows)
    out["ev_conviction_count"] = _evidence("convictions", rows, "conviction_date", _every)
    out["max_sentence_days"] = _max(c["sentence_days"] for c in rows)
    out["ev_max_sentence_days"] = _evidence(
        "convictions", rows, "conviction_date", lambda c: c["sentence_days"] is not None
    )
    last = _max(c["conviction_date"] for c in rows)
    last_felony = _max(c["conviction_date"] for c in rows if felony(c))
    out["years_since_last_conviction"] = _years(last, as_of)
    out["ev_years_since_last_conviction"] = _dated(out["ev_conviction_count"], last)
    out["years_since_last_felony"] = _years(last_felony, as_of)
    out["ev_years_since_last_felony"] = _dated(out["ev_felony"], last_felony)
    return out


def _dated(evidence: list[Ev] | None, on: date | None) -> list[Ev] | None:
    """``list_filter(evidence, lambda e: e.d = on)`` (NULL stays NULL)."""
    return None if evidence is None else [e for e in evidence if on is not None and e["d"] == on]


def _order_final_on(decision: Row, kind: str | None, appeals: list[Row]) -> date | None:
    """``orders``: when a removal order became final (None: not final, an appeal stands)."""
    outcomes = {a["outcome"] for a in appeals}
    if "pending" in outcomes or "sustained" in outcomes:
        return None
    if "dismissed" in outcomes:
        return _max(a["decided_on"] for a in appeals)
    if decision["decision_type"] == "in-absentia" or kind in SUMMARY_PROCEEDINGS:
        return decision["decided_on"]
    return decision["decided_on"] + timedelta(days=30)


def _finals(f: _File, as_of: date) -> list[Ev]:
    """``finals``: final orders (court orders, voluntary departures not taken, final cases)."""
    out = []
    departed = [_day(x["occurred_at"]) for x in f.departures]
    for _, proceeding, decisions in f.proceedings:
        for d in decisions:
            if d["decision_type"] in ORDER_DECISIONS and _by(d["decided_on"], as_of):
                final_on = _order_final_on(d, proceeding["kind"], f.appeals[d["id"]])
                if _by(final_on, as_of):
                    out.append(_ev("court_decisions", final_on, d["id"], "court"))
            elif (
                d["decision_type"] == "voluntary-departure"
                and d["vd_deadline"] is not None
                and d["vd_deadline"] < as_of
                and not any(_between(on, d["decided_on"], d["vd_deadline"]) for on in departed)
            ):
                out.append(_ev("court_decisions", d["vd_deadline"], d["id"], "court"))
    for c in f.cases:
        if c["state"] in FINAL_STATES:
            on = _day(_max(e["at"] for e in f.final_events[c["id"]]))
            out.append(_ev("cases", on, c["id"], "this system"))
    return out


def _fin(finals: list[Ev]) -> Row:
    """``fin``: the latest final order's date, and every final order as evidence."""
    ordered = sorted(finals, key=lambda e: _nulls_last(e["d"], e["id"]))
    return {"final_order_date": _max(e["d"] for e in finals), "ev_final": ordered or None}


def _entries(f: _File) -> list[Ev]:
    """``entries``: admissions, and encounters followed by an unlawful-entry charge."""
    out = [_ev("admissions", a["admitted_on"], a["id"], a["source_id"]) for a in f.admissions]
    for e in f.encounters:
        on = e["occurred_on"]
        if on is not None and any(
            cc["charge"] == EWI_CHARGE and _between(cc["nta_served_on"], on, on + timedelta(60))
            for cc in f.court_cases
        ):
            out.append(_ev("encounters", on, e["id"], e["source_id"]))
    return out


def _presence(f: _File) -> list[Ev]:
    """The records ``presence`` takes the first sighting from."""
    return [
        *(_ev("admissions", a["admitted_on"], a["id"], a["source_id"]) for a in f.admissions),
        *(_ev("encounters", e["occurred_on"], e["id"], e["source_id"]) for e in f.encounters),
        *(
            _ev("court_cases", c["nta_served_on"], c["id"], c["source_id"])
            for c in f.court_cases
            if c["nta_served_on"] is not None
        ),
    ]


def _whereabouts(f: _File, as_of: date) -> Row:
    """``entry``, ``presence``, ``dep`` and ``border``: arg_max/arg_min tell ties apart by id."""
    entries = [e for e in _entries(f) if _by(e["d"], as_of)]
    seen = [e for e in _presence(f) if _by(e["d"], as_of)]
    left = [x for x in f.departures if _by(_day(x["occurred_at"]), as_of)]
    border = sorted(
        (e for e in entries if e["t"] == "encounters"), key=lambda e: _nulls_last(e["d"], e["id"])
    )
    last_left = max(left, key=lambda x: _nulls_last(x["occurred_at"], x["id"]), default=None)
    return {
        "last_entry_date": _max(e["d"] for e in entries),
        "ev_last": max(entries, key=lambda e: _nulls_last(e["d"], e["id"]), default=None),
        "first_seen": _min(e["d"] for e in seen),
        "ev_first": min(seen, key=lambda e: _nulls_last(e["d"], e["id"]), default=None),
        "last_departure": _max(_day(x["occurred_at"]) for x in left),
        "ev_dep": None
        if last_left is None
        else _ev(
            "departures", _day(last_left["occurred_at"]), last_left["id"], last_left["source_id"]
        ),
        "border_on": _max(e["d"] for e in border),
        "ev_border": border or None,
    }


def _overstay(f: _File, as_of: date, last_departure: date | None) -> Row:
    """``stay`` and ``overstay``: days past the latest admission's end, unless left or filed."""
    stays = [a for a in f.admissions if _by(a["admitted_on"], as_of)]
    if not stays:
        return {"overstay_days": None, "ev_overstay_days": None}
    s = min(stays, key=lambda a: (-a["admitted_on"].toordinal(), a["id"]))
    since, until = s["admitted_on"], s["admitted_until"]
    excused = (
        until is None
        or until >= as_of
        or (last_departure is not None and last_departure >= since)
        or any(_between(b["filed_on"], since, until) for b in f.benefits)
    )
    days = 0 if excused else (as_of - until).days
    return {
        "overstay_days": days,
        "ev_overstay_days": [_ev("admissions", until, s["id"], s["source_id"])],
    }


def _valid_protection(b: Row, as_of: date) -> bool:
    valid_until = b["valid_until"] or date(9999, 12, 31)
    return b["form"] in ("I-821", "I-821D") and b["status"] == "approved" and valid_until >= as_of


def _ben(f: _File, as_of: date) -> Row:
    """``ben``: benefit applications filed by the date."""
    rows = [b for b in f.benefits if _by(b["filed_on"], as_of)]
    checks: dict[str, Callable[[Row], bool]] = {
        "pending_relief": lambda b: b["status"] == "pending",
        "protected_status": lambda b: _valid_protection(b, as_of),
        "victim_or_witness": lambda b: b["form"] in VICTIM_FORMS,
        "adjusted": lambda b: b["form"] == "I-485" and b["status"] == "approved",
        "asylum_pending": lambda b: b["form"] == "I-589" and b["status"] == "pending",
        "victim_pending": lambda b: b["form"] in VICTIM_FORMS and b["status"] == "pending",
    }
    out: Row = {}
    for name, check in checks.items():
        out[name] = any(check(b) for b in rows)
        out[f"ev_{name}"] = _evidence("benefit_applications", rows, "filed_on", check)
    out["tps_valid"] = any(b["form"] == "I-821" and _valid_protection(b, as_of) for b in rows)
    out["daca_valid"] = any(b["form"] == "I-821D" and _valid_protection(b, as_of) for b in rows)
    return out


def _adm(f: _File, as_of: date) -> Row:
    """``adm``: admissions by the date, and whether one was as an immigrant."""
    rows = [a for a in f.admissions if _by(a["admitted_on"], as_of)]

    def immigrant(a: Row) -> bool:
        return a["class_of_admission"] in IMMIGRANT_CLASSES

    return {
        "immigrant": any(immigrant(a) for a in rows),
        "ev_immigrant": _evidence("admissions", rows, "admitted_on", immigrant),
        "admissions": len(rows),
    }


def _open_proceedings(f: _File, as_of: date) -> list[Ev] | None:
    """``court``: removal proceedings opened by the date, neither closed nor decided."""
    rows = [
        {"id": p["id"], "opened_on": p["opened_on"], "source_id": cc["source_id"]}
        for cc, p, decisions in f.proceedings
        if _by(p["opened_on"] if p["opened_on"] is not None else cc["nta_served_on"], as_of)
        and p["closed_on"] is None
        and not decisions
        and p["kind"] == "removal-240"
    ]
    return _evidence("proceedings", rows, "opened_on", _every)


def _case_evidence(cases: Iterable[Row], at: str) -> list[Ev] | None:
    """Cases as evidence dated by ``at``, ordered by it and id (NULL when there is none)."""
    ordered = sorted(cases, key=lambda c: _nulls_last(c[at], c["id"]))
    return [_ev("cases", _day(c[at]), c["id"], "this system") for c in ordered] or None


def _case_state(f: _File) -> Row:
    """``case_state``: the person's cases as they stand (no date cut-off)."""
    states = proceedings_states()
    in_proceedings = [c for c in f.cases if c["state"] in states]
    removed = [c for c in f.cases if c["state"] == "REMOVED"]
    offices = [c for c in f.cases if c["closed_at"] is None and c["office"] is not None]
    newest = max(offices, key=lambda c: _nulls_last(c["created_at"], c["id"]), default=None)
    return {
        "case_in_proceedings": bool(in_proceedings),
        "ev_case_in_proceedings": _case_evidence(in_proceedings, "created_at"),
        "removed_cases": len(removed),
        "ev_removed_cases": _case_evidence(removed, "closed_at"),
        "case_departed_on": _max(
            _day(c["closed_at"]) for c in f.cases if c["state"] in DEPARTED_STATES
        ),
        "case_office": None if newest is None else newest["office"],
    }


def _executed(f: _File, finals: list[Ev]) -> list[Ev]:
    """``executed``: court orders a departure on or after their final date executed."""
    departed = [on for x in f.departures if (on := _day(x["occurred_at"])) is not None]
    done = {
        (e["t"], e["id"], e["src"], e["d"]): e
        for e in finals
        if e["t"] == "court_decisions" and any(on >= e["d"] for on in departed)
    }
    return [done[key] for key in sorted(done, key=lambda k: _nulls_last(*k))]


def _encounter_office(f: _File, as_of: date) -> str | None:
    """``office``: the office of the latest encounter by the date (ties told apart by id)."""
    rows = [e for e in f.encounters if _by(e["occurred_on"], as_of) and e["office"] is not None]
    newest = max(rows, key=lambda e: (e["occurred_on"], e["id"]), default=None)
    return None if newest is None else newest["office"]


def _held(f: _File) -> Row:
    """``open_state`` and ``held``: what stands on the person's open cases."""
    open_cases = [c for c in f.cases if c["closed_at"] is None]
    in_force = [k for c, k in f.conditions if c["closed_at"] is None and k["ended_at"] is None]
    decisions = [
        (k["id"], _as_varchar(_field(k["params"], "decision")))
        for k in in_force
        if k["kind"] == "victim_petition_decision"
    ]
    decided = [(kid, d) for kid, d in decisions if d is not None]
    return {
        "review": sorted(c["id"] for c in open_cases if c["state"] == "CITIZENSHIP_REVIEW"),
        "identity_hold": _min(c["identity_hold"] for c in open_cases),
        "stay": any(k["kind"] == "stay" for k in in_force),
        "claim_form": _min(
            k["form"]
            for k in in_force
            if k["kind"] == "relief_application" and k["form"] in PROTECTION_FORMS
        ),
        "fear_claim": any(k["kind"] == "fear_claim" for k in in_force),
        "victim_decision": max(decided)[1] if decided else None,
    }


def _field(params: str | None, name: str) -> Any:
    """``json_extract(params, '$.name')`` parsed (None when absent or not an object)."""
    value = None if params is None else orjson.loads(params)
    return value.get(name) if isinstance(value, dict) else None


def _undecided(f: _File) -> list[str]:
    """``decided`` and ``undecided``: citizenship evidence no recorded decision covers."""
    decided: set[str | None] = set()
    for _, k in f.conditions:
        if k["kind"] == "citizenship_decided":
            records = _field(k["params"], "evidence_records")
            if isinstance(records, list):
                decided.update(_as_varchar(r) for r in records)
    return sorted(e["id"] for e in f.evidence if e["id"] not in decided)


def _blocks(
    p: Row, ben: Row, held: Row, undecided: list[str], departed: date | None, back: date | None
) -> list[Row]:
    """``BLOCKS``: the legal blocks, in the plan's order."""
    status = p["citizenship_status"]
    out = []
    if status in ("citizen", "claimed"):
        out.append(
            (
                "not_a_citizen",
                f"citizenship status is {status}: no civil immigration authority over a citizen",
            )
        )
    elif undecided:
        out.append(
            (
                "not_a_citizen",
                "citizenship evidence on record not yet decided: " + ", ".join(undecided),
            )
        )
    if held["review"]:
        out.append(
            (
                "not_in_citizenship_review",
                f"a case of this person is in citizenship review ({', '.join(held['review'])})",
            )
        )
    if held["identity_hold"] is not None:
        out.append(("no_identity_hold", f"identity hold: {held['identity_hold']}"))
    if ben["victim_pending"] and held["victim_decision"] != "proceed-with-documented-reason":
        out.append(
            (
                "victim_petitions_decided",
                "a U, T or VAWA petition is pending: a supervisor must record a decision",
            )
        )
    if held["claim_form"] is not None:
        out.append(("no_pending_protection_claim", f"pending {held['claim_form']} claim"))
    elif held["fear_claim"]:
        out.append(("no_pending_protection_claim", "a fear claim is pending"))
    elif ben["asylum_pending"]:
        out.append(
            ("no_pending_protection_claim", "a pending asylum application (I-589) is on record")
        )
    if ben["tps_valid"]:
        out.append(("tps_not_valid", "temporary protected status is in effect"))
    if ben["daca_valid"]:
        out.append(("deferred_action_not_in_effect", "deferred action (DACA) is in effect"))
    if held["stay"]:
        out.append(("no_stay", "a stay of removal is in effect"))
    if departed is not None and departed >= (back or date.min):
        out.append(
            ("not_departed", f"departed on {departed.isoformat()}, after the last entry on record")
        )
    return [{"guard": guard, "message": message} for guard, message in out]


# -- the row ------------------------------------------------------------------------------


def _gone(where: Row, cs: Row) -> tuple[date | None, date | None]:
    """When the person last left (by a departure or a case) and last came back or was seen."""
    departed = _max([where["last_departure"], cs["case_departed_on"]])
    return departed, _max([where["last_entry_date"], where["first_seen"]])


def _row(f: _File, as_of: date) -> Row:
    """The plan's final SELECT for one person."""
    p = f.person
    conv = _conv(f, as_of)
    finals = _finals(f, as_of)
    fin = _fin(finals)
    where = _whereabouts(f, as_of)
    ben = _ben(f, as_of)
    adm = _adm(f, as_of)
    cs = _case_state(f)
    open_proceedings = _open_proceedings(f, as_of)
    executed = _executed(f, finals)
    held = _held(f)
    departed, back = _gone(where, cs)
    final_on = fin["final_order_date"]
    return {
        "person_id": p["id"],
        "given_name": p["given_name"],
        "family_name": p["family_name"],
        "nationality": p["nationality"],
        "office": _coalesce(cs["case_office"], _encounter_office(f, as_of)),
        **conv,
        "final_order": final_on is not None,
        "ev_final_order": fin["ev_final"],
        "final_order_date": final_on,
        "ev_final_order_date": fin["ev_final"],
        "years_since_final_order": _years(final_on, as_of),
        "ev_years_since_final_order": fin["ev_final"],
        "in_proceedings": bool(open_proceedings) or bool(cs["case_in_proceedings"]),
        "ev_in_proceedings": _concat(open_proceedings, cs["ev_case_in_proceedings"]),
        "prior_removals": cs["removed_cases"] + len({e["id"] for e in executed}),
        "ev_prior_removals": _concat(cs["ev_removed_cases"], executed or None),
        "last_entry_date": where["last_entry_date"],
        "ev_last_entry_date": [where["ev_last"]],
        "years_in_country": _years(where["first_seen"], as_of),
        "ev_years_in_country": [where["ev_first"]],
        "border_apprehension": where["border_on"] is not None,
        "ev_border_apprehension": where["ev_border"],
        "no_admission_record": adm["admissions"] == 0 and where["first_seen"] is not None,
        "ev_no_admission_record": [where["ev_first"]],
        **_overstay(f, as_of, where["last_departure"]),
        **ben,
        "lawful_permanent_resident": adm["immigrant"] or ben["adjusted"],
        "ev_lawful_permanent_resident": _concat(adm["ev_immigrant"], ben["ev_adjusted"]),
        **_age(p, as_of),
        "citizenship_status": p["citizenship_status"],
        "departed_on": departed,
        "ev_dep": where["ev_dep"],
        "back_on": back,
        "blocks": _blocks(p, ben, held, _undecided(f), departed, back),
    }


def _age(p: Row, as_of: date) -> Row:
    """``age_years`` (whole years, as a double) and its evidence, the golden record."""
    born = p["birth_date"]
    if born is None:
        return {"age_years": None, "ev_age_years": None}
    return {
        "age_years": float(math.floor((as_of - born).days / 365.25)),
        "ev_age_years": [_ev("persons", born, p["id"], "golden record")],
    }
