"""When a deadline falls: calendar days, business days, hours, and the federal-holiday roll.

The appeal rule (8 CFR 1003.38): an appeal must be *received* within 30 calendar days; when
the last day is a Saturday, Sunday or federal holiday the window runs to the next business
day; there is no mailbox rule. A window that ends on a day ends when that day ends, so the
deadline's moment is the start of the next day (UTC, the system's one clock). Federal
holidays come from the maintained ``holidays`` package (observed dates included), not a
hand-kept list.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache

import holidays

from immigrationos.lifecycle.table import DeadlineSpec


@cache
def _federal(year: int) -> frozenset[date]:
    return frozenset(holidays.US(years=year, categories=("public",)).keys())


def is_business_day(day: date) -> bool:
    """Monday to Friday and not a federal holiday (observed)."""
    return day.weekday() < 5 and day not in _federal(day.year)


def next_business_day(day: date) -> date:
    """``day`` itself when it is a business day, else the next one."""
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def add_business_days(day: date, count: int) -> date:
    """The ``count``-th business day after ``day``."""
    while count > 0:
        day += timedelta(days=1)
        count -= is_business_day(day)
    return day


def end_of(day: date) -> datetime:
    """The moment a window that runs through ``day`` closes."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def due(spec: DeadlineSpec, start: date | datetime) -> tuple[datetime, str]:
    """When a deadline of ``spec`` started at ``start`` falls due, and the rule in words."""
    if spec.hours or isinstance(start, datetime):
        begin = start if isinstance(start, datetime) else datetime.combine(start, time.min, UTC)
        moment = begin + timedelta(days=spec.days, hours=spec.hours)
        return moment, f"{spec.start} {begin:%Y-%m-%d %H:%M} UTC + {spec.days} days {spec.hours} h"
    day = start + timedelta(days=spec.days)
    words = f"{spec.start} {start.isoformat()} + {spec.days} calendar days = {day.isoformat()}"
    if spec.business_days:
        day = add_business_days(start, spec.business_days)
        words = f"{spec.start} {start.isoformat()} + {spec.business_days} business days = {day}"
    if spec.roll == "next_business_day" and not is_business_day(day):
        rolled = next_business_day(day)
        words += f", not a business day: runs to {rolled.isoformat()}"
        day = rolled
    return end_of(day), words + "; closes when that day ends"
