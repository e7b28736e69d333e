"""The public transparency report: aggregate counts for a period, small cells withheld.

What it publishes (each table one pair of dimensions; definitions and limits in
``transparency_tables.yaml`` and ``docs/transparency.md``): enforcement actions by type and
month; cases closed by outcome and month; removals by nationality and type of proceeding;
departures verified by channel and month; overstays by class of admission and outcome;
citizenship reviews by how they were opened and how they ended; match reviews by kind and
outcome; reads of personal data by purpose and role; redress requests by status. Nationality
appears only as the immigration fact it is (the country of nationality on the person's
immigration record); no prohibited attribute exists to be counted.

How: every count is one SQL aggregate (``GROUP BY`` … ``count(*)``). Personal tables are read
only through the gateway, under the ``statistics`` purpose, by a role that may read personal
data (the analyst, or the system account for the demo); each aggregate read is audited with
its parameters. Only counts leave :func:`collect`, and only what :mod:`.suppression` lets
through leaves :func:`build`: a withheld count never reaches a
:class:`TransparencyReport`, so no output format can show it. Generating the report is
itself audited (``transparency.generated``).

An auditor reads no personal data (separation of duties) and so cannot compute the report;
the auditor reads the report *as published*: every generation is kept under
``<data dir>/reports/transparency/<period>.json`` (published values only), which the API
serves to auditors.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, extract, func, literal, select
from sqlalchemy.orm import aliased

from immigrationos.audit.chain import emit
from immigrationos.audit.events import TransparencyReportGenerated
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ConfigurationError, NotFound, ValidationFailed
from immigrationos.departures.events import CHANNELS
from immigrationos.departures.models import Departure, OverstayAssessment
from immigrationos.departures.overstays import OUTCOMES as OVERSTAY_OUTCOMES
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase
from immigrationos.lifecycle.table import load_table
from immigrationos.oversight import suppression
from immigrationos.oversight.models import RedressRequest
from immigrationos.persons.models import Person
from immigrationos.resolution.models import MatchReview

PURPOSE = Purpose.STATISTICS
FORMAT = "immos-transparency/1"
#: What a withheld cell shows, in every format but CSV (where the value is left empty).
MARKER = "[c]"
LEGEND = (
    f"{MARKER} withheld to protect individuals: a count from 1 to {{small}}, or a larger count "
    "withheld so that a small one cannot be worked out from the totals. 0 means none."
)
TOTAL = "Total"
#: Audit actions that read personal data (the data-access table).
READ_ACTIONS = ("record.read", "records.searched")


# --- periods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A reporting period: ``start`` to ``end`` inclusive, in UTC days."""

    label: str
    start: date
    end: date

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026`` (a year), ``2026-Q3`` (a quarter) or ``2026-07`` (a month)."""
        text = text.strip()
        if m := re.fullmatch(r"(\d{4})", text):
            y = int(m[1])
            return cls._checked(text, date(y, 1, 1), date(y, 12, 31))
        if m := re.fullmatch(r"(\d{4})-[Qq]([1-4])", text):
            y, q = int(m[1]), int(m[2])
            return cls._checked(f"{y}-Q{q}", date(y, 3 * q - 2, 1), _month_end(y, 3 * q))
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            y, mo = int(m[1]), int(m[2])
            if not 1 <= mo <= 12:
                raise ValidationFailed(f"period {text!r}: month {mo} does not exist")
            return cls._checked(text, date(y, mo, 1), _month_end(y, mo))
        raise ValidationFailed(
            f"period {text!r} is not a year (2026), a quarter (2026-Q3) or a month (2026-07); "
            "for other spans give --from and --to dates"
        )

    @classmethod
    def between(cls, start: date, end: date) -> Period:
        """Any span of whole days, both ends included."""
        if end < start:
            raise ValidationFailed(f"the period ends ({end}) before it starts ({start})")
        return cls._checked(f"{start.isoformat()}_{end.isoformat()}", start, end)

    @classmethod
    def _checked(cls, label: str, start: date, end: date) -> Period:
        if not 1900 <= start.year <= 2200:
            raise ValidationFailed(f"period {label!r}: year {start.year} is out of range")
        if start > utcnow().date():
            raise ValidationFailed(f"period {label!r} has not started yet")
        return cls(label, start, end)

    @property
    def since(self) -> datetime:
        """The first instant of the period (UTC)."""
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        """The first instant after the period (UTC)."""
        after = self.end + timedelta(days=1)
        return datetime(after.year, after.month, after.day, tzinfo=UTC)

    @property
    def months(self) -> int:
        """How many calendar months the period touches."""
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def bucket(self, year: int, month: int) -> str:
        """The column a (year, month) falls in: months up to a year, then quarters (up to
        three years), then years."""
        if self.months <= 12:
            return f"{year:04d}-{month:02d}"
        if self.months <= 36:
            return f"{year:04d}-Q{(month - 1) // 3 + 1}"
        return f"{year:04d}"

    def buckets(self) -> list[str]:
        """Every column of the period, in order."""
        y, m, out = self.start.year, self.start.month, []
        while (y, m) <= (self.end.year, self.end.month):
            out.append(self.bucket(y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return list(dict.fromkeys(out))


def _month_end(year: int, month: int) -> date:
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return nxt - timedelta(days=1)


# --- what is published --------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """One published table: what it counts, along which two dimensions, and its limits."""

    key: str
    title: str
    rows: str
    columns: str
    definition: str
    limits: str


TABLES_PATH = Path(__file__).with_name("transparency_tables.yaml")


def load_tables(path: Path = TABLES_PATH) -> dict[str, TableSpec]:
    """The published tables, in order, from their declarative file."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return {key: TableSpec(key=key, **spec) for key, spec in raw.items()}
    except TypeError as exc:
        raise ConfigurationError(f"{path.name}: {exc}") from None


