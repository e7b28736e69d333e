"""The departure stream as it runs: rates, lag, queue, today's verified departures.

Everything is read from the store (the inbox and the dead-letter store hold no personal
data; the review queue is counted through the gateway), so the figures are the same whichever
process consumes the stream and however many consumers share it. :func:`snapshot` feeds the
API and the CLI's ``monitor``; :func:`prometheus_text` is ``GET /metrics``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from immigrationos.core.clock import utcnow
from immigrationos.departures.events import CHANNELS
from immigrationos.departures.models import DeadLetter, Departure, InboxEntry
from immigrationos.gateway.core import Gateway

#: The window rates and lag are measured over.
WINDOW = timedelta(minutes=15)
#: At most this many recent events are read for the lag percentiles.
LAG_SAMPLE = 20_000


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def snapshot(gw: Gateway, now: datetime | None = None) -> dict[str, Any]:
    """The monitor's figures now: per channel events per minute (over the last 15 minutes)
    and in total, matching lag p50/p99 in milliseconds, the review queue, verified departures
    today, dead letters."""
    now = now or utcnow()
    session: Session = gw.session
    since = now - WINDOW
    inbox = InboxEntry
    recent = dict(
        session.execute(
            select(inbox.channel, func.count())
            .where(inbox.processed_at >= since)
            .group_by(inbox.channel)
        ).all()
    )
    totals: dict[tuple[str, str], int] = {
        (c, b): n
        for c, b, n in session.execute(
            select(inbox.channel, inbox.band, func.count()).group_by(inbox.channel, inbox.band)
        ).all()
    }
    lags = list(
        session.scalars(
            select(inbox.lag_ms)
            .where(inbox.processed_at >= since)
            .order_by(inbox.processed_at.desc())
            .limit(LAG_SAMPLE)
        )
    )
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    verified_today = session.scalar(
        select(func.count()).where(inbox.band == "verified", inbox.processed_at >= midnight)
    )
    queue = gw.count(Departure, Departure.review_status == "open", params={"queue": "review"})
    dead = session.scalar(select(func.count()).select_from(DeadLetter)) or 0
    minutes = WINDOW.total_seconds() / 60
    return {
        "at": now.isoformat(),
        "window_minutes": minutes,
        "events_per_minute": {c: round(recent.get(c, 0) / minutes, 2) for c in CHANNELS},
        "events_total": {
            c: {b: n for (ch, b), n in sorted(totals.items()) if ch == c} for c in CHANNELS
        },
        "lag_ms": {
            "p50": _percentile(lags, 0.50),
            "p99": _percentile(lags, 0.99),
            "sample": len(lags),
        },
        "review_queue": queue,
        "verified_today": int(verified_today or 0),
        "dead_letters": int(dead),
    }


def prometheus_text(figures: dict[str, Any]) -> bytes:
    """The snapshot in the Prometheus text format (a registry built per scrape)."""
    registry = CollectorRegistry()
    rate = Gauge(
        "immos_departure_events_per_minute",
        "Departure events processed per minute over the last 15 minutes",
        ["channel"],
        registry=registry,
    )
    total = Counter(
        "immos_departure_events",
        "Departure events processed, by channel and match band",
        ["channel", "band"],
        registry=registry,
    )
    lag = Gauge(
        "immos_departure_match_lag_milliseconds",
        "Matching lag (publication or receipt to commit) over the last 15 minutes",
        ["quantile"],
        registry=registry,
    )
    for channel, value in figures["events_per_minute"].items():
        rate.labels(channel).set(value)
    for channel, bands in figures["events_total"].items():
        for band, n in bands.items():
            total.labels(channel, band).inc(n)
    for q in ("p50", "p99"):
        value = figures["lag_ms"][q]
        if value is not None:
            lag.labels("0.5" if q == "p50" else "0.99").set(value)
    Gauge("immos_departure_review_queue", "Departures waiting for review", registry=registry).set(
        figures["review_queue"]
    )
    Gauge(
        "immos_departures_verified_today", "Departures verified today (UTC)", registry=registry
    ).set(figures["verified_today"])
    Gauge("immos_departure_dead_letters", "Events in the dead-letter store", registry=registry).set(
        figures["dead_letters"]
    )
    return generate_latest(registry)
