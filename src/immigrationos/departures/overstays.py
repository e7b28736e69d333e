"""Overstays (domain.md §4): every admission's outcome as of a date, kept as history.

The method of the annual entry/exit overstay report: nonimmigrant admissions by air or sea
whose authorized stay ended in a fiscal year (October to September) either departed on time,
departed late (out-of-country overstay), have no departure record (suspected in-country
overstay), or are no overstay because an extension, change or adjustment was filed in time.
A stay that has not ended is ``in-status``. Everything else is outside the method and counted
as an exclusion with its reason (:data:`EXCLUSIONS`), never silently dropped.

An assessment is as of a date D: it sees only departures the system had *recorded* by the end
of D, so a departure recorded late revises the figure, and the earlier figure is kept (the row
it revises gets ``superseded_at``). A new row is written only when something changed, so
assessing twice adds nothing. An overstay flag is a revisable statistical lead, never a
basis for action on its own.

The store is read once per assessment through the gateway (one audited bundle, under the
``statistics`` purpose, which the arrivals, departures and benefits agreements all permit),
the rows become Arrow tables, and one DuckDB plan (:data:`JUDGE_SQL`, readable before it runs)
judges every admission. :func:`plan` is pure (what would be written and superseded, and why);
:func:`assess` writes it. :func:`report` and :func:`history` read the kept assessments.
"""

from __future__ import annotations

import time as timer
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    func,
    literal_column,
    or_,
    select,
    text,
    type_coerce,
)

from immigrationos.audit.chain import emit
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.departures.models import Departure, OverstayAssessment
from immigrationos.departures.overstay_events import OverstaysAssessed
from immigrationos.facts.models import Admission, BenefitApplication
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.facts import IMMIGRANT_CLASSES
from immigrationos.persons.models import Person

PURPOSE = Purpose.STATISTICS
#: Sources an assessment reads; each agreement must permit :data:`PURPOSE` (else refused,
#: because a silently withheld source would bias the figures rather than fail).
SOURCES = ("arrivals", "departures", "benefits")

#: Each outcome and what it means (the order is the report's).
OUTCOMES: dict[str, str] = {
    "departed-on-time": "first departure after admission on or before the end of stay",
    "departed-late": "first departure after admission after the end of stay "
    "(out-of-country overstay)",
    "no-departure-record": "no departure recorded by the end of the as-of day "
    "(suspected in-country overstay)",
    "not-an-overstay": "an extension, change or adjustment filed before the stay ended",
    "in-status": "the authorized stay ends after the as-of date",
}
#: The official report's denominator: stays that ended and were expected to depart.
EXPECTED = ("departed-on-time", "departed-late", "no-departure-record")
OVERSTAYS = ("departed-late", "no-departure-record")

#: Filings that keep a stay authorized when made before it ends: extension, change of status
#: (8 CFR 214.1(c)(4), part 248) and adjustment (part 245). Asylum (I-589) and TPS (I-821)
#: claims are protection, not an extension of the stay: a documented choice, not counted here.
TIMELY_FORMS: dict[str, str] = {
    "I-539": "extension of stay or change of nonimmigrant status",
    "I-129": "petition for a nonimmigrant worker (change or extension of status)",
    "I-485": "adjustment of status",
}

_IMMIGRANT = ", ".join(f"'{c}'" for c in IMMIGRANT_CLASSES)
#: Admissions outside the method, first match wins: (reason, SQL predicate, why). The
#: predicates are plain SQL that DuckDB, SQLite and PostgreSQL read alike.
EXCLUSIONS: tuple[tuple[str, str, str], ...] = (
    ("immigrant", f"class_of_admission IN ({_IMMIGRANT})",
     "admitted as an immigrant: no authorized stay ends"),
    ("no-end-of-stay", "admitted_until IS NULL",
     "no end of authorized stay (duration of status): ends in no fiscal year"),
    ("not-air-or-sea", "mode IS NULL OR mode NOT IN ('air', 'sea')",
     "admitted at a land border or by an unknown mode: outside the official method"),
    ("not-linked", "person_id IS NULL",
     "not linked to a person by entity resolution: no departure can be matched to it"),
)  # fmt: skip

