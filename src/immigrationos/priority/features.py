"""Compute the catalogue's features (and the legal blocks) for every person, in DuckDB.

The store is read once, through the gateway, under ``enforcement-prioritization``: facts from
sources whose agreements do not permit that purpose never arrive, and the one audit entry says
what was read and what was withheld. The rows become Arrow tables and one SQL plan per group of
features turns them into a table with a row per active person: each feature's value and, in
``ev_<feature>``, the records behind it (table, id, source, date), which a score keeps as its
evidence. :func:`plan` returns that SQL so it can be read and tested before it runs.

Facts disputed under a redress request (:mod:`immigrationos.oversight.disputes`) are kept out:
while a dispute is open, every feature the disputed fact feeds (by the catalogue's sources, or
the person attribute it is computed from) is unknown for that person, with the request named
as the reason; a fact struck by an accepted correction is dropped before the plan runs. The
legal blocks are computed from every fact as it stands: a dispute never lifts a protection.

The blocks computed here mirror, in bulk, the lifecycle guards that
:mod:`immigrationos.priority.blocks` checks one person at a time; a test holds them equal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Integer,
    Select,
    select,
)

from immigrationos.departures.models import Departure
from immigrationos.facts.models import (
    Admission,
    Appeal,
    BenefitApplication,
    Conviction,
    CourtCase,
    CourtDecision,
    Encounter,
    Proceeding,
)
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle.facts import CITIZENSHIP_SOURCES, IMMIGRANT_CLASSES
from immigrationos.lifecycle.guards import PROTECTION_FORMS, VICTIM_FORMS
from immigrationos.lifecycle.models import CaseCondition, CaseEvent, EnforcementCase
from immigrationos.lifecycle.table import load_table
from immigrationos.persons.models import Person, RecordLink
from immigrationos.priority.catalogue import FEATURES, Kind
from immigrationos.sources.models import SourceRecord
from immigrationos.store.base import UTCDateTime
from immigrationos.store.sql import one_of

SIGNIFICANT_MISDEMEANORS = ("dui", "assault", "weapons", "burglary", "drug-trafficking",
                            "sexual-offense")  # fmt: skip
VIOLENT = ("homicide", "robbery", "sexual-offense")
FELONY_LEVELS = ("felony", "aggravated-felony")
EWI_CHARGE = "212(a)(6)(A)(i)"
ORDER_DECISIONS = ("removal-ordered", "in-absentia")
SUMMARY_PROCEEDINGS = ("expedited-235b1", "reinstatement")
DEPARTED_STATES = ("REMOVED", "DEPARTED_VOLUNTARILY", "CLOSED_DEPARTED")
FINAL_STATES = ("FINAL_ORDER", "REMOVAL_SCHEDULED")


@lru_cache(maxsize=1)
def _queries() -> dict[str, tuple[Select[Any], Any]]:
    """What the features read: columns only, the persons' own facts, nothing else (built once
    per process: statements are immutable; callers must not change the dict)."""
    linked = Conviction.person_id.is_not(None)
    return {
        "persons": (
            select(Person.id, Person.given_name, Person.family_name, Person.birth_date,
                   Person.nationality, Person.citizenship_status)
            .where(Person.status == "active"),
            Person,
        ),
        "convictions": (
            select(Conviction.id, Conviction.person_id, Conviction.source_id,
                   Conviction.offense_category, Conviction.offense_level,
                   Conviction.conviction_date, Conviction.sentence_days).where(linked),
            Conviction,
        ),
        "admissions": (
            select(Admission.id, Admission.person_id, Admission.source_id,
                   Admission.class_of_admission, Admission.admitted_on, Admission.admitted_until)
            .where(Admission.person_id.is_not(None)),
            Admission,
        ),
        "encounters": (
            select(Encounter.id, Encounter.person_id, Encounter.source_id, Encounter.occurred_on,
                   Encounter.office, Encounter.disposition)
            .where(Encounter.person_id.is_not(None)),
            Encounter,
        ),
        "benefits": (
            select(BenefitApplication.id, BenefitApplication.person_id,
                   BenefitApplication.source_id, BenefitApplication.form,
                   BenefitApplication.status, BenefitApplication.filed_on,
                   BenefitApplication.valid_until)
            .where(BenefitApplication.person_id.is_not(None)),
            BenefitApplication,
        ),
        "court_cases": (
            select(CourtCase.id, CourtCase.person_id, CourtCase.source_id, CourtCase.charge,
                   CourtCase.nta_served_on).where(CourtCase.person_id.is_not(None)),
            CourtCase,
        ),
        "proceedings": (
            select(Proceeding.id, Proceeding.court_case_id, Proceeding.kind,
                   Proceeding.opened_on, Proceeding.closed_on),
            Proceeding,
        ),
        "decisions": (
            select(CourtDecision.id, CourtDecision.proceeding_id, CourtDecision.decision_type,
                   CourtDecision.decided_on, CourtDecision.vd_deadline),
            CourtDecision,
        ),
        "appeals": (
            select(Appeal.id, Appeal.decision_id, Appeal.decided_on, Appeal.outcome),
            Appeal,
        ),
        "departures": (
            select(Departure.id, Departure.person_id, Departure.source_id,
                   Departure.occurred_at, Departure.channel)
            .where(Departure.person_id.is_not(None), Departure.match_band != "review"),
            Departure,
        ),
        "cases": (
            select(EnforcementCase.id, EnforcementCase.person_id, EnforcementCase.state,
                   EnforcementCase.office, EnforcementCase.identity_hold,
                   EnforcementCase.closed_at, EnforcementCase.created_at),
            EnforcementCase,
        ),
        "final_events": (
            select(CaseEvent.case_id, CaseEvent.id, CaseEvent.at)
            .where(CaseEvent.to_state == "FINAL_ORDER"),
            CaseEvent,
        ),
        "conditions": (
            select(CaseCondition.case_id, CaseCondition.id, CaseCondition.kind,
                   CaseCondition.form, CaseCondition.params, CaseCondition.ended_at),
            CaseCondition,
        ),
        "evidence": (
            select(SourceRecord.id, RecordLink.person_id)
            .join(RecordLink, RecordLink.source_record_id == SourceRecord.id)
            .where(RecordLink.unlinked_at.is_(None),
                   SourceRecord.source_id.in_(CITIZENSHIP_SOURCES)),
            SourceRecord,
        ),
    }  # fmt: skip


def _arrow_type(column_type: Any) -> pa.DataType:
    if isinstance(column_type, Date):
        return pa.date32()
    if isinstance(column_type, DateTime | UTCDateTime):
        return pa.timestamp("us")
    if isinstance(column_type, Integer):
        return pa.int64()
    if isinstance(column_type, Float):
        return pa.float64()
    if isinstance(column_type, Boolean):
        return pa.bool_()
    return pa.string()


def _to_arrow(stmt: Select[Any], rows: list[Any]) -> pa.Table:
    columns = {}
    for i, col in enumerate(stmt.selected_columns):
        values = [r[i] for r in rows]
        if isinstance(col.type, JSON):
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        elif isinstance(col.type, DateTime | UTCDateTime):
            values = [None if v is None else v.replace(tzinfo=None) for v in values]
        columns[col.name] = pa.array(values, type=_arrow_type(col.type))
    return pa.table(columns)


@dataclass
class Snapshot:
    """The store's rows the features need, as Arrow tables (one per read)."""

    tables: dict[str, pa.Table]
    unknown: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per person, the features a disputed fact makes unknown, each with the reason."""

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        for name, table in self.tables.items():
            con.register(name, table)


def read(
    gw: Gateway, person_ids: list[str] | None = None, tables: Collection[str] | None = None
) -> Snapshot:
    """Read what the features need, in one audited bundle (optionally for some persons, and
    optionally only some of the reads)."""
    queries = _queries()
    if tables is not None:
        queries = {name: queries[name] for name in tables}
    if person_ids is not None:
        dialect = gw.session.get_bind().dialect.name
        queries = {name: (_narrowed(name, dialect), m) for name, (_, m) in queries.items()}
    excluded = _redress(gw)
    got = gw.bundle(
        queries,
        params={"file": "priority_features", "persons": person_ids or "all"},
        values=None if person_ids is None else {"persons": person_ids},
    )
    tables = {name: _to_arrow(queries[name][0], rows) for name, rows in got.items()}
    for table_name, ids in excluded.struck().items():
        name = SNAPSHOT_OF.get(table_name)
        if name in tables and ids:
            keep = pc.invert(pc.is_in(tables[name].column("id"), pa.array(sorted(ids))))
            tables[name] = tables[name].filter(keep)
    return Snapshot(tables, unknown(excluded.open_facts(), person_ids))


# -- redress ----------------------------------------------------------------------------------

#: The fact tables a correction can strike, by the name of their read above.
SNAPSHOT_OF = {
    "convictions": "convictions",
    "admissions": "admissions",
    "encounters": "encounters",
    "benefit_applications": "benefits",
    "court_cases": "court_cases",
    "departures": "departures",
}
#: Person attributes a feature is computed from (a disputed one makes these unknown).
FROM_ATTRIBUTES: dict[str, tuple[str, ...]] = {"birth_date": ("age_years",)}


def _redress(gw: Gateway) -> Any:
    """The disputed and struck facts (imported late: redress re-scores through this package)."""
    from immigrationos.oversight.disputes import exclusions

    return exclusions(gw)


def fed_by(source_id: str | None) -> tuple[str, ...]:
    """The catalogue features a fact from ``source_id`` feeds."""
    return tuple(n for n, f in FEATURES.items() if source_id and source_id in f.sources)


def unknown(facts: Iterable[Any], person_ids: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Per person, each feature an open dispute makes unknown and why (pure).

    A disputed fact row or record link feeds the features of its source; a disputed person
    attribute those computed from it; an identifier feeds none (it serves matching only).
    """
    wanted = set(person_ids) if person_ids is not None else None
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for fact in facts:
        if wanted is not None and fact.person_id not in wanted:
            continue
        if fact.kind == "identifier":
            continue
        names = (
            FROM_ATTRIBUTES.get(fact.field or "", ())
            if fact.kind == "attribute"
            else fed_by(fact.source_id)
        )
        for name in names:
            out[fact.person_id].setdefault(
                name, f"disputed under redress request {fact.request_id}"
            )
    return dict(out)


