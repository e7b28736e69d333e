"""Simulated staff usage with planted misuse, its ground truth, and the detector's evaluation.

:func:`simulate` writes N days of ordinary work by synthetic staff into a loaded demo world,
through the real gateway and views under :func:`~immigrationos.core.clock.frozen_at`, so the
audit entries are genuine (hash-chained, time-stamped across days and hours): officers and
supervisors read the persons of their own cases, office and worklist during working hours and
search their office; counsel reads persons with cases; analysts read across the index; everyone
sometimes stays late, looks up a stray person or hits a refusal. Into that it plants four
misuses, each a different synthetic officer, and returns which user and which days each one is
(the ground truth):

- ``outside_caseload``: browsing persons of no case of theirs and no case or lead of their
  office, on three days, beside normal work;
- ``after_hours``: doing a day's reading at night, and again on a Saturday;
- ``purpose_refusals``: trying sources the purpose does not permit, again and again, on two days;
- ``unusual_volume``: reading five times their usual number of (in-scope) persons on one day.

Each plant is shaped to trip its own rule only (the night reader reads a normal amount), so
:func:`evaluate` can score every rule separately: planted misuse detected (recall), clean users
flagged (false positive rate over the users not planted with that rule) and alerts that match a
plant (precision).

The simulated days are whole local days that have ended everywhere (the last one is
yesterday), written after the world was loaded, so their entries sit later in the chain than
earlier ones with earlier times; :class:`~immigrationos.audit.events.ActivitySimulated` records
the range of entries written. ``frozen_at`` freezes the process's clock: run this from the
command line or the demo loader, never inside a serving process.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import User
from immigrationos.accounts.roles import Role
from immigrationos.accounts.service import actor_of, create_user, ensure_demo_accounts
from immigrationos.audit.chain import emit
from immigrationos.audit.events import ActivitySimulated
from immigrationos.audit.models import AuditHead
from immigrationos.core.clock import frozen_at, utcnow
from immigrationos.core.errors import ConfigurationError, ValidationFailed
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway, Refused, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.oversight import anomalies, anomaly_rules
from immigrationos.oversight.models import AccessAlert
from immigrationos.persons import views
from immigrationos.persons.models import Person
from immigrationos.priority.models import PriorityScore
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

#: Sources whose agreements do not permit the purposes staff work under (refusals to plant).
REFUSED_SOURCES = ("tax_addresses",)
PLANTED_RULES = anomaly_rules.RULE_NAMES


# --- ground truth -------------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    """One planted misuse: who, which rule should catch it, on which local days."""

    username: str
    rule: str
    days: tuple[str, ...]
    description: str


@dataclass
class GroundTruth:
    """What was simulated: the users, the days, the plants, and the audit entries written."""

    seed: int
    first_day: str
    last_day: str
    window_start: str
    window_end: str
    users: list[str]
    planted: list[Planted]
    first_seq: int = 0
    last_seq: int = 0

    @property
    def window(self) -> tuple[datetime, datetime]:
        return datetime.fromisoformat(self.window_start), datetime.fromisoformat(self.window_end)

    def planted_for(self, rule: str) -> set[str]:
        return {p.username for p in self.planted if p.rule == rule}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> GroundTruth:
        raw = json.loads(text)
        raw["planted"] = [Planted(**{**p, "days": tuple(p["days"])}) for p in raw["planted"]]
        return cls(**raw)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        if not path.exists():
            raise ValidationFailed(f"no ground truth at {path}: run `immos anomalies simulate`")
        return cls.from_json(path.read_text(encoding="utf-8"))


def truth_path(runtime: Runtime) -> Path:
    """Where the simulation keeps its ground truth (beside the demo database)."""
    return runtime.settings.data_dir / "activity" / "truth.json"


# --- the roster and what each user may be working on ------------------------------------------


@dataclass
class Staff:
    """A simulated user: the account, their habits, and the persons of their work."""

    user: User
    purpose: Purpose
    rate: float
    own: list[str] = field(default_factory=list)
    scope: list[str] = field(default_factory=list)
    cases: dict[str, str] = field(default_factory=dict)
    zone: str = "UTC"
    synthetic: bool = False

    @property
    def username(self) -> str:
        return self.user.username


@dataclass
class World:
    """The persons the simulation reads, by office and by assignee (read once, audited)."""

    persons: list[str]
    offices: list[str]
    office_scope: dict[str, set[str]]
    assigned: dict[str, list[str]]
    case_of: dict[str, str]
    with_cases: list[str]


def _read_world(runtime: Runtime) -> World:
    ctx = system_context(Purpose.CASE_PROCESSING, "synthetic staff activity (demo): caseloads")
    with unit_of_work(runtime.sessions, ctx) as gw:
        persons = [
            r[0]
            for r in gw.rows(
                select(Person.id).where(Person.status == "active", Person.merged_into_id.is_(None)),
                Person,
                params={"simulation": "persons"},
            )
        ]
        cases = gw.rows(
            select(
                EnforcementCase.id,
                EnforcementCase.person_id,
                EnforcementCase.office,
                EnforcementCase.assigned_to,
            ),
            EnforcementCase,
            params={"simulation": "caseloads"},
        )
        leads = gw.rows(
            select(PriorityScore.person_id, PriorityScore.office).where(
                PriorityScore.lead.is_(True), PriorityScore.office.is_not(None)
            ),
            PriorityScore,
            params={"simulation": "worklists"},
        )
    scope: dict[str, set[str]] = defaultdict(set)
    assigned: dict[str, list[str]] = defaultdict(list)
    per_office: dict[str, int] = defaultdict(int)
    case_of: dict[str, str] = {}
    for case_id, person_id, office, assignee in cases:
        if office:
            scope[office].add(person_id)
            per_office[office] += 1
        if assignee:
            assigned[assignee].append(person_id)
        case_of.setdefault(person_id, case_id)
    for person_id, office in leads:
        scope[office].add(person_id)
    offices = sorted(per_office, key=lambda o: (-per_office[o], o))[:3]
    if not offices:
        raise ValidationFailed("the world has no cases with an office: load the demo first")
    return World(persons, sorted(offices), scope, assigned, case_of, sorted(case_of))


def _slug(office: str) -> str:
    return "".join(ch for ch in office.lower() if ch.isalnum())


def _account(session: Session, username: str, role: Role, office: str | None, label: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        ctx = system_context(Purpose.SYSTEM_ADMINISTRATION, "synthetic staff for the demo")
        user = create_user(
            session, username, role, secrets.token_urlsafe(18), label, office, ctx=ctx
        )
    return user


def _roster(session: Session, world: World, extra_officers: int) -> list[tuple[User, str]]:
    """The demo accounts plus synthetic staff (synthetic names only): (user, kind). Extra
    officers are named ``officer.<office>.<n>``; only they are chosen for planted misuse."""
    ensure_demo_accounts(session)
    users: list[tuple[User, str]] = []
    for office in world.offices:
        slug = _slug(office)
        for n in range(1, extra_officers + 2):
            name = f"officer.{slug}" if n == 1 else f"officer.{slug}.{n}"
            users.append(
                (
                    _account(
                        session, name, Role.OFFICER, office, f"Synthetic officer {n}, {office}"
                    ),
                    "officer",
                )
            )
        users.append(
            (
                _account(
                    session,
                    f"supervisor.{slug}",
                    Role.SUPERVISOR,
                    office,
                    f"Synthetic supervisor, {office}",
                ),
                "supervisor",
            )
        )
    for name in ("analyst", "analyst.2"):
        users.append((_account(session, name, Role.ANALYST, None, "Synthetic analyst"), "analyst"))
    users.append((_account(session, "counsel", Role.COUNSEL, None, "Synthetic counsel"), "counsel"))
    return users


RATES = {"officer": (12, 28), "supervisor": (6, 12), "analyst": (10, 20), "counsel": (3, 8)}
PURPOSES = {
    "officer": Purpose.CASE_PROCESSING,
    "supervisor": Purpose.CASE_PROCESSING,
    "analyst": Purpose.IDENTITY_RESOLUTION,
    "counsel": Purpose.CASE_PROCESSING,
}


def _staff(
    users: list[tuple[User, str]],
    world: World,
    rules: anomaly_rules.Rules,
    rng: np.random.Generator,
) -> list[Staff]:
    out = []
    for user, kind in users:
        low, high = RATES[kind]
        member = Staff(user, PURPOSES[kind], float(rng.uniform(low, high)))
        member.zone = rules.working_hours.zone(user.office)
        member.own = sorted(set(world.assigned.get(user.id, [])))
        if kind in ("officer", "supervisor"):
            member.scope = sorted(world.office_scope.get(user.office or "", set()))
        elif kind == "counsel":
            member.scope = world.with_cases
        else:
            member.scope = world.persons
        member.cases = {p: world.case_of[p] for p in member.own if p in world.case_of}
        member.synthetic = kind == "officer" and user.username.count(".") == 2
        out.append(member)
    return out


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One thing a user does at one moment: open a person's record (one audited read, as the
    person page's), read a case, search their office, or try a source the purpose does not
    permit. The whole person page is not rendered: it reads a dozen tables for the same one
    ``record.read`` of the person, and would make the simulation ten times slower."""

    at: datetime
    username: str
    kind: str
    target: str


