"""Pages of analysis: priority policies and what-if comparisons, match review, departures.

Each page is guarded by the same dependency alias as the API route serving the same data
(``priority_routes``, ``resolve_routes``, ``departure_routes``, ``overstay_routes``) and calls
the same view or service function; forms post, then redirect to a page that says what was
done. The departures monitor is live over server-sent events: one rendered fragment of
:func:`immigrationos.departures.monitor.snapshot` now, then one every few seconds.

The overstay chart is drawn here (a handful of rects, as :mod:`immigrationos.priority.report`
draws its own) because it shows rates with their small cells marked, which the what-if bars
do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from immigrationos.accounts.models import User
from immigrationos.api import departure_routes, overstay_routes, priority_routes, resolve_routes
from immigrationos.api.departure_routes import Reader as DepartureReader
from immigrationos.api.departure_routes import Reviewer as DepartureReviewer
from immigrationos.api.overstay_routes import Analyst as StatisticsAnalyst
from immigrationos.api.priority_routes import Analyst as PriorityAnalyst
from immigrationos.api.priority_routes import Reader as PriorityReader
from immigrationos.api.priority_routes import SessionDep
from immigrationos.api.priority_routes import Supervisor as PrioritySupervisor
from immigrationos.api.resolve_routes import Analyst as ResolutionAnalyst
from immigrationos.core.errors import ImmosError, NotFound, ValidationFailed
from immigrationos.departures import monitor
from immigrationos.departures import service as departures
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway, Refused, unit_of_work
from immigrationos.priority import conditions, report, service
from immigrationos.priority.models import PriorityRun
from immigrationos.resolution import review as match_review
from immigrationos.resolution.review import DECISIONS
from immigrationos.runtime import Runtime
from immigrationos.web.render import page, templates

router = APIRouter(include_in_schema=False)
T = TypeVar("T")
#: Seconds between two monitor events on the live page.
MONITOR_EVERY = 5.0
#: A cell with fewer expected departures than this gives a rate too unstable to compare.
SMALL_CELL = 10
#: Nationalities drawn in the overstay chart (largest first); the table lists them all.
CHART_GROUPS = 15


def _redirect(to: str, done: str = "", error: str = "") -> RedirectResponse:
    """303 to a page, with what was done (or went wrong) for its flash message."""
    flash = f"done={quote(done)}" if done else f"error={quote(error)}" if error else ""
    sep = "&" if "?" in to else "?"
    return RedirectResponse(f"{to}{sep}{flash}" if flash else to, status_code=303)


def _attempt(work: Callable[[], T]) -> tuple[T | None, str]:
    """Run a service call; a rule's refusal comes back as the message the page shows."""
    try:
        return work(), ""
    except Refused:  # the gateway's refusals roll back and are audited (api.deps.db_session)
        raise
    except ImmosError as exc:  # a rule's answer, given before the service writes anything
        return None, str(exc)


def _usernames(gw: Gateway, ids: Sequence[str | None]) -> dict[str, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = gw.session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}


# -- policies -------------------------------------------------------------------------------


@router.get("/policies", response_class=HTMLResponse)
def policies_page(
    request: Request, ctx: PriorityReader, session: SessionDep, done: str = "", error: str = ""
) -> HTMLResponse:
    """Policy versions with owner, dates, approval and state; runs; register, run, compare."""
    return _policies(request, ctx, session, done=done, error=error)


def _policies(
    request: Request,
    ctx: AccessContext,
    session: Session,
    *,
    status: int = 200,
    done: str = "",
    error: str = "",
    text: str = "",
) -> HTMLResponse:
    rows = priority_routes.policies(ctx, session)
    runs = priority_routes.runs(ctx, session)
    users = _usernames(Gateway(session, ctx), [r["registered_by"] for r in rows] +
                       [r["adopted_by"] for r in rows])  # fmt: skip
    a, b = _default_pair(runs)
    return page(
        request, "policies.html.j2", ctx, status=status, title="Priority policies",
        policies=rows, runs=runs, users=users, a=a, b=b, done=done, error=error, text=text,
    )  # fmt: skip


def _default_pair(runs: list[dict[str, Any]]) -> tuple[str, str]:
    """Two runs of different policies over the same index and date (newest first), if any."""
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            same = (a["index_version"], a["as_of"]) == (b["index_version"], b["as_of"])
            if same and a["policy_id"] != b["policy_id"]:
                return b["id"], a["id"]
    return "", ""