def withhold(table: pa.Table, unknown: dict[str, dict[str, str]]) -> pa.Table:
    """``table`` with each person's disputed features (and their evidence) set to unknown."""
    if not unknown or table.num_rows == 0:
        return table
    persons = table.column("person_id")
    by_feature: dict[str, list[str]] = defaultdict(list)
    for person, names in unknown.items():
        for name in names:
            by_feature[name].append(person)
    for name, people in by_feature.items():
        mask = pc.is_in(persons, pa.array(people))
        for column in (name, f"ev_{name}"):
            if column in table.column_names:
                i = table.column_names.index(column)
                current = table.column(column)
                blank = pa.nulls(len(table), current.type)
                table = table.set_column(i, column, pc.if_else(mask, blank, current))
    return table


@cache
def _narrowed(name: str, dialect: str) -> Select[Any]:
    """One of the reads narrowed to the persons bound as ``persons`` when it runs (built once
    per process and backend: building the fourteen narrowed reads cost each explanation
    ~8 ms)."""
    stmt = _queries()[name][0]

    def ids(column: Any) -> ColumnElement[bool]:
        return one_of(column, dialect, name="persons")

    def cases() -> Select[Any]:
        return select(EnforcementCase.id).where(ids(EnforcementCase.person_id))

    def court() -> Select[Any]:
        return select(CourtCase.id).where(ids(CourtCase.person_id))

    def procs() -> Select[Any]:
        return select(Proceeding.id).where(Proceeding.court_case_id.in_(court()))

    where: dict[str, Callable[[], ColumnElement[bool]]] = {
        "persons": lambda: ids(Person.id),
        "convictions": lambda: ids(Conviction.person_id),
        "admissions": lambda: ids(Admission.person_id),
        "encounters": lambda: ids(Encounter.person_id),
        "benefits": lambda: ids(BenefitApplication.person_id),
        "court_cases": lambda: ids(CourtCase.person_id),
        "proceedings": lambda: Proceeding.court_case_id.in_(court()),
        "decisions": lambda: CourtDecision.proceeding_id.in_(procs()),
        "appeals": lambda: Appeal.decision_id.in_(
            select(CourtDecision.id).where(CourtDecision.proceeding_id.in_(procs()))
        ),
        "departures": lambda: ids(Departure.person_id),
        "cases": lambda: ids(EnforcementCase.person_id),
        "final_events": lambda: CaseEvent.case_id.in_(cases()),
        "conditions": lambda: CaseCondition.case_id.in_(cases()),
        "evidence": lambda: ids(RecordLink.person_id),
    }
    return stmt.where(where[name]())


