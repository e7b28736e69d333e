"""The dossier's renderings: one printable HTML page, the same page as PDF, and the JSON.

The HTML is self-contained (inline CSS, no scripts) so an inspector can keep and print it; the
PDF is that page printed, not a second layout that could drift from it; the JSON holds the
same data with sorted keys, so two dossiers compare with ``diff`` and the JSON's SHA-256
identifies a dossier in the audit log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import jinja2

from immigrationos.core.templating import environment

TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE = "dossier.html"
Format = Literal["html", "pdf", "json"]
FORMATS: tuple[Format, ...] = ("html", "pdf", "json")


def _show(value: Any) -> str:
    """A value as a table cell: a dash for nothing, yes/no, JSON for lists and dicts."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _environment() -> jinja2.Environment:
    return environment(TEMPLATE_DIR, (("show", _show),))


def render_html(data: dict[str, Any]) -> str:
    """The dossier as one self-contained, printable HTML page (inline CSS, no scripts)."""
    return _environment().get_template(TEMPLATE).render(d=data)


def render_pdf(html: str) -> bytes:
    """The HTML printed to PDF (WeasyPrint is imported here: slow to load, needs Pango)."""
    import weasyprint

    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")  # the same input gives the same bytes
    return bytes(weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR)).write_pdf())


def render_json(data: dict[str, Any]) -> bytes:
    """The data as indented JSON with sorted keys (what the dossier's SHA-256 is taken of)."""
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def render(data: dict[str, Any], formats: Sequence[Format]) -> dict[str, bytes]:
    """The requested renderings; the HTML is rendered once when both HTML and PDF are asked."""
    outputs: dict[str, bytes] = {}
    if "json" in formats:
        outputs["json"] = render_json(data)
    if "html" in formats or "pdf" in formats:
        html = render_html(data)
        if "html" in formats:
            outputs["html"] = html.encode()
        if "pdf" in formats:
            outputs["pdf"] = render_pdf(html)
    return outputs