NOTE = (
    "An overstay figure is a revisable statistical inference as of its date: departure "
    "records arrive late and revise it downward. A flag is a lead, never an action."
)
METHOD = (
    "Nonimmigrant admissions by air or sea whose authorized stay ended in the fiscal year; "
    "the first departure recorded after admission (before any later admission) decides on "
    "time or late; none recorded by the as-of date is a suspected in-country overstay; a "
    "timely extension, change or adjustment is not an overstay. Overstay rate = (late + no "
    "departure record) / expected departures (on time + late + no record)."
)
_LOCK_KEY = 0x6F7673  # "ovs": one assessment at a time on PostgreSQL


def reason_sql() -> str:
    """The SQL ``CASE`` naming an admission's exclusion, NULL when it is in scope."""
    whens = " ".join(f"WHEN ({pred}) THEN '{reason}'" for reason, pred, _ in EXCLUSIONS)
    return f"CASE {whens} END"


def fiscal_year_of(day: date) -> int:
    """The fiscal year (October to September) a day falls in: 2025-10-01 is in FY2026."""
    return day.year + 1 if day.month >= 10 else day.year


def fiscal_bounds(year: int) -> tuple[date, date]:
    """First and last day of a fiscal year."""
    return date(year - 1, 10, 1), date(year, 9, 30)


# -- reading ----------------------------------------------------------------------------------


_DATES = frozenset({"admitted_on", "admitted_until", "filed_on", "as_of"})
_TIMES = frozenset({"occurred_at", "recorded_at", "reviewed_at", "assessed_at", "superseded_at"})


def _raw(column: Any) -> Any:
    """A date or time column as the driver hands it over (text on SQLite), for Arrow to parse
    in bulk: per-value parsing in Python is most of the time of a million-row read."""
    return type_coerce(column, String).label(column.key)


def _assess_queries() -> dict[str, tuple[Select, Any]]:
    """What an assessment reads: columns only (of the tables, not ORM entities, which cost a
    Python object per row); departures a reviewer must still decide on (band ``review``) and
    unlinked ones never arrive."""
    a, p = Admission.__table__.c, Person.__table__.c
    d, b = Departure.__table__.c, BenefitApplication.__table__.c
    o = OverstayAssessment.__table__.c
    return {
        "adm": (select(a.id, a.person_id, a.class_of_admission, a.mode, _raw(a.admitted_on),
                       _raw(a.admitted_until), p.nationality)
                .select_from(Admission.__table__.outerjoin(Person.__table__,
                                                           p.id == a.person_id)), Admission),
        "dep": (select(d.id, d.person_id, d.channel, d.confirms_id, _raw(d.occurred_at),
                       _raw(d.recorded_at), _raw(d.reviewed_at))
                .where(d.person_id.is_not(None), d.match_band != "review"), Departure),
        "ben": (select(b.id, b.person_id, b.form, b.status, _raw(b.filed_on))
                .where(b.person_id.is_not(None), b.form.in_(TIMELY_FORMS)), BenefitApplication),
        "cur": (select(o.id, o.admission_id, o.outcome, o.departure_id, _raw(o.admitted_until),
                       o.class_of_admission, o.nationality)
                .where(o.superseded_at.is_(None)), OverstayAssessment),
    }  # fmt: skip


def _array(name: str, values: Any) -> pa.Array:
    if name in _DATES:  # text (SQLite) or dates (PostgreSQL)
        return pa.array(values).cast(pa.date32())
    if name in _TIMES:  # text in UTC (SQLite) or aware datetimes (PostgreSQL): naive UTC
        return pa.array(values).cast(pa.timestamp("us"))
    if name == "fiscal_year":
        return pa.array(values, pa.int32())
    return pa.array(values, pa.string())