# -- the plan -------------------------------------------------------------------------------


def _ev(table: str, date_col: str, where: str, id_col: str = "id", src: str = "source_id") -> str:
    struct = f"{{'t': '{table}', 'id': {id_col}, 'src': {src}, 'd': CAST({date_col} AS DATE)}}"
    return f"list({struct} ORDER BY {date_col}, {id_col}) FILTER (WHERE {where})"


BLOCK_CTES = f"""
open_state AS (
  SELECT person_id, list(id ORDER BY id) FILTER (WHERE state = 'CITIZENSHIP_REVIEW') AS review,
    min(identity_hold) AS identity_hold
  FROM cases WHERE closed_at IS NULL GROUP BY person_id
),
held AS (
  -- conditions in force on the person's open cases
  SELECT c.person_id,
    bool_or(k.kind = 'stay') AS stay,
    min(k.form) FILTER (WHERE k.kind = 'relief_application' AND k.form IN {PROTECTION_FORMS})
      AS claim_form,
    bool_or(k.kind = 'fear_claim') AS fear_claim,
    arg_max(json_extract_string(k.params, '$.decision'), k.id)
      FILTER (WHERE k.kind = 'victim_petition_decision') AS victim_decision
  FROM conditions k JOIN cases c ON c.id = k.case_id
  WHERE k.ended_at IS NULL AND c.closed_at IS NULL GROUP BY c.person_id
),
decided AS (
  SELECT DISTINCT c.person_id,
    unnest(from_json(json_extract(k.params, '$.evidence_records'), '["VARCHAR"]')) AS rid
  FROM conditions k JOIN cases c ON c.id = k.case_id WHERE k.kind = 'citizenship_decided'
),
undecided AS (
  SELECT e.person_id, list(e.id ORDER BY e.id) AS ids FROM evidence e
  WHERE NOT EXISTS (SELECT 1 FROM decided d WHERE d.person_id = e.person_id AND d.rid = e.id)
  GROUP BY e.person_id
)"""