TABLES = load_tables()

#: Enforcement steps by the row that counts them (transition names of the lifecycle table).
ENFORCEMENT_ROWS: dict[str, tuple[str, ...]] = {
    "Arrests": ("arrest", "redetain"),
    "Detainers lodged": ("lodge_detainer",),
    "Notices to appear issued": ("issue_nta",),
    "Expedited removal orders": ("issue_expedited_order",),
    "Prior orders reinstated": ("reinstate_prior_order",),
    "Removal orders (immigration judge)": ("order_removal", "order_in_absentia"),
    "Warrants of removal issued": ("issue_warrant_of_removal",),
    "Removals scheduled": ("schedule_removal",),
}
REMOVED = "REMOVED"
TRACKS = {
    "removal-240": "Removal proceedings",
    "expedited-235b1": "Expedited removal",
    "reinstatement": "Reinstatement",
}
CITIZENSHIP_OPENED = {"claim_citizenship": "A claim", "citizenship_indicated": "An indication"}
CITIZENSHIP_OUTCOMES = {
    "confirm_citizenship": "Citizen confirmed",
    "reject_citizenship_claim": "Claim rejected",
    None: "Pending",
}
MATCH_OUTCOMES = ("Same person", "Different persons", "Unsure", "Open")
RECORD_PAIRS, DEPARTURE_EVENTS = "Record pairs (identity)", "Departure events"
REDRESS_COLUMN = "Requests"


# --- the published report ---------------------------------------------------------------


class PublishedTable(BaseModel):
    """One table as published: withheld entries are None (they never hold a value here)."""

    key: str
    title: str
    definition: str
    limits: str
    row_dimension: str
    column_dimension: str
    rows: list[str]
    columns: list[str]
    cells: list[list[int | None]]
    row_totals: list[int | None]
    column_totals: list[int | None]
    total: int | None
    withheld: int

    @property
    def one_column(self) -> bool:
        """A single column: its row totals repeat it, so they are not shown."""
        return len(self.columns) == 1