class _Planner:
    """Turns habits into timed actions (pure: random numbers from the seed, no database)."""

    def __init__(self, rng: np.random.Generator, world: World, rules: anomaly_rules.Rules) -> None:
        self.rng, self.world, self.rules = rng, world, rules
        self.actions: list[Action] = []

    def moment(self, member: Staff, day: date, start: float, end: float) -> datetime:
        """A random local time between two hours of ``day`` (fractions are minutes), as UTC."""
        hours = float(self.rng.uniform(start, end))
        local = datetime.combine(day, time(0), ZoneInfo(member.zone)) + timedelta(hours=hours)
        return local.astimezone(UTC).replace(microsecond=int(self.rng.integers(0, 999_999)))

    def pick(self, pool: list[str]) -> str:
        return pool[int(self.rng.integers(0, len(pool)))]

    def reads(
        self,
        member: Staff,
        day: date,
        n: int,
        span: tuple[float, float],
        pool: list[str] | None = None,
    ) -> None:
        """``n`` person reads between two local hours, from ``pool`` or the user's work."""
        for _ in range(n):
            if pool is not None:
                person = self.pick(pool)
            elif member.own and self.rng.random() < 0.5:
                person = self.pick(member.own)
            else:
                person = self.pick(member.scope or member.own or self.world.persons)
            at = self.moment(member, day, *span)
            self.actions.append(Action(at, member.username, "person", person))
            if person in member.cases and self.rng.random() < 0.3:
                case_at = at + timedelta(seconds=int(self.rng.integers(5, 90)))
                self.actions.append(Action(case_at, member.username, "case", member.cases[person]))

    def refusals(self, member: Staff, day: date, n: int) -> None:
        for _ in range(n):
            at = self.moment(member, day, 8.5, 17.0)
            self.actions.append(
                Action(at, member.username, "refused", self.pick(list(REFUSED_SOURCES)))
            )

    def ordinary_day(self, member: Staff, day: date, outside: list[str]) -> None:
        """A working day (or a day off) of a clean user, with the small irregularities of
        real work: a late evening, a stray lookup, a mistaken source."""
        rng = self.rng
        if day.weekday() >= 5:
            if rng.random() < 0.05:  # a quick look on a day off
                self.reads(member, day, int(rng.integers(1, 3)), (10.0, 16.0))
            return
        self.reads(member, day, int(rng.poisson(member.rate)), (8.0, 17.5))
        if member.user.office and rng.random() < 0.7:
            at = self.moment(member, day, 8.0, 10.0)
            self.actions.append(Action(at, member.username, "search", member.user.office))
        if rng.random() < 0.15:  # overtime: a few reads after hours
            self.reads(member, day, int(rng.integers(1, 4)), (19.0, 20.5))
        if member.user.office and outside and rng.random() < 0.2:
            self.reads(member, day, 1, (9.0, 17.0), outside)
        if rng.random() < 0.04:
            self.refusals(member, day, 1)