_DEPARTED = "greatest(dep.last_departure, cs.case_departed_on)"
_BACK = "greatest(entry.last_entry_date, presence.first_seen)"
BLOCKS = f"""list_filter([
    CASE WHEN p.citizenship_status IN ('citizen', 'claimed') THEN {{'guard': 'not_a_citizen',
      'message': 'citizenship status is ' || p.citizenship_status
                 || ': no civil immigration authority over a citizen'}}
    WHEN undecided.ids IS NOT NULL THEN {{'guard': 'not_a_citizen',
      'message': 'citizenship evidence on record not yet decided: '
                 || array_to_string(undecided.ids, ', ')}} END,
    CASE WHEN len(os.review) > 0 THEN {{'guard': 'not_in_citizenship_review',
      'message': 'a case of this person is in citizenship review ('
                 || array_to_string(os.review, ', ') || ')'}} END,
    CASE WHEN os.identity_hold IS NOT NULL THEN {{'guard': 'no_identity_hold',
      'message': 'identity hold: ' || os.identity_hold}} END,
    CASE WHEN coalesce(ben.victim_pending, FALSE)
      AND coalesce(held.victim_decision, '') <> 'proceed-with-documented-reason'
      THEN {{'guard': 'victim_petitions_decided',
      'message': 'a U, T or VAWA petition is pending: a supervisor must record a decision'}} END,
    CASE WHEN held.claim_form IS NOT NULL OR coalesce(held.fear_claim, FALSE)
      OR coalesce(ben.asylum_pending, FALSE) THEN {{'guard': 'no_pending_protection_claim',
      'message': CASE WHEN held.claim_form IS NOT NULL
                        THEN 'pending ' || held.claim_form || ' claim'
                      WHEN held.fear_claim THEN 'a fear claim is pending'
                      ELSE 'a pending asylum application (I-589) is on record' END}} END,
    CASE WHEN coalesce(ben.tps_valid, FALSE) THEN {{'guard': 'tps_not_valid',
      'message': 'temporary protected status is in effect'}} END,
    CASE WHEN coalesce(ben.daca_valid, FALSE) THEN {{'guard': 'deferred_action_not_in_effect',
      'message': 'deferred action (DACA) is in effect'}} END,
    CASE WHEN coalesce(held.stay, FALSE) THEN {{'guard': 'no_stay',
      'message': 'a stay of removal is in effect'}} END,
    CASE WHEN {_DEPARTED} >= coalesce({_BACK}, DATE '0001-01-01') THEN {{'guard': 'not_departed',
      'message': 'departed on ' || CAST({_DEPARTED} AS VARCHAR)
                 || ', after the last entry on record'}} END
  ], lambda b: b IS NOT NULL)"""


def proceedings_states() -> tuple[str, ...]:
    """The case states of the lifecycle table's "proceedings" group."""
    states = load_table().states
    return tuple(s for s, spec in states.items() if spec.group == "proceedings")