@router.post("/policies", response_class=HTMLResponse)
def register_policy(
    request: Request, ctx: PriorityAnalyst, session: SessionDep, text: Annotated[str, Form()]
) -> Response:
    """Register a policy version from its YAML (the service of ``POST /api/priority/policies``)."""
    row, error = _attempt(lambda: service.register(Gateway(session, ctx), text))
    if row is None:
        return _policies(request, ctx, session, status=422, error=error, text=text)
    return _redirect(f"/policies/{row.id}", done=f"Registered {row.id}.")


@router.post("/policies/runs")
def run_policy(
    ctx: PriorityAnalyst,
    session: SessionDep,
    policy: Annotated[str, Form()],
    as_of: Annotated[date | None, Form()] = None,
) -> Response:
    """Score the person index under a policy (the service of ``POST /api/priority/runs``)."""
    gw = Gateway(session, ctx)
    run, error = _attempt(lambda: service.run(gw, service.resolve_policy(gw, policy), as_of))
    if run is None:
        return _redirect("/policies", error=error)
    leads = run.counts.get("actionable", 0)
    return _redirect(
        "/policies", done=f"Run {run.id}: {run.persons} persons scored, {leads} actionable leads."
    )


@router.get("/policies/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    ctx: PriorityReader,
    session: SessionDep,
    a: str = "",
    b: str = "",
    limit: Annotated[int, Query(ge=0, le=500)] = 50,
) -> HTMLResponse:
    """What-if: two runs (or two policies' newest runs over one index and date) compared, with
    the transition matrix, heat map and bar charts of ``priority/report.py``."""
    runs = priority_routes.runs(ctx, session)
    view, error = None, ""
    if a and b:
        gw = Gateway(session, ctx)
        pair, error = _attempt(lambda: _pair(gw, a, b))
        if pair is not None:
            a, b = pair
            got, error = _attempt(
                lambda: priority_routes.compare(ctx, session, pair[0], pair[1], limit)
            )
            view = report.comparison_view(got) if got is not None else None
    default = _default_pair(runs)
    return page(
        request, "policy_compare.html.j2", ctx, status=200 if view or not error else 422,
        title="What-if comparison", runs=runs, a=a or default[0], b=b or default[1], view=view,
        error=error,
    )  # fmt: skip


def _pair(gw: Gateway, a: str, b: str) -> tuple[str, str]:
    """Run ids for ``a`` and ``b``: a run id as is; a policy's newest run that shares an index
    version and date with the other side's."""
    if a.startswith("prun-") and b.startswith("prun-"):
        return a, b
    runs_a, runs_b = _runs_of(gw, a), _runs_of(gw, b)
    for ra in runs_a:
        for rb in runs_b:
            if (ra.index_version, ra.as_of) == (rb.index_version, rb.as_of):
                return ra.id, rb.id
    raise ValidationFailed(
        f"{a} and {b} have no runs over the same person index and date: run both first"
    )


def _runs_of(gw: Gateway, ref: str) -> list[PriorityRun]:
    """The run ``ref`` names, or the finished runs of the policy it names, newest first."""
    if ref.startswith("prun-"):
        run = gw.session.get(PriorityRun, ref)
        if run is None:
            raise NotFound(f"no run {ref!r}")
        return [run]
    policy_id = service.resolve_policy(gw, ref)
    stmt = (
        select(PriorityRun)
        .where(PriorityRun.policy_id == policy_id, PriorityRun.finished_at.is_not(None))
        .order_by(PriorityRun.finished_at.desc())
    )
    return list(gw.session.scalars(stmt))


@router.get("/policies/{policy_id}", response_class=HTMLResponse)
def policy_page(
    request: Request,
    ctx: PriorityReader,
    session: SessionDep,
    policy_id: str,
    done: str = "",
    error: str = "",
) -> HTMLResponse:
    """One version: owner, dates, approval, rules and tiers; adopt (supervisor); explain."""
    row = priority_routes.policy(ctx, session, policy_id)
    gw = Gateway(session, ctx)
    _, parsed = service.policy_of(gw, policy_id)
    rules = [{"id": r.id, "kind": r.kind, "label": r.label, "weight": r.signed_weight,
              "cites": r.cites, "condition": conditions.describe(r.cond)}
             for r in parsed.rules]  # fmt: skip
    tiers = [{"id": t.id, "label": t.label, "lead": t.lead, "rank": t.rank,
              "condition": conditions.describe(t.cond)} for t in parsed.tiers]  # fmt: skip
    runs = priority_routes.runs(ctx, session, policy_id)
    users = _usernames(gw, [row["registered_by"], row["adopted_by"]])
    return page(
        request, "policy.html.j2", ctx, title=f"Policy {policy_id}", policy=row, spec=parsed.spec,
        rules=rules, tiers=tiers, runs=runs, users=users, done=done, error=error,
    )  # fmt: skip