class TransparencyReport(BaseModel):
    """The transparency report of one period, as published."""

    format: str = FORMAT
    period: str
    start: date
    end: date
    generated_at: datetime
    threshold: int
    marker: str = MARKER
    legend: str
    tables: list[PublishedTable]
    method: list[str]

    def table(self, key: str) -> PublishedTable:
        """One table by key."""
        for t in self.tables:
            if t.key == key:
                return t
        raise KeyError(key)


METHOD = (
    "Every figure is a count of records in this system for the period, computed when the "
    "report was generated; figures for a past period can change as late records arrive.",
    "Counts from 1 to {small} are withheld (primary suppression). Zeros are published as 0: "
    "they describe nobody, so a withheld cell is known to hold at least 1.",
    "Further counts, and totals where needed, are withheld so that no withheld count can be "
    "worked out from the published cells and totals (complementary suppression). Every "
    "table is checked exactly: for each withheld small count, the range of values consistent "
    "with everything published spans more than one value and reaches at least {threshold}, "
    "so nobody can show a withheld count is small, let alone which it is.",
    "Each table is one pair of dimensions of one population. The only count two tables "
    "share (removals: the cases-closed and removals tables) is withheld in both or in "
    "neither, and the check bounds it by what the other table allows.",
    "Reports of overlapping periods (a year and its quarters) are protected one by one, not "
    "together: comparing them can narrow a withheld count.",
)


# --- collecting the counts ----------------------------------------------------------------


def _year_month(gw: Gateway, column: Any) -> tuple[Any, Any]:
    """Year and month of a timestamp in UTC, on either backend."""
    if gw.session.get_bind().dialect.name == "postgresql":
        column = func.timezone("UTC", column)
    return extract("year", column), extract("month", column)


def _within(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.since, column < period.until)


def _params(key: str, period: Period) -> dict[str, Any]:
    return {"report": "transparency", "table": key, "period": period.label}


def _by_month(
    gw: Gateway, model: Any, key: Any, at: Any, where: Sequence[Any], table: str, period: Period
) -> Counter[tuple[Any, str]]:
    """Counts by (key, column of the period) of ``model`` rows whose ``at`` is in the period."""
    year, month = _year_month(gw, at)
    stmt = (
        select(key, year, month, func.count())
        .where(_within(at, period), *where)
        .group_by(key, year, month)
    )
    out: Counter[tuple[Any, str]] = Counter()
    for k, y, m, n in gw.rows(stmt, model, params=_params(table, period)):
        out[(k, period.bucket(int(y), int(m)))] += int(n)
    return out


def _grid(
    counts: Counter[tuple[Any, Any]],
    rows: Sequence[Any],
    columns: Sequence[Any],
    row_label: Callable[[Any], str] = str,
    column_label: Callable[[Any], str] = str,
) -> suppression.Table:
    """A table from counts keyed (row, column); declared rows first, then any others seen."""
    row_keys = list(dict.fromkeys([*rows, *sorted({r for r, _ in counts}, key=str)]))
    col_keys = list(dict.fromkeys([*columns, *sorted({c for _, c in counts}, key=str)]))
    return suppression.Table.of(
        [row_label(r) for r in row_keys],
        [column_label(c) for c in col_keys],
        [[counts.get((r, c), 0) for c in col_keys] for r in row_keys],
    )


def enforcement_table(gw: Gateway, period: Period) -> suppression.Table:
    """Enforcement steps by type and month."""
    row_of = {action: row for row, actions in ENFORCEMENT_ROWS.items() for action in actions}
    counts = _by_month(
        gw, CaseEvent, CaseEvent.action, CaseEvent.at,
        [CaseEvent.action.in_(row_of)], "enforcement", period,
    )  # fmt: skip
    by_row: Counter[tuple[Any, str]] = Counter()
    for (action, column), n in counts.items():
        by_row[(row_of[action], column)] += n
    return _grid(by_row, list(ENFORCEMENT_ROWS), period.buckets())


@cache
def _state_labels() -> dict[str, str]:
    table = load_table()
    return {name: spec.label for name, spec in table.states.items() if spec.terminal}