def plan() -> str:
    """The SQL that turns the snapshot into one row of features per person (``$asof``)."""
    proceedings = proceedings_states()
    return f"""
WITH
conv AS (
  SELECT person_id,
    bool_or(offense_level = 'aggravated-felony') AS aggravated_felony,
    {_ev("convictions", "conviction_date", "offense_level = 'aggravated-felony'")} AS ev_aggravated_felony,
    bool_or(offense_level IN {FELONY_LEVELS}) AS felony,
    {_ev("convictions", "conviction_date", f"offense_level IN {FELONY_LEVELS}")} AS ev_felony,
    bool_or({_significant()}) AS significant_misdemeanor,
    {_ev("convictions", "conviction_date", _significant())} AS ev_significant_misdemeanor,
    count(*) FILTER (WHERE offense_level = 'misdemeanor') AS misdemeanor_count,
    {_ev("convictions", "conviction_date", "offense_level = 'misdemeanor'")} AS ev_misdemeanor_count,
    count(*) AS conviction_count,
    {_ev("convictions", "conviction_date", "TRUE")} AS ev_conviction_count,
    bool_or({_violent()}) AS violent_offense,
    {_ev("convictions", "conviction_date", _violent())} AS ev_violent_offense,
    bool_or(offense_category = 'weapons') AS firearms_offense,
    {_ev("convictions", "conviction_date", "offense_category = 'weapons'")} AS ev_firearms_offense,
    bool_or(offense_category = 'drug-trafficking') AS drug_trafficking,
    {_ev("convictions", "conviction_date", "offense_category = 'drug-trafficking'")} AS ev_drug_trafficking,
    max(sentence_days) AS max_sentence_days,
    {_ev("convictions", "conviction_date", "sentence_days IS NOT NULL")} AS ev_max_sentence_days,
    max(conviction_date) AS last_conviction,
    max(conviction_date) FILTER (WHERE offense_level IN {FELONY_LEVELS}) AS last_felony
  FROM convictions WHERE conviction_date <= $asof GROUP BY person_id
),
orders AS (
  -- a removal order and when it became final (NULL: not final)
  SELECT cc.person_id, d.id, d.decided_on,
    CASE
      WHEN bool_or(a.outcome = 'pending') OR bool_or(a.outcome = 'sustained') THEN NULL
      WHEN bool_or(a.outcome = 'dismissed') THEN max(a.decided_on)
      WHEN d.decision_type = 'in-absentia' OR p.kind IN {SUMMARY_PROCEEDINGS} THEN d.decided_on
      ELSE d.decided_on + 30
    END AS final_on
  FROM decisions d JOIN proceedings p ON p.id = d.proceeding_id
  JOIN court_cases cc ON cc.id = p.court_case_id
  LEFT JOIN appeals a ON a.decision_id = d.id
  WHERE d.decision_type IN {ORDER_DECISIONS} AND d.decided_on <= $asof
  GROUP BY cc.person_id, d.id, d.decided_on, d.decision_type, p.kind
),
vd_orders AS (
  -- voluntary departure not taken by its deadline: the alternate order is final
  SELECT cc.person_id, d.id, d.vd_deadline AS final_on
  FROM decisions d JOIN proceedings p ON p.id = d.proceeding_id
  JOIN court_cases cc ON cc.id = p.court_case_id
  WHERE d.decision_type = 'voluntary-departure' AND d.vd_deadline < $asof
    AND NOT EXISTS (SELECT 1 FROM departures x WHERE x.person_id = cc.person_id
                    AND CAST(x.occurred_at AS DATE) BETWEEN d.decided_on AND d.vd_deadline)
),
finals AS (
  SELECT person_id, id, final_on, 'court_decisions' AS t, 'court' AS src FROM orders
    WHERE final_on IS NOT NULL AND final_on <= $asof
  UNION ALL SELECT person_id, id, final_on, 'court_decisions', 'court' FROM vd_orders
  UNION ALL
  SELECT c.person_id, c.id, CAST(max(e.at) AS DATE), 'cases', 'this system'
  FROM cases c LEFT JOIN final_events e ON e.case_id = c.id
  WHERE c.state IN {FINAL_STATES} GROUP BY c.person_id, c.id
),
fin AS (
  SELECT person_id, max(final_on) AS final_order_date,
    list({{'t': t, 'id': id, 'src': src, 'd': final_on}} ORDER BY final_on, id) AS ev_final
  FROM finals GROUP BY person_id
),
entries AS (
  SELECT person_id, admitted_on AS on_, id, 'admissions' AS t, source_id AS src FROM admissions
  UNION ALL
  SELECT e.person_id, e.occurred_on, e.id, 'encounters', e.source_id FROM encounters e
  WHERE EXISTS (SELECT 1 FROM court_cases cc WHERE cc.person_id = e.person_id
                AND cc.charge = '{EWI_CHARGE}'
                AND cc.nta_served_on BETWEEN e.occurred_on AND e.occurred_on + INTERVAL 60 DAY)
),
entry AS (
  -- records on the same date are told apart by id: the evidence kept is always the same
  SELECT person_id, max(on_) AS last_entry_date,
    arg_max({{'t': t, 'id': id, 'src': src, 'd': on_}}, (on_, id)) AS ev_last
  FROM entries WHERE on_ <= $asof GROUP BY person_id
),
presence AS (
  SELECT person_id, min(on_) AS first_seen,
    arg_min({{'t': t, 'id': id, 'src': src, 'd': on_}}, (on_, id)) AS ev_first
  FROM (SELECT person_id, admitted_on AS on_, id, 'admissions' AS t, source_id AS src
        FROM admissions
        UNION ALL SELECT person_id, occurred_on, id, 'encounters', source_id FROM encounters
        UNION ALL SELECT person_id, nta_served_on, id, 'court_cases', source_id FROM court_cases
                  WHERE nta_served_on IS NOT NULL)
  WHERE on_ <= $asof GROUP BY person_id
),
dep AS (
  SELECT person_id, max(CAST(occurred_at AS DATE)) AS last_departure,
    arg_max({{'t': 'departures', 'id': id, 'src': source_id, 'd': CAST(occurred_at AS DATE)}},
            (occurred_at, id)) AS ev_dep
  FROM departures WHERE CAST(occurred_at AS DATE) <= $asof GROUP BY person_id
),
border AS (
  SELECT person_id, max(on_) AS border_on,
    list({{'t': t, 'id': id, 'src': src, 'd': on_}} ORDER BY on_, id) AS ev_border
  FROM entries WHERE t = 'encounters' AND on_ <= $asof GROUP BY person_id
),
stay AS (
  SELECT a.person_id, a.id, a.admitted_on, a.admitted_until, a.source_id,
    row_number() OVER (PARTITION BY a.person_id ORDER BY a.admitted_on DESC, a.id) AS k
  FROM admissions a WHERE a.admitted_on <= $asof
),
overstay AS (
  SELECT s.person_id,
    CASE
      WHEN s.admitted_until IS NULL OR s.admitted_until >= $asof THEN 0
      WHEN d.last_departure >= s.admitted_on THEN 0
      WHEN EXISTS (SELECT 1 FROM benefits b WHERE b.person_id = s.person_id
                   AND b.filed_on BETWEEN s.admitted_on AND s.admitted_until) THEN 0
      ELSE date_diff('day', s.admitted_until, $asof)
    END AS overstay_days,
    [{{'t': 'admissions', 'id': s.id, 'src': s.source_id, 'd': s.admitted_until}}] AS ev_overstay
  FROM stay s LEFT JOIN dep d USING (person_id) WHERE s.k = 1
),
ben AS (
  SELECT person_id,
    bool_or(status = 'pending') AS pending_relief,
    {_ev("benefit_applications", "filed_on", "status = 'pending'")} AS ev_pending_relief,
    bool_or({_valid_protection()}) AS protected_status,
    {_ev("benefit_applications", "filed_on", _valid_protection())} AS ev_protected_status,
    bool_or(form IN {VICTIM_FORMS}) AS victim_or_witness,
    {_ev("benefit_applications", "filed_on", f"form IN {VICTIM_FORMS}")} AS ev_victim_or_witness,
    bool_or(form = 'I-485' AND status = 'approved') AS adjusted,
    {_ev("benefit_applications", "filed_on", "form = 'I-485' AND status = 'approved'")} AS ev_adjusted,
    bool_or(form = 'I-589' AND status = 'pending') AS asylum_pending,
    {_ev("benefit_applications", "filed_on", "form = 'I-589' AND status = 'pending'")} AS ev_asylum_pending,
    bool_or(form IN {VICTIM_FORMS} AND status = 'pending') AS victim_pending,
    bool_or(form = 'I-821' AND {_valid_protection()}) AS tps_valid,
    bool_or(form = 'I-821D' AND {_valid_protection()}) AS daca_valid,
    {_ev("benefit_applications", "filed_on", f"form IN {VICTIM_FORMS} AND status = 'pending'")} AS ev_victim_pending
  FROM (SELECT *, source_id FROM benefits WHERE filed_on <= $asof) GROUP BY person_id
),
adm AS (
  SELECT person_id, bool_or(class_of_admission IN {IMMIGRANT_CLASSES}) AS immigrant,
    {_ev("admissions", "admitted_on", f"class_of_admission IN {IMMIGRANT_CLASSES}")} AS ev_immigrant,
    count(*) AS admissions
  FROM admissions WHERE admitted_on <= $asof GROUP BY person_id
),
court AS (
  SELECT cc.person_id,
    bool_or(p.closed_on IS NULL AND d.id IS NULL AND p.kind = 'removal-240') AS open_proceeding,
    {_ev("proceedings", "p.opened_on", "p.closed_on IS NULL AND d.id IS NULL AND p.kind = 'removal-240'", "p.id", "cc.source_id")} AS ev_open_proceeding
  FROM court_cases cc JOIN proceedings p ON p.court_case_id = cc.id
  LEFT JOIN decisions d ON d.proceeding_id = p.id
  WHERE coalesce(p.opened_on, cc.nta_served_on) <= $asof GROUP BY cc.person_id
),
case_state AS (
  SELECT person_id,
    bool_or(state IN {proceedings}) AS case_in_proceedings,
    -- lists in a set order, and the newest open case's office told apart by id (ties)
    list({{'t': 'cases', 'id': id, 'src': 'this system', 'd': CAST(created_at AS DATE)}}
         ORDER BY created_at, id)
      FILTER (WHERE state IN {proceedings}) AS ev_case_in_proceedings,
    count(*) FILTER (WHERE state = 'REMOVED') AS removed_cases,
    list({{'t': 'cases', 'id': id, 'src': 'this system', 'd': CAST(closed_at AS DATE)}}
         ORDER BY closed_at, id)
      FILTER (WHERE state = 'REMOVED') AS ev_removed_cases,
    max(CAST(closed_at AS DATE)) FILTER (WHERE state IN {DEPARTED_STATES}) AS case_departed_on,
    arg_max(office, (created_at, id)) FILTER (WHERE closed_at IS NULL) AS case_office
  FROM cases GROUP BY person_id
),
executed AS (
  -- a departure after a final order executes it (8 CFR 241.7): a prior removal
  -- (the orders listed in a set order: a DISTINCT list can only be ordered by its item)
  SELECT f.person_id, count(DISTINCT f.id) AS n,
    list(DISTINCT {{'t': f.t, 'id': f.id, 'src': f.src, 'd': f.final_on}}
         ORDER BY {{'t': f.t, 'id': f.id, 'src': f.src, 'd': f.final_on}}) AS ev_executed
  FROM finals f JOIN departures x ON x.person_id = f.person_id
    AND CAST(x.occurred_at AS DATE) >= f.final_on
  WHERE f.t = 'court_decisions' GROUP BY f.person_id
),
office AS (
  -- the newest encounter's office, told apart by id (ties)
  SELECT person_id, arg_max(office, (occurred_on, id)) AS encounter_office FROM encounters
  WHERE occurred_on <= $asof GROUP BY person_id
),
{BLOCK_CTES}
SELECT p.id AS person_id, p.given_name, p.family_name, p.nationality,
  coalesce(cs.case_office, o.encounter_office) AS office,
  coalesce(conv.aggravated_felony, FALSE) AS aggravated_felony, ev_aggravated_felony,
  coalesce(conv.felony, FALSE) AS felony, ev_felony,
  coalesce(conv.significant_misdemeanor, FALSE) AS significant_misdemeanor, ev_significant_misdemeanor,
  coalesce(conv.misdemeanor_count, 0) AS misdemeanor_count, ev_misdemeanor_count,
  coalesce(conv.conviction_count, 0) AS conviction_count, ev_conviction_count,
  coalesce(conv.violent_offense, FALSE) AS violent_offense, ev_violent_offense,
  coalesce(conv.firearms_offense, FALSE) AS firearms_offense, ev_firearms_offense,
  coalesce(conv.drug_trafficking, FALSE) AS drug_trafficking, ev_drug_trafficking,
  conv.max_sentence_days, ev_max_sentence_days,
  round(date_diff('day', conv.last_conviction, $asof) / 365.25, 2) AS years_since_last_conviction,
  {_last("conv.last_conviction", "ev_conviction_count")} AS ev_years_since_last_conviction,
  round(date_diff('day', conv.last_felony, $asof) / 365.25, 2) AS years_since_last_felony,
  {_last("conv.last_felony", "ev_felony")} AS ev_years_since_last_felony,
  fin.final_order_date IS NOT NULL AS final_order, fin.ev_final AS ev_final_order,
  fin.final_order_date, fin.ev_final AS ev_final_order_date,
  round(date_diff('day', fin.final_order_date, $asof) / 365.25, 2) AS years_since_final_order,
  fin.ev_final AS ev_years_since_final_order,
  coalesce(court.open_proceeding, FALSE) OR coalesce(cs.case_in_proceedings, FALSE) AS in_proceedings,
  list_concat(court.ev_open_proceeding, cs.ev_case_in_proceedings) AS ev_in_proceedings,
  coalesce(cs.removed_cases, 0) + coalesce(executed.n, 0) AS prior_removals,
  list_concat(cs.ev_removed_cases, executed.ev_executed) AS ev_prior_removals,
  entry.last_entry_date, [entry.ev_last] AS ev_last_entry_date,
  round(date_diff('day', presence.first_seen, $asof) / 365.25, 2) AS years_in_country,
  [presence.ev_first] AS ev_years_in_country,
  border.border_on IS NOT NULL AS border_apprehension, border.ev_border AS ev_border_apprehension,
  coalesce(adm.admissions, 0) = 0 AND presence.first_seen IS NOT NULL AS no_admission_record,
  [presence.ev_first] AS ev_no_admission_record,
  overstay.overstay_days, overstay.ev_overstay AS ev_overstay_days,
  coalesce(ben.pending_relief, FALSE) AS pending_relief, ev_pending_relief,
  coalesce(ben.protected_status, FALSE) AS protected_status, ev_protected_status,
  coalesce(ben.victim_or_witness, FALSE) AS victim_or_witness, ev_victim_or_witness,
  coalesce(adm.immigrant, FALSE) OR coalesce(ben.adjusted, FALSE) AS lawful_permanent_resident,
  list_concat(adm.ev_immigrant, ben.ev_adjusted) AS ev_lawful_permanent_resident,
  CAST(floor(date_diff('day', p.birth_date, $asof) / 365.25) AS DOUBLE) AS age_years,
  CASE WHEN p.birth_date IS NULL THEN NULL
       ELSE [{{'t': 'persons', 'id': p.id, 'src': 'golden record', 'd': p.birth_date}}] END AS ev_age_years,
  -- for the blocks
  p.citizenship_status, coalesce(ben.asylum_pending, FALSE) AS asylum_pending, ev_asylum_pending,
  coalesce(ben.victim_pending, FALSE) AS victim_pending, ev_victim_pending,
  {_DEPARTED} AS departed_on, dep.ev_dep, {_BACK} AS back_on,
  {BLOCKS} AS blocks
FROM persons p
LEFT JOIN conv ON conv.person_id = p.id
LEFT JOIN fin ON fin.person_id = p.id
LEFT JOIN entry ON entry.person_id = p.id
LEFT JOIN presence ON presence.person_id = p.id
LEFT JOIN border ON border.person_id = p.id
LEFT JOIN dep ON dep.person_id = p.id
LEFT JOIN overstay ON overstay.person_id = p.id
LEFT JOIN ben ON ben.person_id = p.id
LEFT JOIN adm ON adm.person_id = p.id
LEFT JOIN court ON court.person_id = p.id
LEFT JOIN case_state cs ON cs.person_id = p.id
LEFT JOIN executed ON executed.person_id = p.id
LEFT JOIN office o ON o.person_id = p.id
LEFT JOIN open_state os ON os.person_id = p.id
LEFT JOIN held ON held.person_id = p.id
LEFT JOIN undecided ON undecided.person_id = p.id
ORDER BY p.id
"""  # noqa: E501