@router.post("/policies/{policy_id}/adopt")
def adopt_policy(
    ctx: PrioritySupervisor, session: SessionDep, policy_id: str, note: Annotated[str, Form()]
) -> Response:
    """Put a version in force (the service of ``POST /api/priority/policies/{id}/adopt``)."""
    row, error = _attempt(lambda: service.adopt(Gateway(session, ctx), policy_id, note))
    to = f"/policies/{quote(policy_id, safe='@')}"
    return _redirect(to, done=f"{policy_id} is in force.") if row else _redirect(to, error=error)


@router.get("/policies/{policy_id}/persons")
def explain_form(ctx: PriorityReader, policy_id: str, person_id: str = "") -> Response:
    """The explanation form's target: on to the person's explanation page."""
    person = person_id.strip()
    if not person:
        return _redirect(f"/policies/{quote(policy_id, safe='@')}", error="Give a person id.")
    return RedirectResponse(
        f"/policies/{quote(policy_id, safe='@')}/persons/{quote(person)}", status_code=303
    )


@router.get("/policies/{policy_id}/persons/{person_id}", response_class=HTMLResponse)
def explain_page(
    request: Request,
    ctx: PriorityReader,
    session: SessionDep,
    policy_id: str,
    person_id: str,
    as_of: date | None = None,
) -> HTMLResponse:
    """Why a person has their tier and score under this policy, and whether action is possible
    (the view of ``GET /api/priority/persons/{id}?policy=…``)."""
    explained = priority_routes.explain(ctx, session, person_id, policy_id, as_of)
    others = [p["id"] for p in priority_routes.policies(ctx, session)]
    return page(
        request, "analysis_person.html.j2", ctx, title=f"Priority of {person_id}",
        x=explained, policy_id=policy_id, others=others, person_id=person_id,
    )  # fmt: skip


# -- match review ---------------------------------------------------------------------------


@router.get("/matches", response_class=HTMLResponse)
def matches_page(
    request: Request,
    ctx: ResolutionAnalyst,
    session: SessionDep,
    status: Literal["open", "decided"] = "open",
    done: str = "",
    error: str = "",
) -> HTMLResponse:
    """The review queue: pairs in the uncertain band, most uncertain first (or decided ones)."""
    items = resolve_routes.list_reviews(ctx, session, status, 200)
    return page(
        request, "matches.html.j2", ctx, title="Match review", items=items, queue=status,
        done=done, error=error,
    )  # fmt: skip


@router.get("/matches/{review_id}", response_class=HTMLResponse)
def match_page(
    request: Request, ctx: ResolutionAnalyst, session: SessionDep, review_id: str, error: str = ""
) -> HTMLResponse:
    """Both records side by side, each comparison's contribution to the match weight."""
    got = resolve_routes.get_review(review_id, ctx, session)
    peak = max((abs(c.get("weight") or 0) for c in got["contributions"]), default=0) or 1
    return page(
        request, "match.html.j2", ctx, title="Match review", r=got, peak=peak,
        decisions=DECISIONS, error=error,
    )  # fmt: skip