def _arrow(stmt: Select, rows: list[Any]) -> pa.Table:
    """Rows of a column select as an Arrow table, typed by column name (empty ones too)."""
    names = [c.name for c in stmt.selected_columns]
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return pa.table({n: _array(n, v) for n, v in zip(names, columns, strict=True)})


def read(gw: Gateway, as_of: date) -> dict[str, pa.Table]:
    """Everything an assessment needs, in one audited bundle, as Arrow tables."""
    queries = _assess_queries()
    params = {"file": "overstay_assessment", "as_of": as_of.isoformat()}
    got = gw.bundle(queries, params=params)
    return {name: _arrow(queries[name][0], rows) for name, rows in got.items()}


def latest_as_of(gw: Gateway) -> date | None:
    """The as-of date of the newest assessment kept, if any."""
    o = OverstayAssessment
    got = gw.rows(select(func.max(o.as_of)), o, params={"job": "latest overstay assessment"})
    return got[0][0] if got else None


# -- the plan -------------------------------------------------------------------------------

JUDGE_SQL = f"""
WITH scoped AS (
  SELECT *, {reason_sql()} AS excluded FROM adm
), nexts AS (  -- a departure belongs to the stay it ends: none after the next admission
  SELECT person_id, admitted_on,
         lead(admitted_on) OVER (PARTITION BY person_id ORDER BY admitted_on) AS next_on
  FROM (SELECT DISTINCT person_id, admitted_on FROM adm WHERE person_id IS NOT NULL)
), stays AS (
  SELECT s.id, s.person_id, s.class_of_admission, s.admitted_on, s.admitted_until, n.next_on,
         s.nationality
  FROM scoped s JOIN nexts n USING (person_id, admitted_on)
  WHERE s.excluded IS NULL
), learned AS (  -- known once recorded and, if a reviewer matched it, once decided
  SELECT *, greatest(recorded_at, coalesce(reviewed_at, recorded_at)) AS known_at FROM dep
), known AS (  -- by the end of the as-of day; a self-report once a record confirms it
  SELECT id, person_id, channel, occurred_at, known_at FROM learned
  WHERE channel <> 'self_report' AND known_at < $cutoff
  UNION ALL
  SELECT s.id, s.person_id, s.channel, s.occurred_at, min(greatest(s.known_at, c.known_at))
  FROM learned s JOIN learned c ON c.confirms_id = s.id AND c.person_id = s.person_id
   AND c.channel <> 'self_report'
  WHERE s.channel = 'self_report' AND greatest(s.known_at, c.known_at) < $cutoff
  GROUP BY s.id, s.person_id, s.channel, s.occurred_at
), first_departure AS (
  SELECT st.id AS admission_id, k.id AS departure_id, k.channel,
         CAST(k.occurred_at AS DATE) AS departed_on, k.known_at
  FROM stays st JOIN known k ON k.person_id = st.person_id
   AND CAST(k.occurred_at AS DATE) BETWEEN st.admitted_on
       AND least(coalesce(st.next_on, $asof), $asof)
  QUALIFY row_number() OVER (PARTITION BY st.id ORDER BY k.occurred_at, k.id) = 1
), filing AS (
  SELECT st.id AS admission_id, b.id AS filing_id, b.form, b.status, b.filed_on
  FROM stays st JOIN ben b ON b.person_id = st.person_id
   AND b.filed_on BETWEEN st.admitted_on AND least(st.admitted_until, $asof)
  QUALIFY row_number() OVER (PARTITION BY st.id ORDER BY b.filed_on, b.id) = 1
)
SELECT st.*, f.departure_id, f.channel, f.departed_on, f.known_at, g.filing_id, g.form,
  g.status, g.filed_on,
  CASE
    WHEN st.admitted_until > $asof THEN 'in-status'
    WHEN f.departed_on <= st.admitted_until THEN 'departed-on-time'
    WHEN g.filing_id IS NOT NULL THEN 'not-an-overstay'
    WHEN f.departure_id IS NOT NULL THEN 'departed-late'
    ELSE 'no-departure-record'
  END AS outcome
FROM stays st LEFT JOIN first_departure f ON f.admission_id = st.id
LEFT JOIN filing g ON g.admission_id = st.id
"""