def _closed_label(state: str, reason: str | None) -> str:
    label = _state_labels().get(state, state)
    if state == "CLOSED":
        return f"{label}: {(reason or 'no reason recorded').replace('-', ' ')}"
    return label


def closed_table(gw: Gateway, period: Period) -> suppression.Table:
    """Closing steps by the state reached (and a supervisor's reason) and month."""
    year, month = _year_month(gw, CaseEvent.at)
    reason = CaseEvent.params["reason"].as_string()
    stmt = (
        select(CaseEvent.to_state, reason, year, month, func.count())
        .where(_within(CaseEvent.at, period), CaseEvent.to_state.in_(_state_labels()))
        .group_by(CaseEvent.to_state, reason, year, month)
    )
    counts: Counter[tuple[Any, Any]] = Counter()
    for state, why, y, m, n in gw.rows(stmt, CaseEvent, params=_params("closed", period)):
        counts[(_closed_label(state, why), period.bucket(int(y), int(m)))] += int(n)
    rows = [label for state, label in _state_labels().items() if state != "CLOSED"]
    return _grid(counts, [_state_labels()[REMOVED], *rows], period.buckets())


def removals_table(gw: Gateway, period: Period) -> suppression.Table:
    """Removals verified by nationality and track."""
    stmt = (
        select(Person.nationality, EnforcementCase.track, func.count())
        .select_from(CaseEvent)
        .join(EnforcementCase, EnforcementCase.id == CaseEvent.case_id)
        .join(Person, Person.id == EnforcementCase.person_id)
        .where(_within(CaseEvent.at, period), CaseEvent.to_state == REMOVED)
        .group_by(Person.nationality, EnforcementCase.track)
    )
    counts: Counter[tuple[Any, Any]] = Counter()
    for nationality, track, n in gw.rows(stmt, CaseEvent, params=_params("removals", period)):
        counts[(nationality or "unknown", track)] += int(n)
    return _grid(counts, [], list(TRACKS), column_label=lambda t: TRACKS.get(t, t))


def departures_table(gw: Gateway, period: Period) -> suppression.Table:
    """Verified departures by channel and month."""
    counts = _by_month(
        gw, Departure, Departure.channel, Departure.occurred_at,
        [Departure.match_band == "verified"], "departures", period,
    )  # fmt: skip
    return _grid(counts, list(CHANNELS), period.buckets(), lambda c: str(c).replace("_", " "))


def overstays_table(gw: Gateway, period: Period) -> suppression.Table:
    """Standing overstay outcomes of stays ending in the period, by class of admission."""
    o = OverstayAssessment
    stmt = (
        select(o.class_of_admission, o.outcome, func.count())
        .where(
            o.superseded_at.is_(None),
            o.admitted_until >= period.start,
            o.admitted_until <= period.end,
        )
        .group_by(o.class_of_admission, o.outcome)
    )
    rows = gw.rows(stmt, o, params=_params("overstays", period))
    counts = Counter({(c, outcome): int(n) for c, outcome, n in rows})
    return _grid(counts, [], list(OVERSTAY_OUTCOMES))


def citizenship_table(gw: Gateway, period: Period) -> suppression.Table:
    """Citizenship reviews opened in the period, by how opened and the first decision after."""
    later = aliased(CaseEvent)
    decided = (
        select(later.action)
        .where(
            later.case_id == CaseEvent.case_id,
            later.seq > CaseEvent.seq,
            later.action.in_([k for k in CITIZENSHIP_OUTCOMES if k]),
        )
        .order_by(later.seq)
        .limit(1)
        .scalar_subquery()
    )
    opened = (
        select(CaseEvent.action.label("opened"), decided.label("outcome"))
        .where(_within(CaseEvent.at, period), CaseEvent.action.in_(CITIZENSHIP_OPENED))
        .subquery()
    )
    stmt = select(opened.c.opened, opened.c.outcome, func.count()).group_by(
        opened.c.opened, opened.c.outcome
    )
    rows = gw.rows(stmt, CaseEvent, params=_params("citizenship", period))
    counts = Counter({(CITIZENSHIP_OPENED[a], CITIZENSHIP_OUTCOMES[b]): int(n) for a, b, n in rows})
    return _grid(counts, list(CITIZENSHIP_OPENED.values()), list(CITIZENSHIP_OUTCOMES.values()))


