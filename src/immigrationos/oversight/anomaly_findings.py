"""From hourly aggregates to findings, in memory and without the database: the hourly rows of
the SQL plans are rolled up to user-days (each user's local day in their office time zone), and
the rules applied to each day, with thresholds from the rules file and baselines from the
aggregates. A :class:`Finding` is an alert the rules call for; ``anomalies.scan`` stores it.

Why median and MAD for volume: a user's daily reads are skewed (quiet days, busy days) and the
history may already hold an anomaly; the median and the median absolute deviation ignore a
few extreme days where a mean and standard deviation would be dragged towards them, hiding the
next one. The user is compared with their own history *and* with role peers the same day: own
history alone flags a new caseload, peers alone flag someone whose work is always heavier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, or_

from immigrationos.audit.models import AuditEntry
from immigrationos.core.ids import content_id
from immigrationos.oversight.anomaly_plans import person_read, refusal
from immigrationos.oversight.anomaly_rules import (
    CaseloadRule,
    HoursRule,
    RefusalRule,
    Rules,
    VolumeRule,
    WorkingHours,
    zone_of,
)

MAD_TO_SD = 1.4826  # MAD × this estimates a normal distribution's standard deviation


# --- rolling the hourly aggregates up to local days -------------------------------------------


@dataclass
class UserDay:
    """One user's activity on one local day (the unit every rule judges)."""

    user_id: str
    username: str
    role: str
    office: str | None
    zone: str
    day: date
    reads: int = 0
    after_hours: int = 0
    refusals: int = 0
    hours: set[int] = field(default_factory=set)
    after_hours_hours: set[int] = field(default_factory=set)
    outside_persons: set[str] = field(default_factory=set)
    outside_reads: int = 0
    outside_seqs: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, date]:
        return self.user_id, self.day

    def window(self) -> tuple[datetime, datetime]:
        """The local day as a UTC interval."""
        zone = zone_of(self.zone)
        start = datetime.combine(self.day, time(0), zone)
        end = datetime.combine(self.day + timedelta(days=1), time(0), zone)
        return start.astimezone(UTC), end.astimezone(UTC)


class Days:
    """User-days built from hourly rows, converting each UTC hour to the user's local time."""

    def __init__(self, hours: WorkingHours) -> None:
        self.hours = hours
        self.days: dict[tuple[str, date], UserDay] = {}
        self.local: dict[tuple[int, str], datetime] = {}

    def _local(self, hour: int, zone: str) -> datetime:
        key = (hour, zone)
        if key not in self.local:
            moment = datetime.fromtimestamp(hour * 3600, UTC)
            self.local[key] = moment.astimezone(zone_of(zone))
        return self.local[key]

    def add(self, row: Any) -> None:
        zone = self.hours.zone(row.actor_office)
        local = self._local(int(row.hour), zone)
        key = (row.actor_id, local.date())
        day = self.days.get(key)
        if day is None:
            day = UserDay(
                row.actor_id,
                row.actor_name or row.actor_id,
                row.actor_role or "",
                row.actor_office,
                zone,
                local.date(),
            )
            self.days[key] = day
        day.reads += int(row.reads or 0)
        day.refusals += int(row.refusals or 0)
        day.hours.add(int(row.hour))
        if row.reads and not self.hours.working(local):
            day.after_hours += int(row.reads)
            day.after_hours_hours.add(int(row.hour))

    def add_outside(self, row: Any, zone_of_user: dict[str, str]) -> None:
        zone = zone_of_user.get(row.actor_id, self.hours.timezone)
        day = self.days.get((row.actor_id, self._local(int(row.hour), zone).date()))
        if day is None:  # the activity query saw every read, so this does not happen
            return
        day.outside_persons.add(str(row.person))
        day.outside_reads += int(row.reads)
        day.outside_seqs.extend(int(s) for s in str(row.seqs).split(",") if s)


# --- the rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """An alert the rules call for (planned; ``anomalies.scan`` stores the new ones)."""

    rule: str
    day: UserDay
    measured: float
    baseline: float | None
    threshold: float
    summary: str
    counts: dict[str, Any]
    seqs_where: tuple[ColumnElement[bool], ...] = ()
    seqs: tuple[int, ...] = ()

    @property
    def id(self) -> str:
        return alert_id(self.rule, self.day.user_id, self.day.day, self.day.zone)


def alert_id(rule: str, user_id: str, day: date, zone: str) -> str:
    """The content id of an alert: the same rule, user and local day give the same id."""
    return content_id("alr", rule, user_id, day.isoformat(), zone)


def _robust(values: Sequence[float], rule: VolumeRule) -> tuple[float, float, float]:
    """Median, MAD, and the scale a deviation is measured in (floored, see the rules file)."""
    arr = np.asarray(values, dtype=float)
    median = float(np.median(arr))
    mad = float(np.median(np.abs(arr - median)))
    scale = max(MAD_TO_SD * mad, rule.min_scale_share * median, rule.min_scale)
    return median, mad, scale


