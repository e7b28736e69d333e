"""What-if report: two priority policies run over one person index, as one self-contained page.

:func:`render_comparison_html` turns the comparison dict (see its docstring) into a single HTML
file that needs no network: the CSS is inline and the charts are SVG drawn here, in Python, as a
handful of rects and texts. Every chart has an accessible table of the same numbers beside it.
Autoescaping is on for the template, and every text placed in an SVG is escaped
(``core/svg.py``), so a policy title or a group name can never become markup.

A priority is never an action; the page says so in its header.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from immigrationos.core import svg as draw
from immigrationos.core.templating import environment

TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE = "compare.html.j2"
TOP_GROUPS = 15
"""Groups shown one by one in each chart (largest by persons); the rest are summed as other."""
DIMENSIONS = {"nationality": "Nationality", "office": "Office", "age_band": "Age band"}
PRIORITY_NOTE = (
    "A priority is never an action: a lead only lets an officer open an encounter, "
    "and legal blocks are shown on each person's explanation."
)

COLOUR_A = "#1f5fa8"  # 6.4:1 on white
COLOUR_B = "#a34400"  # 6.1:1 on white
HEAT_LOW = (238, 243, 250)
HEAT_HIGH = (8, 48, 107)
HEAT_ZERO = "#f4f4f4"
MUTED_INK = "#444444"

RGB = tuple[int, int, int]


# --- view data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TierRef:
    """One tier of a policy as the report shows it."""

    id: str
    label: str
    lead: bool


@dataclass(frozen=True)
class MatrixRow:
    """The persons of one tier under A, spread over the tiers of B."""

    tier: TierRef
    counts: tuple[int, ...]
    total: int


@dataclass(frozen=True)
class Matrix:
    """Tier transition counts: rows are A's tiers in rank order, columns B's."""

    rows: tuple[MatrixRow, ...]
    columns: tuple[TierRef, ...]
    column_totals: tuple[int, ...]
    total: int

    def cell(self, tier_a: str, tier_b: str) -> int:
        """Persons placed in ``tier_a`` under A and ``tier_b`` under B (0 for an empty cell)."""
        cols = {t.id: j for j, t in enumerate(self.columns)}
        rows = {r.tier.id: r for r in self.rows}
        if tier_a not in rows or tier_b not in cols:
            raise KeyError(f"no cell {tier_a} -> {tier_b}")
        return rows[tier_a].counts[cols[tier_b]]

    @property
    def leads_a(self) -> int:
        """Persons in a lead tier under A."""
        return sum(r.total for r in self.rows if r.tier.lead)

    @property
    def leads_b(self) -> int:
        """Persons in a lead tier under B."""
        return sum(n for t, n in zip(self.columns, self.column_totals, strict=True) if t.lead)


@dataclass(frozen=True)
class GroupRow:
    """Leads of one group under A and B; ``merged`` > 0 marks the summed "other" row."""

    group: str
    leads_a: int
    leads_b: int
    persons: int
    merged: int = 0

    @property
    def label(self) -> str:
        """The name shown for the row; the other row says how many groups it sums."""
        if not self.merged:
            return self.group
        return f"other ({self.merged} group{'s' if self.merged > 1 else ''})"

    @property
    def change(self) -> int:
        """Leads under B minus leads under A."""
        return self.leads_b - self.leads_a


@dataclass(frozen=True)
class GroupChart:
    """One dimension (nationality, office, age band): its chart and the rows of its table."""

    key: str
    title: str
    rows: tuple[GroupRow, ...]
    totals: GroupRow
    svg: Markup | None


@dataclass(frozen=True)
class RuleView:
    """One rule that fired for a person."""

    id: str
    label: str
    kind: str
    weight: str


@dataclass(frozen=True)
class ChangedPerson:
    """A person whose tier differs between A and B, with both explanations."""

    person_id: str
    tier_a: TierRef
    tier_b: TierRef
    score_a: str
    score_b: str
    rules_a: tuple[RuleView, ...]
    rules_b: tuple[RuleView, ...]


# --- entry point --------------------------------------------------------------------------


def render_comparison_html(comparison: dict[str, Any]) -> str:
    """Render a what-if comparison of policies A and B as one self-contained HTML page.

    ``comparison`` holds ``a`` and ``b`` (``policy``, ``title``, ``run_id``), ``index_version``,
    ``as_of``, ``persons``, ``tiers_a``/``tiers_b`` (``id``, ``label``, ``rank``, ``lead``),
    ``matrix`` (nonzero ``from``/``to``/``count`` cells), ``by`` (per dimension, rows of
    ``group``/``leads_a``/``leads_b``/``persons``), ``changed`` (the first persons whose tier
    changed, with ``score_a``/``score_b`` and ``rules_a``/``rules_b``), ``changed_total`` and
    ``generated_at``. Missing keys count as empty, so a bare ``{}`` still renders.
    """
    template = environment(TEMPLATE_DIR).get_template(TEMPLATE)
    return template.render(**comparison_view(comparison))


def comparison_view(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the template shows, already shaped and formatted."""
    tiers_a, tiers_b = _tiers(comparison.get("tiers_a")), _tiers(comparison.get("tiers_b"))
    a, b = _policy(comparison.get("a")), _policy(comparison.get("b"))
    matrix = build_matrix(tiers_a, tiers_b, comparison.get("matrix") or [])
    changed = _changed(comparison.get("changed") or [], matrix)
    return {
        "a": a,
        "b": b,
        "index_version": str(comparison.get("index_version") or "unknown"),
        "as_of": str(comparison.get("as_of") or "unknown"),
        "persons": _int(comparison.get("persons")),
        "generated_at": str(comparison.get("generated_at") or "unknown"),
        "priority_note": PRIORITY_NOTE,
        "matrix": matrix,
        "heatmap": heatmap_svg(matrix, a["policy"], b["policy"]) if matrix.total else None,
        "charts": _charts(comparison.get("by") or {}, a["policy"], b["policy"]),
        "changed": changed,
        "changed_total": max(_int(comparison.get("changed_total")), len(changed)),
        "top_groups": TOP_GROUPS,
        "num": num,
    }


