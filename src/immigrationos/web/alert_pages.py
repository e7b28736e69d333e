"""Pages of access-anomaly alerts (auditors, under ``oversight-audit``).

The list filters alerts by status, rule and user and runs a scan; the detail shows an alert's
figures, its evidence (the audit entries it rests on, by sequence number; counts, not the ids
read) and the review form. Each page calls the function of the API route that serves the same
data (``api.anomaly_routes``); forms carry the session's CSRF token and work without script.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from immigrationos.api import anomaly_routes
from immigrationos.api.anomaly_routes import AlertAuditor, ReviewForm, ScanForm, SessionDep
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ImmosError
from immigrationos.oversight import anomalies, anomaly_rules
from immigrationos.web.render import page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
RULE_LABELS = {
    "outside_caseload": "Reads outside caseload and office",
    "unusual_volume": "Unusual volume of reads",
    "after_hours": "Reads outside working hours",
    "purpose_refusals": "Repeated purpose refusals",
}


def _redirect(to: str, done: str = "", error: str = "") -> RedirectResponse:
    flash = f"done={quote(done)}" if done else f"error={quote(error)}" if error else ""
    sep = "&" if "?" in to else "?"
    return RedirectResponse(f"{to}{sep}{flash}" if flash else to, status_code=303)


@router.get("/oversight/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    ctx: AlertAuditor,
    session: SessionDep,
    status: str = "open",
    rule: str = "",
    user: str = "",
    offset: int = 0,
    done: str = "",
    error: str = "",
) -> HTMLResponse:
    """Alerts by status, rule and user; a scan of the last days."""
    status = status if status in (*anomalies.STATUSES, "all") else "open"
    rule = rule if rule in anomaly_rules.RULE_NAMES else ""
    found = anomaly_routes.alert_page(
        session,
        None if status == "all" else status,
        rule or None,
        user.strip() or None,
        max(offset, 0),
        PAGE_SIZE,
    )
    query = urlencode(
        {k: v for k, v in {"status": status, "rule": rule, "user": user}.items() if v}
    )
    return page(
        request, "alerts.html.j2", ctx, title="Access alerts", found=found, shown=status,
        rule=rule, user=user, statuses=[*anomalies.STATUSES, "all"], rules=RULE_LABELS,
        base="/oversight/alerts?" + query, done=done, error=error,
        scan_days=anomaly_rules.load_rules().default_scan_days,
    )  # fmt: skip


@router.post("/oversight/alerts/scan")
def scan_page(
    ctx: AlertAuditor, session: SessionDep, days: Annotated[int, Form(ge=1, le=366)]
) -> Response:
    """Scan the last ``days`` days (the API's scan, audited), then show the open alerts."""
    until = utcnow()
    report = anomaly_routes.run_scan(
        session, ctx, ScanForm(since=until - timedelta(days=days), until=until)
    )
    return _redirect(
        "/oversight/alerts",
        done=f"Scanned {report.user_days} user-days: {len(report.raised)} new alert(s), "
        f"{len(report.existing)} already on file.",
    )


@router.get("/oversight/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(
    request: Request,
    alert_id: str,
    ctx: AlertAuditor,
    session: SessionDep,
    done: str = "",
    error: str = "",
) -> HTMLResponse:
    """One alert: the figures, the evidence entries, and the review form."""
    alert = anomaly_routes.alert_detail(session, alert_id)
    return page(
        request, "alerts_detail.html.j2", ctx, title=f"Access alert {alert.id}", a=alert,
        rule_label=RULE_LABELS.get(alert.rule, alert.rule), done=done, error=error,
        own=alert.user_id == ctx.actor.user_id,
    )  # fmt: skip


@router.post("/oversight/alerts/{alert_id}/review")
def review_page(
    alert_id: str,
    ctx: AlertAuditor,
    session: SessionDep,
    decision: Annotated[Literal["confirmed", "dismissed"], Form()],
    note: Annotated[str, Form()] = "",
) -> Response:
    """Record the decision (the API's review, audited) and show the alert again."""
    to = f"/oversight/alerts/{quote(alert_id)}"
    try:
        form = ReviewForm(decision=decision, note=note)
        anomaly_routes.review_alert(session, ctx, alert_id, form)
    except ValidationError:
        return _redirect(to, error="Say why in a note of at least 5 characters.")
    except ImmosError as exc:
        return _redirect(to, error=str(exc))
    return _redirect(to, done=f"Alert {decision}.")