def _volume(
    day: UserDay, days: dict[tuple[str, date], UserDay], rule: VolumeRule, reads: Any
) -> Finding | None:
    """Flag a day's reads above the user's own robust baseline and, when they have enough
    active peers that day, above the peers' too. Without enough history of their own a user
    is not judged on volume: peers alone would flag whoever always works a heavier caseload."""
    if day.reads < rule.min_reads:
        return None
    history = [
        d.reads
        for n in range(1, rule.baseline_days + 1)
        if (d := days.get((day.user_id, day.day - timedelta(days=n)))) is not None and d.reads
    ]
    if len(history) < rule.min_history_days:
        return None
    peers = [
        d.reads
        for d in days.values()
        if d.day == day.day and d.role == day.role and d.user_id != day.user_id and d.reads
    ]
    counts: dict[str, Any] = {"reads": day.reads, "own_days": len(history), "peers": len(peers)}
    limits: list[float] = [float(rule.min_reads)]
    baseline: float | None = None
    for name, values, minimum in (
        ("own", history, rule.min_history_days),
        ("peer", peers, rule.min_peers),
    ):
        if len(values) < minimum:
            continue
        median, mad, scale = _robust(values, rule)
        limit = median + rule.k * scale
        counts.update({f"{name}_median": median, f"{name}_mad": mad, f"{name}_limit": limit})
        limits.append(limit)
        baseline = median if baseline is None else baseline
    if day.reads <= max(limits):
        return None
    threshold = max(limits)
    start, end = day.window()
    return Finding(
        "unusual_volume",
        day,
        day.reads,
        baseline,
        threshold,
        f"{day.reads} person reads on {day.day}, above {threshold:.0f} "
        f"(own median {counts.get('own_median', '—')}, peers' median "
        f"{counts.get('peer_median', '—')}, k={rule.k})",
        counts,
        seqs_where=(
            AuditEntry.actor_id == day.user_id,
            reads,
            AuditEntry.at >= start,
            AuditEntry.at < end,
        ),
    )


def _caseload(day: UserDay, rule: CaseloadRule) -> Finding | None:
    persons = len(day.outside_persons)
    share = day.outside_reads / day.reads if day.reads else 0.0
    if persons < rule.min_persons or share < rule.min_share:
        return None
    return Finding(
        "outside_caseload",
        day,
        persons,
        None,
        rule.min_persons,
        f"{persons} persons read outside caseload and office ({day.outside_reads} of "
        f"{day.reads} person reads, {share:.0%}) on {day.day}",
        {
            "outside_persons": persons,
            "outside_reads": day.outside_reads,
            "reads": day.reads,
            "share": round(share, 3),
        },
        seqs=tuple(sorted(day.outside_seqs)),
    )


def _median_before(
    day: UserDay, days: dict[tuple[str, date], UserDay], attr: str, span: int
) -> float | None:
    values = [
        getattr(d, attr)
        for n in range(1, span + 1)
        if (d := days.get((day.user_id, day.day - timedelta(days=n)))) is not None
    ]
    return float(np.median(values)) if values else None


def _after_hours(
    day: UserDay,
    days: dict[tuple[str, date], UserDay],
    rule: HoursRule,
    reads: ColumnElement[bool],
    span: int,
) -> Finding | None:
    if day.after_hours < rule.min_reads:
        return None
    at = AuditEntry.at
    bounds = [
        and_(at >= _hour_start(h), at < _hour_start(h + 1)) for h in sorted(day.after_hours_hours)
    ]
    return Finding(
        "after_hours",
        day,
        day.after_hours,
        _median_before(day, days, "after_hours", span),
        rule.min_reads,
        f"{day.after_hours} person reads outside working hours on {day.day} ({day.zone})",
        {
            "after_hours_reads": day.after_hours,
            "reads": day.reads,
            "utc_hours": [
                _hour_start(h).strftime("%Y-%m-%d %H:00") for h in sorted(day.after_hours_hours)
            ],
        },
        seqs_where=(AuditEntry.actor_id == day.user_id, reads, or_(*bounds)),
    )


def _refusals(
    day: UserDay,
    days: dict[tuple[str, date], UserDay],
    rule: RefusalRule,
    refused: ColumnElement[bool],
    span: int,
) -> Finding | None:
    if day.refusals < rule.min_refusals:
        return None
    start, end = day.window()
    return Finding(
        "purpose_refusals",
        day,
        day.refusals,
        _median_before(day, days, "refusals", span),
        rule.min_refusals,
        f"{day.refusals} refused accesses on {day.day}",
        {"refusals": day.refusals, "reads": day.reads},
        seqs_where=(
            AuditEntry.actor_id == day.user_id,
            refused,
            AuditEntry.at >= start,
            AuditEntry.at < end,
        ),
    )


def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def judge(day: UserDay, days: dict[tuple[str, date], UserDay], rules: Rules) -> list[Finding]:
    """Every rule that applies to the user's role, on one day."""
    r = rules.rules
    span = r.unusual_volume.baseline_days
    found: list[Finding | None] = []
    if day.role in rules.roles_of("outside_caseload"):
        found.append(_caseload(day, r.outside_caseload))
    if day.role in rules.roles_of("unusual_volume"):
        found.append(_volume(day, days, r.unusual_volume, person_read(rules)))
    if day.role in rules.roles_of("after_hours"):
        found.append(_after_hours(day, days, r.after_hours, person_read(rules), span))
    if day.role in rules.roles_of("purpose_refusals"):
        found.append(_refusals(day, days, r.purpose_refusals, refusal(rules), span))
    return [f for f in found if f is not None]