_PAIR_OUTCOMES = {"match": "Same person", "non-match": "Different persons", "unsure": "Unsure"}


def match_reviews_table(gw: Gateway, period: Period) -> suppression.Table:
    """Record pairs and departures sent to review in the period, by outcome."""
    counts: Counter[tuple[Any, Any]] = Counter()
    pairs = (
        select(MatchReview.status, MatchReview.decision, func.count())
        .where(_within(MatchReview.created_at, period))
        .group_by(MatchReview.status, MatchReview.decision)
    )
    for status, decision, n in gw.rows(pairs, MatchReview, params=_params("match", period)):
        outcome = "Open" if status == "open" else _PAIR_OUTCOMES.get(decision, "Open")
        counts[(RECORD_PAIRS, outcome)] += int(n)
    departures = (
        select(Departure.review_status, Departure.match_band, func.count())
        .where(_within(Departure.recorded_at, period), Departure.review_status.is_not(None))
        .group_by(Departure.review_status, Departure.match_band)
    )
    for status, band, n in gw.rows(departures, Departure, params=_params("match", period)):
        if status == "open":
            outcome = "Open"
        else:
            outcome = "Same person" if band == "verified" else "Different persons"
        counts[(DEPARTURE_EVENTS, outcome)] += int(n)
    return _grid(counts, [RECORD_PAIRS, DEPARTURE_EVENTS], list(MATCH_OUTCOMES))


def access_table(gw: Gateway, period: Period) -> suppression.Table:
    """Audited reads of personal data by purpose and role (the audit log: no personal data)."""
    stmt = (
        select(AuditEntry.purpose, AuditEntry.actor_role, func.count())
        .where(
            _within(AuditEntry.at, period),
            AuditEntry.action.in_(READ_ACTIONS),
            AuditEntry.outcome == "ok",
        )
        .group_by(AuditEntry.purpose, AuditEntry.actor_role)
    )
    counts = Counter(
        {(p or "none", r or "anonymous"): int(n) for p, r, n in gw.session.execute(stmt)}
    )
    return _grid(counts, [], [])


def redress_table(gw: Gateway, period: Period) -> suppression.Table:
    """Redress requests filed in the period, by status (one column)."""
    stmt = (
        select(RedressRequest.status, literal(REDRESS_COLUMN), func.count())
        .where(_within(RedressRequest.filed_at, period))
        .group_by(RedressRequest.status)
    )
    rows = gw.rows(stmt, RedressRequest, params=_params("redress", period))
    return _grid(Counter({(s, c): int(n) for s, c, n in rows}), [], [REDRESS_COLUMN])


COLLECTORS: dict[str, Callable[[Gateway, Period], suppression.Table]] = {
    "enforcement": enforcement_table,
    "closed": closed_table,
    "removals": removals_table,
    "departures": departures_table,
    "overstays": overstays_table,
    "citizenship": citizenship_table,
    "match_reviews": match_reviews_table,
    "access": access_table,
    "redress": redress_table,
}


if list(COLLECTORS) != list(TABLES):  # the declarative file and the code must agree
    raise ConfigurationError(
        f"{TABLES_PATH.name} declares {list(TABLES)}, transparency.py collects {list(COLLECTORS)}"
    )


def require_purpose(gw: Gateway) -> None:
    """Refuse (audited) unless the gateway works under ``statistics``."""
    if gw.ctx.purpose is not PURPOSE:
        raise Refused(
            f"the transparency report is statistics: it needs the purpose {PURPOSE.value!r}, "
            f"not {gw.ctx.purpose.value!r}",
            "transparency report",
            ctx=gw.ctx,
        )