CHANGED_SQL = """
SELECT 'ovs-' || left(sha256($run || ':' || j.id), 24) AS id, j.id AS admission_id, j.person_id,
  $asof AS as_of, j.outcome, j.class_of_admission, j.nationality, j.admitted_on,
  j.admitted_until,
  CAST(year(j.admitted_until) + CASE WHEN month(j.admitted_until) >= 10 THEN 1 ELSE 0 END
       AS INTEGER) AS fiscal_year,
  j.departure_id, j.departed_on,
  CASE WHEN j.outcome = 'departed-late'
       THEN CAST(date_diff('day', j.admitted_until, j.departed_on) AS INTEGER) END AS days_over,
  json_object(
    'run', $run,
    'departure', CASE WHEN j.departure_id IS NOT NULL THEN json_object('id', j.departure_id,
      'channel', j.channel, 'on', j.departed_on, 'known_at', j.known_at) END,
    'filing', CASE WHEN j.filing_id IS NOT NULL THEN json_object('id', j.filing_id,
      'form', j.form, 'status', j.status, 'filed_on', j.filed_on) END,
    'next_admission_on', j.next_on, 'revises', c.id)::VARCHAR AS basis,
  c.id AS revises
FROM judged j LEFT JOIN cur c ON c.admission_id = j.id
WHERE c.id IS NULL OR c.outcome <> j.outcome OR c.departure_id IS DISTINCT FROM j.departure_id
   OR c.admitted_until IS DISTINCT FROM j.admitted_until
   OR c.class_of_admission <> j.class_of_admission OR c.nationality IS DISTINCT FROM j.nationality
ORDER BY admission_id
"""


@dataclass(frozen=True)
class Plan:
    """What an assessment would write and supersede, and the figures it would leave."""

    run_id: str
    as_of: date
    rows: pa.Table
    """New assessments (the table's columns but ``assessed_at``), plus ``revises``."""
    withdrawn: list[str]
    """Standing assessments of admissions no longer in scope (superseded, no successor)."""
    admissions: int
    outcomes: dict[str, int]
    exclusions: dict[str, int]

    @property
    def superseded(self) -> list[str]:
        """Every standing assessment this plan ends."""
        revised = [r for r in self.rows.column("revises").to_pylist() if r is not None]
        return revised + self.withdrawn


