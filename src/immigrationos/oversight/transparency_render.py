"""The transparency report's outputs: CSV (long form), JSON, one self-contained HTML page with
SVG bar charts drawn here (with the SVG primitives of :mod:`immigrationos.core.svg`), and PDF
printed from that page by WeasyPrint.

Every function takes a :class:`~immigrationos.oversight.transparency.TransparencyReport`,
which holds published values only: a withheld entry is None, shown as the marker, left empty
in CSV, and drawn without a bar. There is nothing here that could reveal a withheld count.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from immigrationos.core import svg as draw
from immigrationos.core.errors import ValidationFailed
from immigrationos.core.templating import environment
from immigrationos.oversight.transparency import (
    MARKER,
    TOTAL,
    PublishedTable,
    TransparencyReport,
)
from immigrationos.priority import report as charts

FORMATS = ("html", "pdf", "csv", "json")
TEMPLATE = "transparency.html.j2"
TEMPLATE_DIR = Path(__file__).with_name("templates")
COLOUR = charts.COLOUR_A


def to_csv(report: TransparencyReport) -> str:
    """Long form: table, row, column, value, suppressed; a withheld value is left empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "table", "row", "column", "value", "suppressed"])
    for t in report.tables:
        for column, value, row in _entries(t):
            writer.writerow(
                [report.period, t.key, row, column, "" if value is None else value,
                 "true" if value is None else "false"]
            )  # fmt: skip
    return out.getvalue()


def _entries(t: PublishedTable) -> Iterable[tuple[str, int | None, str]]:
    """(column, value, row) of every published entry, totals included."""
    for i, row in enumerate(t.rows):
        for j, column in enumerate(t.columns):
            yield column, t.cells[i][j], row
        if not t.one_column:
            yield TOTAL, t.row_totals[i], row
    for j, column in enumerate(t.columns):
        yield column, t.column_totals[j], TOTAL
    if not t.one_column:
        yield TOTAL, t.total, TOTAL


def to_json(report: TransparencyReport) -> str:
    """The report as data (what the API serves)."""
    return report.model_dump_json(indent=1)


def shown(value: int | None) -> str:
    """A published value for people: the marker when withheld."""
    return MARKER if value is None else charts.num(value)


BAR_W, LABEL_W, VALUE_W, ROW_H = 620.0, 230.0, 70.0, 22.0


def bar_chart(t: PublishedTable, index: int) -> Markup | None:
    """Row totals as horizontal bars; a withheld total gets no bar, only the marker."""
    values = t.cells if t.one_column else [[v] for v in t.row_totals]
    totals = [row[0] for row in values]
    if not t.rows or not any(totals):
        return None
    peak = max((v for v in totals if v), default=1)
    svg_id = f"chart-{index}"
    height = 12 + ROW_H * len(t.rows)
    desc = (
        f"{t.title}: the total of each row as a bar. Rows marked {MARKER} are withheld and "
        "drawn without a bar. The table gives the same numbers."
    )
    parts = [draw.svg_open(svg_id, BAR_W, height, t.title, desc)]
    for i, (label, value) in enumerate(zip(t.rows, totals, strict=True)):
        y = 6 + ROW_H * i
        parts.append(draw.text(LABEL_W - 8, y + 14, draw.short(label, 32), text_anchor="end"))
        width = 0.0 if not value else (BAR_W - LABEL_W - VALUE_W) * value / peak
        if value:
            tip = f"{label}: {charts.num(value)}"
            parts.append(draw.rect(LABEL_W, y + 3, max(width, 1.0), ROW_H - 6, COLOUR, tip))
        parts.append(draw.text(LABEL_W + width + 4, y + 15, shown(value), font_size="12"))
    parts.append("</svg>")
    return Markup("".join(parts))


def to_html(report: TransparencyReport) -> str:
    """One self-contained page: inline CSS, SVG charts drawn here, no script."""
    template = environment(TEMPLATE_DIR).get_template(TEMPLATE)
    return template.render(
        report=report,
        tables=[(t, bar_chart(t, i)) for i, t in enumerate(report.tables)],
        shown=shown,
        total=TOTAL,
    )


def to_pdf(report: TransparencyReport) -> bytes:
    """The HTML printed by WeasyPrint (A4 landscape, same content)."""
    import weasyprint

    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")  # same input, same bytes
    html = to_html(report)
    return bytes(weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR)).write_pdf())


def render(report: TransparencyReport, fmt: str) -> bytes:
    """The report in one format."""
    if fmt == "html":
        return to_html(report).encode()
    if fmt == "pdf":
        return to_pdf(report)
    if fmt == "csv":
        return to_csv(report).encode()
    if fmt == "json":
        return to_json(report).encode()
    raise ValidationFailed(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def parse_formats(text: str) -> list[str]:
    """``html,pdf,csv`` into a list, refusing unknown formats."""
    wanted = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ValidationFailed(
            f"unknown format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}"
        )
    return list(dict.fromkeys(wanted))


def write(report: TransparencyReport, directory: Path, formats: Sequence[str]) -> list[Path]:
    """Write the report in each format to ``directory``; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = directory / f"transparency-{report.period}.{fmt}"
        path.write_bytes(render(report, fmt))
        paths.append(path)
    return paths


def summary(report: TransparencyReport) -> dict[str, Any]:
    """Per table: rows, columns, withheld entries and the total (or the marker)."""
    return {
        t.key: {
            "rows": len(t.rows),
            "columns": len(t.columns),
            "withheld": t.withheld,
            "total": shown(t.total),
        }
        for t in report.tables
    }