def _days(count: int, zones: set[str], now: datetime) -> list[date]:
    """``count`` whole days ending yesterday in the zone that is furthest behind."""
    end = min(now.astimezone(ZoneInfo(z)).date() for z in zones)
    return [end - timedelta(days=count - i) for i in range(count)]


def _plant(
    planner: _Planner, staff: list[Staff], days: list[date], world: World
) -> tuple[list[Planted], dict[str, set[date]]]:
    """Choose four synthetic officers and plant one misuse each. Returns the ground truth and
    the days whose ordinary work a plant replaces (the night reader's, the browser's)."""
    rng = planner.rng
    candidates = [m for m in staff if m.synthetic and m.user.role == Role.OFFICER.value]
    if len(candidates) < len(PLANTED_RULES):
        raise ValidationFailed("planting needs at least four synthetic officers (--officers)")
    weekdays = [d for d in days if d.weekday() < 5]
    weekends = [d for d in days if d.weekday() == 5]
    if len(weekdays) <= planner.rules.rules.unusual_volume.min_history_days:
        raise ValidationFailed("planting needs at least 8 days of activity (--days 8 or more)")
    chosen = [
        candidates[int(i)] for i in rng.choice(len(candidates), len(PLANTED_RULES), replace=False)
    ]
    browser, night, refuser, spiker = chosen
    for member in chosen:
        member.rate = float(rng.uniform(16, 24))
    late = weekdays[len(weekdays) // 2 :]
    planted: list[Planted] = []

    browse_days = sorted(rng.choice(len(late), min(3, len(late)), replace=False))
    known = set(browser.scope) | set(browser.own)
    outside = [p for p in world.persons if p not in known]
    for i in browse_days:  # browsing instead of part of the day's work, not on top of it
        browsed = int(rng.integers(6, 13))
        work = max(0, int(rng.poisson(browser.rate)) - browsed)
        planner.reads(browser, late[i], work, (8.0, 17.5))
        planner.reads(browser, late[i], browsed, (9.0, 17.0), outside)
    planted.append(
        Planted(
            browser.username,
            "outside_caseload",
            tuple(late[i].isoformat() for i in browse_days),
            "browses persons outside caseload and office",
        )
    )

    night_days = [late[int(rng.integers(0, len(late)))]] + (weekends[-1:] or [])
    for day in night_days:
        n = max(14, int(rng.poisson(night.rate)))
        span = (21.0, 23.8) if day.weekday() < 5 else (10.0, 16.0)
        planner.reads(night, day, n, span)
    planted.append(
        Planted(
            night.username,
            "after_hours",
            tuple(d.isoformat() for d in night_days),
            "reads a day's worth of persons at night and on a weekend",
        )
    )

    refusal_days = sorted(rng.choice(len(late), min(2, len(late)), replace=False))
    for i in refusal_days:
        planner.refusals(refuser, late[i], int(rng.integers(6, 10)))
    planted.append(
        Planted(
            refuser.username,
            "purpose_refusals",
            tuple(late[i].isoformat() for i in refusal_days),
            "tries sources the purpose does not permit, again and again",
        )
    )

    history = planner.rules.rules.unusual_volume.min_history_days
    judged = weekdays[history:][-3:]  # the rule judges only users with enough history
    spike_day = judged[int(rng.integers(0, len(judged)))]
    planner.reads(spiker, spike_day, int(5 * spiker.rate), (8.0, 17.5))
    planted.append(
        Planted(
            spiker.username,
            "unusual_volume",
            (spike_day.isoformat(),),
            "reads five times their usual number of persons in a day",
        )
    )
    return planted, {
        night.username: set(night_days),
        browser.username: {late[i] for i in browse_days},
    }


# --- running the actions through the gateway ----------------------------------------------


def _perform(gw: Gateway, action: Action) -> None:
    with frozen_at(action.at):
        if action.kind == "person":
            gw.get(Person, action.target)
        elif action.kind == "case":
            gw.get(EnforcementCase, action.target)
        elif action.kind == "search":
            views.search(gw, views.SearchQuery(office=action.target))


def _refuse(runtime: Runtime, ctx: AccessContext, action: Action) -> None:
    """A read of a source the purpose may not use: refused by the gateway and audited."""
    with frozen_at(action.at):
        try:
            with unit_of_work(runtime.sessions, ctx) as gw:
                gw.require_source(action.target, "search")
        except Refused:
            pass


def _batches(actions: list[Action]) -> Iterator[list[Action]]:
    """Actions grouped by user and hour (one transaction each), in time order."""
    groups: dict[tuple[str, datetime], list[Action]] = defaultdict(list)
    for a in actions:
        groups[(a.username, a.at.replace(minute=0, second=0, microsecond=0))].append(a)
    for key in sorted(groups, key=lambda k: (k[1], min(a.at for a in groups[k]))):
        yield sorted(groups[key], key=lambda a: a.at)


def _run(
    runtime: Runtime,
    staff: list[Staff],
    actions: list[Action],
    progress: Callable[[int], None] | None,
) -> None:
    by_name = {m.username: m for m in staff}
    for batch in _batches(actions):
        member = by_name[batch[0].username]
        ctx = AccessContext(actor_of(member.user), member.purpose, "daily work")
        reads = [a for a in batch if a.kind != "refused"]
        if reads:
            with unit_of_work(runtime.sessions, ctx) as gw:
                for action in reads:
                    _perform(gw, action)
        for action in batch:
            if action.kind == "refused":
                _refuse(runtime, ctx, action)
        if progress:
            progress(len(batch))


def _head(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as session:
        return int(session.scalar(select(func.coalesce(func.max(AuditHead.seq), 0))) or 0)


@dataclass(frozen=True)
class SimulationConfig:
    """How much activity to write, and whether to plant misuse."""

    days: int = 14
    seed: int = 7
    officers: int = 3
    plant: bool = True


def simulate(
    runtime: Runtime,
    config: SimulationConfig = SimulationConfig(),
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> GroundTruth:
    """Write ``config.days`` days of synthetic staff activity (with planted misuse) into the
    loaded world and return the ground truth. Demo mode only unless ``force``: it adds
    accounts and audit entries that describe no real work. Deterministic by seed."""
    if not (runtime.settings.is_demo or force):
        raise ConfigurationError("synthetic activity is written only in demo mode (or forced)")
    if config.days < 1 or config.officers < 0:
        raise ValidationFailed("days must be at least 1 and officers not negative")
    rules = anomaly_rules.load_rules()
    rng = np.random.default_rng(config.seed)
    world = _read_world(runtime)
    with transaction(runtime.sessions) as session:
        users = _roster(session, world, config.officers)
    staff = _staff(users, world, rules, rng)
    zones = {m.zone for m in staff} | {rules.working_hours.timezone}
    days = _days(config.days, zones, utcnow())
    planner = _Planner(rng, world, rules)
    planted: list[Planted] = []
    exempt: dict[str, set[date]] = {}
    if config.plant:
        planted, exempt = _plant(planner, staff, days, world)
    for member in staff:
        known = set(member.scope) | set(member.own)
        outside = list(islice((p for p in world.persons if p not in known), 500))
        for day in days:
            if day not in exempt.get(member.username, set()):
                planner.ordinary_day(member, day, outside)
    first = _head(runtime) + 1
    _run(runtime, staff, planner.actions, progress)
    last = _head(runtime)
    start = min(datetime.combine(days[0], time(0), ZoneInfo(z)) for z in zones)
    end = max(datetime.combine(days[-1] + timedelta(days=1), time(0), ZoneInfo(z)) for z in zones)
    truth = GroundTruth(
        config.seed,
        days[0].isoformat(),
        days[-1].isoformat(),
        start.astimezone(UTC).isoformat(),
        end.astimezone(UTC).isoformat(),
        sorted(m.username for m in staff),
        planted,
        first,
        last,
    )
    with transaction(runtime.sessions) as session:
        emit(
            session,
            ActivitySimulated(
                days=config.days,
                seed=config.seed,
                users=len(staff),
                first_seq=first,
                last_seq=last,
                planted=len(planted),
            ),
            system_context(Purpose.OVERSIGHT_AUDIT, "synthetic staff activity (demo)"),
        )
    return truth


# --- evaluation ---------------------------------------------------------------------------


@dataclass
class RuleScore:
    """One rule against the ground truth."""

    rule: str
    planted: int
    detected: int
    clean_users: int
    clean_flagged: int
    alerts: int
    true_alerts: int

    @property
    def recall(self) -> float | None:
        return self.detected / self.planted if self.planted else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.clean_flagged / self.clean_users if self.clean_users else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "recall": self.recall,
            "false_positive_rate": self.false_positive_rate,
            "precision": self.precision,
        }


@dataclass
class Evaluation:
    """Every rule's score, the users with no plant who were flagged, and what was missed."""

    rules: list[RuleScore]
    clean_users: int
    clean_flagged: list[str]
    missed: list[tuple[str, str]]
    false_alerts: list[tuple[str, str, str]]

    @property
    def false_positive_rate(self) -> float:
        """Users with no planted misuse flagged by any rule, over all such users."""
        return len(self.clean_flagged) / self.clean_users if self.clean_users else 0.0

    @property
    def recall(self) -> float:
        planted = sum(r.planted for r in self.rules)
        return sum(r.detected for r in self.rules) / planted if planted else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules": [r.as_dict() for r in self.rules],
            "recall": self.recall,
            "false_positive_rate": self.false_positive_rate,
            "clean_users": self.clean_users,
            "clean_flagged": self.clean_flagged,
            "missed": self.missed,
            "false_alerts": self.false_alerts,
        }


def evaluate(session: Session, truth: GroundTruth) -> Evaluation:
    """Compare the alerts on file for the simulated users and days with the ground truth."""
    alerts = list(
        session.scalars(
            select(AccessAlert).where(
                AccessAlert.username.in_(truth.users),
                AccessAlert.day >= truth.first_day,
                AccessAlert.day <= truth.last_day,
            )
        )
    )
    plants = {(p.username, p.rule): set(p.days) for p in truth.planted}
    planted_users = {p.username for p in truth.planted}
    scores = []
    for rule in PLANTED_RULES:
        mine = [a for a in alerts if a.rule == rule]
        true = [a for a in mine if a.day in plants.get((a.username, rule), set())]
        expected = truth.planted_for(rule)
        clean = set(truth.users) - expected
        scores.append(
            RuleScore(
                rule,
                len(expected),
                len({a.username for a in true}),
                len(clean),
                len({a.username for a in mine if a.username in clean}),
                len(mine),
                len(true),
            )
        )
    clean_users = set(truth.users) - planted_users
    flagged = sorted({a.username for a in alerts if a.username in clean_users})
    found = {
        (a.username, a.rule) for a in alerts if a.day in plants.get((a.username, a.rule), set())
    }
    return Evaluation(
        scores,
        len(clean_users),
        flagged,
        sorted(set(plants) - found),
        sorted(
            (a.username, a.rule, a.day)
            for a in alerts
            if a.day not in plants.get((a.username, a.rule), set())
        ),
    )


def plant_and_scan(
    runtime: Runtime, days: int = 14, seed: int = 7, officers: int = 3
) -> tuple[GroundTruth, anomalies.ScanReport, Evaluation]:
    """The demo's one call: simulate with planted misuse, keep the truth beside the database,
    scan the simulated window as the system (audited), and score the alerts."""
    truth = simulate(runtime, SimulationConfig(days=days, seed=seed, officers=officers))
    truth.save(truth_path(runtime))
    since, until = truth.window
    ctx = system_context(Purpose.OVERSIGHT_AUDIT, "access-anomaly scan of the simulated days")
    with transaction(runtime.sessions) as session:
        report = anomalies.scan(session, ctx, since, until)
    with transaction(runtime.sessions) as session:
        scored = evaluate(session, truth)
    return truth, report, scored
