"""Rendering the oversight report: SVG bar charts drawn here (no script, no CDN) and HTML.

The same sections template serves the dashboard page and the standalone file of
``immos report oversight``; charts carry a title and a description for screen readers, and
every chart's numbers are also in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from markupsafe import Markup

from immigrationos import __version__
from immigrationos.core import svg as draw
from immigrationos.core.templating import environment
from immigrationos.oversight.report import Count, OversightReport

TEMPLATES = Path(__file__).parent / "templates"
SAME = "The table beside it gives the same numbers."
BAR = "#1f5fa8"


def bar_svg(rows: Sequence[tuple[str, int]], svg_id: str, title: str, desc: str) -> Markup:
    """Horizontal bars, one per labelled count, the count written after each bar."""
    label_w, value_w, width, bar_h, top = 200, 60, 560, 24, 8
    peak = max((n for _, n in rows), default=0) or 1
    parts = [draw.svg_open(svg_id, width, top + bar_h * len(rows) + 8, title, desc)]
    for i, (label, n) in enumerate(rows):
        y = top + i * bar_h
        w = (width - label_w - value_w) * n / peak
        parts.append(draw.text(label_w - 8, y + 15, draw.short(label, 28), text_anchor="end"))
        parts.append(draw.rect(label_w, y + 3, round(w, 1), bar_h - 6, BAR, f"{label}: {n}"))
        parts.append(draw.text(label_w + round(w, 1) + 4, y + 15, f"{n:,}"))
    parts.append("</svg>")
    return Markup("".join(parts))


def _bars(rows: Sequence[Count], svg_id: str, title: str) -> Markup | None:
    if not rows:
        return None
    return bar_svg([(r.label.replace("_", " "), r.count) for r in rows], svg_id, title, SAME)


def charts(report: OversightReport) -> dict[str, Markup]:
    """The report's charts by name (a name is absent when its data is empty)."""
    by_purpose: dict[str, int] = {}
    by_role: dict[str, int] = {}
    for row in report.access_by_purpose_role:
        by_purpose[row.purpose] = by_purpose.get(row.purpose, 0) + row.reads + row.searches
        by_role[row.role] = by_role.get(row.role, 0) + row.reads + row.searches
    channels = report.departures.by_channel_band.row_totals
    drawn = {
        "purpose": _bars(_as_counts(by_purpose), "chart-purpose", "Reads and searches by purpose"),
        "role": _bars(_as_counts(by_role), "chart-role", "Reads and searches by role"),
        "enforcement_tier": _bars(
            report.enforcement.by_tier, "chart-enforcement-tier", "Enforcement actions by tier"
        ),
        "blocks": _bars(report.blocks_by_guard, "chart-blocks", "Case steps stopped, by guard"),
        "departures": _bars(
            _as_counts(channels), "chart-departures", "Departure events by channel"
        ),
    }
    return {name: svg for name, svg in drawn.items() if svg is not None}


def _as_counts(values: dict[str, int]) -> list[Count]:
    return [Count(label=k, count=n) for k, n in sorted(values.items(), key=lambda kv: -kv[1])]


def _label(value: object) -> str:
    return str(value or "").replace("_", " ")


def render_html(report: OversightReport) -> str:
    """The report as one self-contained HTML file (inline SVG, inline CSS)."""
    env = environment(TEMPLATES, (("label", _label),))
    template = env.get_template("oversight_report.html.j2")
    return template.render(report=report, charts=charts(report), links=False, version=__version__)