def collect(gw: Gateway, period: Period) -> dict[str, suppression.Table]:
    """Every table's true counts (never published as such: see :func:`build`)."""
    require_purpose(gw)
    return {key: COLLECTORS[key](gw, period) for key in TABLES}


def links(tables: dict[str, suppression.Table]) -> list[suppression.Link]:
    """The one count two tables share: removals (closed's 'Removed' total, removals' grand
    total), when both tables are there."""
    if "closed" not in tables or "removals" not in tables:
        return []
    closed, removals = tables["closed"], tables["removals"]
    row = closed.rows.index(_state_labels()[REMOVED])
    r, c = removals.shape
    return [suppression.Link("closed", (row, closed.shape[1]), "removals", (r, c))]


# --- building and publishing --------------------------------------------------------------


def _published(spec: TableSpec, s: suppression.Suppressed) -> PublishedTable:
    shown = s.published()
    r, c = s.table.shape
    return PublishedTable(
        key=spec.key,
        title=spec.title,
        definition=spec.definition,
        limits=spec.limits,
        row_dimension=spec.rows,
        column_dimension=spec.columns,
        rows=list(s.table.rows),
        columns=list(s.table.columns),
        cells=[list(row[:c]) for row in shown[:r]],
        row_totals=[row[c] for row in shown[:r]],
        column_totals=list(shown[r][:c]),
        total=shown[r][c],
        withheld=len(s.withheld),
    )


def protect(
    tables: dict[str, suppression.Table], threshold: int = suppression.DEFAULT_THRESHOLD
) -> dict[str, suppression.Suppressed]:
    """Primary and complementary suppression of every table, with the shared count linked."""
    return suppression.protect_all(tables, links(tables), threshold)


def build(
    gw: Gateway, period: Period, threshold: int = suppression.DEFAULT_THRESHOLD
) -> TransparencyReport:
    """Collect, protect and keep only what may be published."""
    return assemble(period, collect(gw, period), threshold)


def assemble(
    period: Period,
    tables: dict[str, suppression.Table],
    threshold: int = suppression.DEFAULT_THRESHOLD,
) -> TransparencyReport:
    """The published report from true counts (pure): protected, withheld entries dropped."""
    protected = protect(tables, threshold)
    small = threshold - 1
    return TransparencyReport(
        period=period.label,
        start=period.start,
        end=period.end,
        generated_at=utcnow(),
        threshold=threshold,
        legend=LEGEND.format(small=small),
        tables=[_published(TABLES[key], s) for key, s in protected.items()],
        method=[m.format(small=small, threshold=threshold) for m in METHOD],
    )


def generate(
    gw: Gateway,
    period: Period,
    formats: Iterable[str] = ("json",),
    threshold: int = suppression.DEFAULT_THRESHOLD,
) -> TransparencyReport:
    """Build the report and record that it was generated (with what it withheld, never the
    withheld counts)."""
    report = build(gw, period, threshold)
    emit(
        gw.session,
        TransparencyReportGenerated(
            period=report.period,
            threshold=threshold,
            tables=[t.key for t in report.tables],
            withheld={t.key: t.withheld for t in report.tables},
            formats=sorted(set(formats)),
        ),
        gw.ctx,
    )
    return report


def publication_dir(data_dir: Path) -> Path:
    """Where generated reports are kept for readers who may not compute them (auditors)."""
    return data_dir / "reports" / "transparency"


def publish(report: TransparencyReport, data_dir: Path) -> Path:
    """Keep the report as published (JSON of published values only)."""
    directory = publication_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.period}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(report.model_dump_json(indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def published(data_dir: Path, period: Period) -> TransparencyReport:
    """The report last generated for ``period``."""
    path = publication_dir(data_dir) / f"{period.label}.json"
    if not path.is_file():
        raise NotFound(
            f"no transparency report has been published for {period.label}: an analyst "
            f"generates it (immos report transparency --period {period.label})"
        )
    return TransparencyReport.model_validate_json(path.read_text(encoding="utf-8"))