def plan(snapshot: dict[str, pa.Table], as_of: date, run_id: str) -> Plan:
    """Judge every admission as of ``as_of`` (pure: DuckDB over the snapshot, no store)."""
    cutoff = datetime.combine(as_of + timedelta(days=1), time())
    con = duckdb.connect()
    try:
        for name, table in snapshot.items():
            con.register(name, table)
        con.execute(f"CREATE TEMP TABLE judged AS {JUDGE_SQL}", {"asof": as_of, "cutoff": cutoff})
        params = {"asof": as_of, "run": run_id}
        rows = con.sql(CHANGED_SQL, params=params).to_arrow_table()
        withdrawn = con.execute(
            "SELECT id FROM cur WHERE admission_id NOT IN (SELECT id FROM judged) ORDER BY id"
        ).fetchall()
        outcomes = con.execute("SELECT outcome, count(*) FROM judged GROUP BY 1").fetchall()
        excluded = con.execute(
            f"SELECT {reason_sql()} AS r, count(*) FROM adm GROUP BY r HAVING r IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    counts = dict(outcomes)
    return Plan(run_id, as_of, rows, [w for (w,) in withdrawn], sum(counts.values()),
                {o: counts.get(o, 0) for o in OUTCOMES}, _ordered(dict(excluded)))  # fmt: skip


def _ordered(excluded: dict[str, int]) -> dict[str, int]:
    return {reason: excluded[reason] for reason, _, _ in EXCLUSIONS if reason in excluded}


# -- assessing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssessReport:
    """What one assessment did: rows written and superseded, and the figures now standing."""

    run_id: str
    as_of: date
    admissions: int
    written: int
    superseded: int
    withdrawn: int
    unchanged: int
    outcomes: dict[str, int] = field(default_factory=dict)
    exclusions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """As the API serves it."""
        return asdict(self) | {"as_of": self.as_of.isoformat(), "note": NOTE}


def require_purpose(gw: Gateway, operation: str) -> None:
    """Refuse (audited) unless the gateway works under :data:`PURPOSE`."""
    if gw.ctx.purpose is not PURPOSE:
        raise Refused(
            f"overstay figures are statistics: this needs the purpose {PURPOSE.value!r}, "
            f"not {gw.ctx.purpose.value!r}",
            operation,
            OverstayAssessment.__tablename__,
            ctx=gw.ctx,
        )


def _one_at_a_time(gw: Gateway) -> None:
    """Two assessments at once would each supersede the same rows: on PostgreSQL the second
    waits for the first to commit (SQLite already serialises writers)."""
    if gw.session.get_bind().dialect.name == "postgresql":
        gw.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _check_as_of(gw: Gateway, as_of: date) -> None:
    latest = latest_as_of(gw)
    if as_of > utcnow().date():
        raise ValidationFailed(f"as-of {as_of} is in the future: departures are not known yet")
    if latest is not None and as_of < latest:
        raise ValidationFailed(
            f"assessments move forward: the latest is as of {latest}, so {as_of} cannot be "
            "assessed now (the report shows the figures as they stood on an earlier date)"
        )


def assess(gw: Gateway, as_of: date) -> AssessReport:
    """Assess every admission as of ``as_of``; write only what changed, superseding the rows
    it revises; one audit entry says what was done (counts only)."""
    started = timer.perf_counter()
    require_purpose(gw, "assess")
    for source in SOURCES:
        gw.require_source(source)
    _one_at_a_time(gw)
    _check_as_of(gw, as_of)
    result = plan(read(gw, as_of), as_of, new_id("ovr"))
    superseded = _write(gw, result)
    return AssessReport(
        result.run_id, as_of, result.admissions, result.rows.num_rows, superseded,
        len(result.withdrawn), result.admissions - result.rows.num_rows, result.outcomes,
        result.exclusions, round(timer.perf_counter() - started, 3),
    )  # fmt: skip


def _write(gw: Gateway, result: Plan) -> int:
    """Supersede what the plan revises and add its rows; returns how many were superseded."""
    now = utcnow()
    ended = gw.update_rows(OverstayAssessment, [{"id": i, "superseded_at": now}
                                                for i in result.superseded])  # fmt: skip
    rows = result.rows.drop_columns(["revises"])
    event = OverstaysAssessed(
        object_type=OverstayAssessment.__tablename__, run_id=result.run_id, as_of=result.as_of,
        admissions=result.admissions, written=rows.num_rows, superseded=ended,
        withdrawn=len(result.withdrawn), outcomes=result.outcomes, exclusions=result.exclusions,
    )  # fmt: skip
    if not rows.num_rows:
        emit(gw.session, event, gw.ctx)  # nothing changed: the run is still on the record
        return ended
    columns: dict[str, Any] = {name: rows.column(name) for name in rows.column_names}
    columns["assessed_at"] = [now] * rows.num_rows
    gw.insert_bulk(OverstayAssessment, columns, event)
    return ended


# -- the report -------------------------------------------------------------------------------


def _report_queries(year: int | None, as_of: date | None) -> dict[str, tuple[Select, Any]]:
    o, a = OverstayAssessment.__table__.c, Admission.__table__.c
    rows = select(o.admission_id, _raw(o.as_of), o.outcome, o.nationality, o.class_of_admission,
                  o.fiscal_year, _raw(o.assessed_at), _raw(o.superseded_at))  # fmt: skip
    reason: ColumnElement[str] = literal_column(reason_sql())
    excluded = (
        select(reason.label("reason"), func.count())
        .select_from(Admission.__table__)
        .group_by(reason)
    )
    if year is not None:
        first, last = fiscal_bounds(year)
        rows = rows.where(o.fiscal_year == year)
        excluded = excluded.where(
            or_(a.admitted_until.between(first, last), a.admitted_until.is_(None))
        )
    if as_of is not None:
        rows = rows.where(o.as_of <= as_of)
    return {"rows": (rows, OverstayAssessment), "excluded": (excluded, Admission)}


#: Each kept assessment's span: from its own (as-of, run time) until the next assessment of the
#: same admission (exclusive), so two runs on one day are two points of the history; one
#: withdrawn from the scope stands until the run that superseded it.
SPANS_SQL = """
WITH runs AS (SELECT assessed_at AS at, max(as_of) AS day FROM rows GROUP BY 1)
SELECT admission_id, outcome, coalesce(nationality, 'unknown') AS nationality,
  class_of_admission, fiscal_year, as_of AS valid_from, assessed_at AS from_at,
  coalesce(lead(as_of) OVER w, runs.day, CAST(superseded_at AS DATE)) AS valid_to,
  coalesce(lead(assessed_at) OVER w, superseded_at) AS to_at
FROM rows LEFT JOIN runs ON runs.at = rows.superseded_at AND runs.at > rows.assessed_at
WINDOW w AS (PARTITION BY admission_id ORDER BY as_of, superseded_at NULLS LAST, assessed_at)
"""
_STANDING = "(valid_from <= $day AND (valid_to IS NULL OR valid_to > $day))"


def report(
    gw: Gateway, fiscal_year: int | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """Figures by outcome, nationality and class of admission, as they stand now or as they
    stood on ``as_of``, with their history: the figures on each date an assessment changed
    them (so a fiscal year's in-country figure is seen falling as late records arrive)."""
    require_purpose(gw, "report")
    gw.require_source("arrivals")
    queries = _report_queries(fiscal_year, as_of)
    params = {"file": "overstay_report", "fiscal_year": fiscal_year,
              "as_of": as_of.isoformat() if as_of else None}  # fmt: skip
    got = gw.bundle(queries, params=params)
    figures = _figures_of(_arrow(queries["rows"][0], got["rows"]), as_of)
    excluded = {str(r): int(n) for r, n in got["excluded"] if r is not None}
    in_scope = sum(int(n) for r, n in got["excluded"] if r is None)
    period = fiscal_bounds(fiscal_year) if fiscal_year is not None else None
    return {
        "fiscal_year": fiscal_year,
        "period": {"from": period[0], "to": period[1]} if period else None,
        "requested_as_of": as_of,
        **figures,
        "coverage": {"in_scope_now": in_scope, "assessed": figures["totals"]["assessed"]},
        "exclusions": {
            reason: {"count": excluded.get(reason, 0), "why": why} for reason, _, why in EXCLUSIONS
        },
        "method": METHOD,
        "note": NOTE,
    }


_BREAKDOWNS: dict[str, str | None] = {"totals": None, "by_nationality": "nationality",
                                      "by_class": "class_of_admission",
                                      "by_fiscal_year": "fiscal_year"}  # fmt: skip


def _figures_of(rows: pa.Table, as_of: date | None) -> dict[str, Any]:
    """The figures standing on ``as_of`` (or now), each breakdown, and their history."""
    con = duckdb.connect()
    try:
        con.register("rows", rows)
        con.execute(f"CREATE TEMP TABLE spans AS {SPANS_SQL}")
        latest = con.execute("SELECT max(valid_from) FROM spans WHERE valid_to IS NULL").fetchone()
        out: dict[str, Any] = {"as_of": as_of or (latest[0] if latest else None)}
        for key, column in _BREAKDOWNS.items():
            out[key] = _grouped(con, column, as_of)
        out["history"] = _history(con)
    finally:
        con.close()
    return out


def _grouped(con: duckdb.DuckDBPyConnection, column: str | None, day: date | None) -> Any:
    """Counts per outcome standing on ``day`` (or now), overall or per value of ``column``."""
    key = column or "NULL"
    where, params = (_STANDING, {"day": day}) if day is not None else ("valid_to IS NULL", None)
    sql = f"SELECT {key} AS k, outcome, count(*) FROM spans WHERE {where} GROUP BY ALL"
    got = con.execute(sql, params).fetchall()
    groups: dict[Any, dict[str, int]] = {}
    for k, outcome, n in got:
        groups.setdefault(k, {})[outcome] = n
    if column is None:
        return figures(groups.get(None, {}))
    rows = [{column: k} | figures(c) for k, c in groups.items()]
    return sorted(rows, key=lambda r: (-r["expected_departures"], -r["assessed"], str(r[column])))


def _history(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The figures after each run that changed them: its as-of date and when it ran."""
    got = con.execute(
        "SELECT p.day, p.at, s.outcome, count(*) "
        "FROM (SELECT DISTINCT valid_from AS day, from_at AS at FROM spans) p JOIN spans s "
        "ON (s.valid_from, s.from_at) <= (p.day, p.at) "
        "AND (s.valid_to IS NULL OR (p.day, p.at) < (s.valid_to, s.to_at)) "
        "GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    points: dict[tuple[date, datetime], dict[str, int]] = {}
    for day, ran, outcome, n in got:
        points.setdefault((day, ran), {})[outcome] = n
    return [
        {"as_of": day, "assessed_at": ran.replace(tzinfo=UTC)} | figures(counts)
        for (day, ran), counts in points.items()
    ]


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def figures(counts: dict[str, int]) -> dict[str, Any]:
    """Counts per outcome, expected departures, overstays and the rates (in percent)."""
    out: dict[str, Any] = {o: int(counts.get(o, 0)) for o in OUTCOMES}
    expected, overstayed = sum(out[o] for o in EXPECTED), sum(out[o] for o in OVERSTAYS)
    late, missing = out["departed-late"], out["no-departure-record"]
    return out | {
        "assessed": sum(out[o] for o in OUTCOMES),
        "expected_departures": expected,
        "overstays": overstayed,
        "overstay_rate_pct": _pct(overstayed, expected),
        "out_of_country_rate_pct": _pct(late, expected),
        "in_country_rate_pct": _pct(missing, expected),
    }


# -- one admission ----------------------------------------------------------------------------


def history(gw: Gateway, admission_id: str) -> list[dict[str, Any]]:
    """Every assessment of one admission, oldest first; the last one standing is current."""
    require_purpose(gw, "read")
    o = OverstayAssessment
    rows = gw.search(o, o.admission_id == admission_id, params={"admission_id": admission_id},
                     limit=10_000)  # fmt: skip
    if not rows:
        raise NotFound(f"admission {admission_id!r} has no overstay assessment")
    far = datetime.max.replace(tzinfo=UTC)  # a standing row sorts after the ones it revised
    rows.sort(key=lambda r: (r.as_of, r.superseded_at or far, r.assessed_at))
    return [_entry(r) for r in rows]


def _entry(r: OverstayAssessment) -> dict[str, Any]:
    return {
        "id": r.id, "admission_id": r.admission_id, "as_of": r.as_of, "outcome": r.outcome,
        "meaning": OUTCOMES.get(r.outcome, ""), "fiscal_year": r.fiscal_year,
        "class_of_admission": r.class_of_admission, "nationality": r.nationality,
        "admitted_on": r.admitted_on, "admitted_until": r.admitted_until,
        "departure_id": r.departure_id, "departed_on": r.departed_on, "days_over": r.days_over,
        "basis": r.basis, "assessed_at": r.assessed_at, "superseded_at": r.superseded_at,
        "standing": r.superseded_at is None,
    }  # fmt: skip