# --- shaping the input ----------------------------------------------------------------------


def _policy(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """Policy, title and run id of one side, with readable stand-ins when absent."""
    raw = raw or {}
    return {
        "policy": str(raw.get("policy") or "unknown policy"),
        "title": str(raw.get("title") or ""),
        "run_id": str(raw.get("run_id") or "unknown"),
    }


def _tiers(raw: Iterable[Mapping[str, Any]] | None) -> list[TierRef]:
    """Tiers in rank order (input order among equal or missing ranks)."""
    ranked = sorted(enumerate(raw or []), key=lambda p: (p[1].get("rank", p[0]), p[0]))
    return [
        TierRef(str(t["id"]), str(t.get("label") or t["id"]), bool(t.get("lead", False)))
        for _, t in ranked
    ]


def _complete(tiers: Sequence[TierRef], ids: Iterable[str]) -> tuple[TierRef, ...]:
    """The tiers plus any id the matrix names that the tier list lacks (shown by its id)."""
    known = {t.id for t in tiers}
    extra = [i for i in dict.fromkeys(ids) if i not in known]
    return (*tiers, *(TierRef(i, i, False) for i in extra))


def build_matrix(
    tiers_a: Sequence[TierRef], tiers_b: Sequence[TierRef], cells: Iterable[Mapping[str, Any]]
) -> Matrix:
    """The full transition table from nonzero cells: absent cells are 0, totals added."""
    counts: dict[tuple[str, str], int] = {}
    for cell in cells:
        key = (str(cell["from"]), str(cell["to"]))
        counts[key] = counts.get(key, 0) + _int(cell.get("count"))
    rows_t = _complete(tiers_a, (k[0] for k in counts))
    cols_t = _complete(tiers_b, (k[1] for k in counts))
    rows = tuple(
        MatrixRow(t, cs, sum(cs))
        for t in rows_t
        for cs in [tuple(counts.get((t.id, u.id), 0) for u in cols_t)]
    )
    col_totals = tuple(sum(r.counts[i] for r in rows) for i in range(len(cols_t)))
    return Matrix(rows, cols_t, col_totals, sum(col_totals))


def top_groups(groups: Iterable[Mapping[str, Any]], limit: int = TOP_GROUPS) -> list[GroupRow]:
    """The ``limit`` largest groups by persons (ties by name), the rest summed as "other"."""
    rows = sorted(
        (
            GroupRow(
                str(g.get("group")),
                _int(g.get("leads_a")),
                _int(g.get("leads_b")),
                _int(g.get("persons")),
            )
            for g in groups
        ),
        key=lambda r: (-r.persons, r.group),
    )
    head, rest = rows[:limit], rows[limit:]
    return [*head, _summed("other", rest, merged=len(rest))] if rest else head


def _summed(name: str, rows: Sequence[GroupRow], merged: int = 0) -> GroupRow:
    """One row adding up ``rows``."""
    return GroupRow(
        name,
        sum(r.leads_a for r in rows),
        sum(r.leads_b for r in rows),
        sum(r.persons for r in rows),
        merged,
    )


def _charts(by: Mapping[str, Any], policy_a: str, policy_b: str) -> list[GroupChart]:
    """One chart per dimension: the three known ones first, then any other the input has."""
    keys = [*DIMENSIONS, *(k for k in by if k not in DIMENSIONS)]
    charts = []
    for i, key in enumerate(keys):
        title = DIMENSIONS.get(key) or str(key).replace("_", " ").capitalize()
        rows = tuple(top_groups(by.get(key) or []))
        svg = bar_chart_svg(rows, title, policy_a, policy_b, f"chart-{i}") if rows else None
        charts.append(GroupChart(str(key), title, rows, _summed("Total", rows), svg))
    return charts


def _changed(raw: Iterable[Mapping[str, Any]], matrix: Matrix) -> list[ChangedPerson]:
    """The changed persons with tier labels looked up and numbers formatted."""
    by_a = {r.tier.id: r.tier for r in matrix.rows}
    by_b = {t.id: t for t in matrix.columns}
    return [
        ChangedPerson(
            person_id=str(p.get("person_id") or "unknown"),
            tier_a=_tier_ref(by_a, p.get("from")),
            tier_b=_tier_ref(by_b, p.get("to")),
            score_a=num(p.get("score_a")),
            score_b=num(p.get("score_b")),
            rules_a=_rules(p.get("rules_a")),
            rules_b=_rules(p.get("rules_b")),
        )
        for p in raw
    ]


def _tier_ref(known: Mapping[str, TierRef], tier_id: Any) -> TierRef:
    """The tier of that id, or a stand-in showing the bare id."""
    tid = str(tier_id or "none")
    return known.get(tid) or TierRef(tid, tid, False)


def _rules(raw: Iterable[Mapping[str, Any]] | None) -> tuple[RuleView, ...]:
    """Rules that fired, as shown in the explanation column."""
    return tuple(
        RuleView(
            str(r.get("id") or ""),
            str(r.get("label") or r.get("id") or ""),
            str(r.get("kind") or "unknown"),
            num(r.get("weight")),
        )
        for r in raw or []
    )


def _int(value: Any) -> int:
    """A count from the input; absent counts are 0."""
    return int(value or 0)


def num(value: Any) -> str:
    """A number for people: thousands separated, whole floats without ``.0``, absent as a dash."""
    if value is None or value == "":
        return "—"
    x = float(value)
    if x.is_integer():
        return f"{int(x):,}"
    return f"{x:,.2f}".rstrip("0").rstrip(".")


# --- SVG --------------------------------------------------------------------------------------


def _luminance(rgb: RGB) -> float:
    """WCAG relative luminance."""
    lin = [(c / 255) / 12.92 if c <= 10 else (((c / 255) + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def ink_on(rgb: RGB) -> str:
    """Black or white, whichever contrasts more with ``rgb`` (always at least 4.5:1)."""
    lum = _luminance(rgb)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def heat_colour(count: int, peak: int) -> RGB:
    """Cell shade: square root of the count's share of the largest cell, light to dark."""
    t = math.sqrt(count / peak) if peak else 0.0
    lo, hi = HEAT_LOW, HEAT_HIGH
    return (
        round(lo[0] + (hi[0] - lo[0]) * t),
        round(lo[1] + (hi[1] - lo[1]) * t),
        round(lo[2] + (hi[2] - lo[2]) * t),
    )


def _hex(rgb: RGB) -> str:
    """``#rrggbb``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


HEAT_LABEL_W, HEAT_CELL_W, HEAT_CELL_H, HEAT_LABEL_CHARS = 160.0, 84.0, 36.0, 22


def heatmap_svg(matrix: Matrix, policy_a: str = "A", policy_b: str = "B") -> Markup:
    """The transition matrix as a heat map: rows A's tiers, columns B's, counts in the cells."""
    longest = max((len(draw.short(t.id, HEAT_LABEL_CHARS)) for t in matrix.columns), default=0)
    top = 34 + longest * 7.2 * math.sin(math.radians(40))
    right = longest * 7.2 * math.cos(math.radians(40))
    width = HEAT_LABEL_W + HEAT_CELL_W * len(matrix.columns) + right
    height = top + HEAT_CELL_H * len(matrix.rows) + 8
    desc = (
        f"Persons by tier under A ({policy_a}, rows) and under B ({policy_b}, columns); "
        "darker cells hold more persons. The table above gives the same numbers."
    )
    parts = [draw.svg_open("heatmap", width, height, "Tier transitions from A to B", desc)]
    parts.append(draw.text(4, 16, "rows: A  ·  columns: B", fill=MUTED_INK, font_size="12"))
    parts += _heat_column_labels(matrix.columns, top)
    parts += _heat_rows(matrix, top)
    parts.append("</svg>")
    return Markup("".join(parts))


def _heat_column_labels(columns: Sequence[TierRef], top: float) -> list[str]:
    """B's tier ids over the columns, slanted so long ids fit."""
    out = []
    for j, tier in enumerate(columns):
        x = HEAT_LABEL_W + HEAT_CELL_W * (j + 0.5)
        label = draw.short(tier.id, HEAT_LABEL_CHARS)
        out.append(draw.text(0, 0, label, transform=f"translate({x:g},{top - 8:g}) rotate(-40)"))
    return out


def _heat_rows(matrix: Matrix, top: float) -> list[str]:
    """A's tier ids down the side and one shaded, numbered cell per count."""
    peak = max((n for r in matrix.rows for n in r.counts), default=0)
    out = []
    for i, row in enumerate(matrix.rows):
        y = top + HEAT_CELL_H * i
        label = draw.short(row.tier.id, HEAT_LABEL_CHARS)
        out.append(draw.text(HEAT_LABEL_W - 8, y + HEAT_CELL_H / 2 + 4, label, text_anchor="end"))
        for j, count in enumerate(row.counts):
            out += _heat_cell(HEAT_LABEL_W + HEAT_CELL_W * j, y, count, peak)
    return out


def _heat_cell(x: float, y: float, count: int, peak: int) -> list[str]:
    """One cell: its shade (grey for 0) and its count in a colour that contrasts with it."""
    rgb = heat_colour(count, peak)
    fill, ink = (_hex(rgb), ink_on(rgb)) if count else (HEAT_ZERO, MUTED_INK)
    cx, cy = x + HEAT_CELL_W / 2, y + HEAT_CELL_H / 2 + 4
    return [
        draw.rect(x + 1, y + 1, HEAT_CELL_W - 2, HEAT_CELL_H - 2, fill),
        draw.text(cx, cy, num(count), text_anchor="middle", fill=ink),
    ]


BAR_WIDTH, BAR_LABEL_W, BAR_VALUE_W, BAR_H, BAR_GAP, BAR_TOP = 560.0, 150.0, 70.0, 12.0, 12.0, 44.0


def bar_chart_svg(
    rows: Sequence[GroupRow], title: str, policy_a: str, policy_b: str, svg_id: str
) -> Markup:
    """Grouped horizontal bars: leads under A over leads under B for each group."""
    height = BAR_TOP + len(rows) * (2 * BAR_H + BAR_GAP) + 8
    desc = (
        f"Leads by {title.lower()} under A ({policy_a}, upper bar of each pair) and "
        f"B ({policy_b}, lower bar). The table below gives the same numbers."
    )
    parts = [draw.svg_open(svg_id, BAR_WIDTH, height, f"Leads by {title.lower()}: A and B", desc)]
    parts += _legend(policy_a, policy_b)
    peak = max((max(r.leads_a, r.leads_b) for r in rows), default=0) or 1
    for i, row in enumerate(rows):
        parts += _bar_pair(row, BAR_TOP + i * (2 * BAR_H + BAR_GAP), peak)
    axis_bottom = height - 8
    parts.append(
        f'<line x1="{BAR_LABEL_W:g}" y1="{BAR_TOP - 4:g}" x2="{BAR_LABEL_W:g}" '
        f'y2="{axis_bottom:g}" stroke="{MUTED_INK}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(policy_a: str, policy_b: str) -> list[str]:
    """Key for the two bar colours, naming each policy."""
    half = BAR_WIDTH / 2
    return [
        draw.rect(4, 8, 14, 14, COLOUR_A),
        draw.text(24, 20, draw.short(f"A: {policy_a}", 36)),
        draw.rect(half, 8, 14, 14, COLOUR_B),
        draw.text(half + 20, 20, draw.short(f"B: {policy_b}", 36)),
    ]


def _bar_pair(row: GroupRow, y: float, peak: int) -> list[str]:
    """The group's name, then its A bar over its B bar."""
    label = draw.short(row.label, 20)
    return [
        draw.text(BAR_LABEL_W - 8, y + BAR_H + 4, label, text_anchor="end"),
        *_bar(row.label, "A", row.leads_a, y, peak, COLOUR_A),
        *_bar(row.label, "B", row.leads_b, y + BAR_H, peak, COLOUR_B),
    ]


def _bar(group: str, side: str, value: int, top: float, peak: int, colour: str) -> list[str]:
    """One bar scaled to the chart's largest value, its side and value written after it."""
    w = (BAR_WIDTH - BAR_LABEL_W - BAR_VALUE_W) * value / peak
    tip = f"{group}: {num(value)} leads under {side}"
    value_text = f"{side} {num(value)}"
    return [
        draw.rect(BAR_LABEL_W, top, w, BAR_H - 1, colour, tip),
        draw.text(BAR_LABEL_W + w + 4, top + BAR_H - 2, value_text, font_size="11"),
    ]