def _significant() -> str:
    return (
        f"offense_level = 'misdemeanor' AND (offense_category IN {SIGNIFICANT_MISDEMEANORS} "
        "OR coalesce(sentence_days, 0) >= 90)"
    )


def _violent() -> str:
    return (
        f"offense_category IN {VIOLENT} OR "
        f"(offense_category = 'assault' AND offense_level IN {FELONY_LEVELS})"
    )


def _valid_protection() -> str:
    return (
        "form IN ('I-821', 'I-821D') AND status = 'approved' "
        "AND coalesce(valid_until, DATE '9999-12-31') >= $asof"
    )


def _last(on: str, evidence: str) -> str:
    """The evidence records dated ``on`` (the newest, for a "years since" feature)."""
    return f"list_filter({evidence}, lambda e: e.d = {on})"


def compute(snapshot: Snapshot, as_of: date) -> pa.Table:
    """One row per active person: every collected feature, its evidence, and block inputs.

    For the few persons of an explanation or a worklist page,
    :func:`immigrationos.priority.features_py.compute_py` gives the same table in Python."""
    con = duckdb.connect()
    try:
        snapshot.register(con)
        table = con.sql(plan(), params={"asof": as_of}).to_arrow_table()
    finally:
        con.close()
    return withhold(_with_uncollected(table), snapshot.unknown)


_ARROW_KIND = {Kind.BOOLEAN: pa.bool_(), Kind.INTEGER: pa.int64(), Kind.NUMBER: pa.float64(),
               Kind.DATE: pa.date32()}  # fmt: skip


def _with_uncollected(table: pa.Table) -> pa.Table:
    """Add a null column for each feature no source carries (so policies naming them run)."""
    for name, feature in FEATURES.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(len(table), _ARROW_KIND[feature.kind]))
    return table