@router.post("/matches/{review_id}/decision")
def decide_match(
    ctx: ResolutionAnalyst,
    session: SessionDep,
    review_id: str,
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Decide a pair (the service of ``POST /api/resolution/reviews/{id}/decision``)."""
    gw = Gateway(session, ctx)
    done, error = _attempt(lambda: match_review.decide(gw, review_id, decision, reason))
    if done is None:
        return _redirect(f"/matches/{quote(review_id)}", error=error)
    return _redirect("/matches", done=f"Recorded {decision} for review {review_id}.")


# -- departures -----------------------------------------------------------------------------


@router.get("/departures", response_class=HTMLResponse)
def departures_page(request: Request, ctx: DepartureReader, session: SessionDep) -> HTMLResponse:
    """The live monitor: rates by channel, matching lag, review queue, verified today."""
    figures = departure_routes.monitor_figures(ctx, session)
    return page(request, "departures.html.j2", ctx, title="Departures", fig=figures)


def _monitor_html(runtime: Runtime, ctx: AccessContext) -> str:
    """One monitor fragment, read in its own transaction (a stream outlives any request's)."""
    with unit_of_work(runtime.sessions, ctx) as gw:
        figures = monitor.snapshot(gw)
    return templates.get_template("analysis_monitor.html.j2").render(fig=figures)


def sse(event: str, html: str) -> str:
    """One server-sent event; every line of the data gets its own ``data:`` field."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


@router.get("/departures/stream")
async def departures_stream(request: Request, ctx: DepartureReader, once: bool = False) -> Response:
    """Server-sent events named ``monitor``: one now, then every few seconds until the client
    leaves (``?once=1``: a single event)."""
    runtime: Runtime = request.app.state.runtime

    async def events() -> AsyncIterator[str]:
        while True:
            yield sse("monitor", await run_in_threadpool(_monitor_html, runtime, ctx))
            if once:
                return
            for _ in range(int(MONITOR_EVERY * 4)):
                await asyncio.sleep(0.25)
                if await request.is_disconnected():
                    return

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/departures/review", response_class=HTMLResponse)
def departures_review_page(
    request: Request,
    ctx: DepartureReviewer,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
    done: str = "",
    error: str = "",
) -> HTMLResponse:
    """Departures waiting for a person's decision, oldest first, with the explanation."""
    items = departure_routes.review(ctx, session, limit, offset)
    return page(
        request, "departures_review.html.j2", ctx, title="Departure review", items=items,
        offset=offset, limit=limit, done=done, error=error,
    )  # fmt: skip


@router.post("/departures/review/{departure_id}")
def decide_departure(
    ctx: DepartureReviewer,
    session: SessionDep,
    departure_id: str,
    same_person: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
    person_id: Annotated[str, Form()] = "",
) -> Response:
    """Decide a departure (the service of ``POST /api/departures/review/{id}``)."""
    same = same_person == "yes"
    gw = Gateway(session, ctx)
    out, error = _attempt(
        lambda: departures.decide_review(gw, departure_id, same, reason, person_id.strip() or None)
    )
    if out is None:
        return _redirect("/departures/review", error=f"{departure_id}: {error}")
    said = "the same person" if same else "not the person proposed"
    moved = len([e for e in out["effects"] if e.get("applied")])
    return _redirect(
        "/departures/review", done=f"Departure {departure_id}: {said}; {moved} case steps applied."
    )


@router.get("/departures/overstays", response_class=HTMLResponse)
def overstays_page(
    request: Request,
    ctx: StatisticsAnalyst,
    session: SessionDep,
    fiscal_year: Annotated[int | None, Query(ge=1900, le=2200)] = None,
    as_of: date | None = None,
) -> HTMLResponse:
    """Overstay figures by nationality and class of admission (``GET
    /api/departures/overstays``), with a chart of the rates and small cells marked."""
    got = overstay_routes.report(ctx, session, fiscal_year, as_of)
    nationalities = got["by_nationality"]
    chart = rate_chart_svg(nationalities[:CHART_GROUPS], "nationality") if nationalities else None
    return page(
        request, "overstays.html.j2", ctx, title="Overstays", r=got, chart=chart,
        small=SMALL_CELL, fiscal_year=fiscal_year, as_of=as_of,
    )  # fmt: skip


def rate_chart_svg(rows: Sequence[dict[str, Any]], key: str) -> Markup:
    """Horizontal bars of the overstay rate per group; a small cell is pale, dashed and says
    "small" in words (never by colour alone)."""
    label_w, bar_w, row_h, top = 150, 330, 22, 30
    height = top + row_h * len(rows) + 8
    title = f"Overstay rate by {key}"
    desc = (
        f"Percent of expected departures that overstayed, per {key}; groups with fewer than "
        f"{SMALL_CELL} expected departures are marked small. The table gives the numbers."
    )
    parts = [
        f'<svg id="overstay-chart" role="img" aria-labelledby="oc-title oc-desc" '
        f'viewBox="0 0 {label_w + bar_w + 170} {height}" width="100%" font-size="13" '
        f'font-family="system-ui, sans-serif" fill="#1a1a1a">'
        f'<title id="oc-title">{escape(title)}</title><desc id="oc-desc">{escape(desc)}</desc>',
        f'<text x="{label_w}" y="16" fill="#444">0%</text>'
        f'<text x="{label_w + bar_w}" y="16" text-anchor="end" fill="#444">100%</text>',
    ]
    for i, row in enumerate(rows):
        y = top + i * row_h
        rate = row.get("overstay_rate_pct") or 0.0
        small = row["expected_departures"] < SMALL_CELL
        width = bar_w * rate / 100
        style = (
            'fill="#9db7d8" stroke="#1f5fa8" stroke-dasharray="3 2"'
            if small
            else ('fill="#1f5fa8"')
        )
        note = f"{rate:.1f}% of {row['expected_departures']}" + (" (small)" if small else "")
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">{escape(row[key])}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 6}" {style}>'
            f"<title>{escape(str(row[key]))}: {escape(note)}</title></rect>"
            f'<text x="{label_w + width + 4:.1f}" y="{y + 14}" font-size="12">{escape(note)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
