"""SVG primitives of the charts drawn on the server (no script, no CDN): every chart opens
with a title and a description for assistive technology, and every value is escaped.

Used by the what-if report, the oversight report and the transparency report.
"""

from __future__ import annotations

from markupsafe import escape

INK = "#1a1a1a"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


def svg_open(svg_id: str, width: float, height: float, title: str, desc: str) -> str:
    """Opening tag plus title and description, named for assistive technology."""
    return (
        f'<svg id="{svg_id}" role="img" aria-labelledby="{svg_id}-title {svg_id}-desc" '
        f'viewBox="0 0 {width:g} {height:g}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'font-family="{FONT}" font-size="13" fill="{INK}">'
        f'<title id="{svg_id}-title">{escape(title)}</title>'
        f'<desc id="{svg_id}-desc">{escape(desc)}</desc>'
    )


def text(x: float, y: float, content: str, **attrs: str) -> str:
    """An escaped SVG text element; keyword names use ``_`` for ``-``."""
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{x:g}" y="{y:g}"{extra}>{escape(content)}</text>'


def rect(x: float, y: float, w: float, h: float, fill: str, tip: str = "") -> str:
    """An SVG rect, with an escaped tooltip when ``tip`` is given."""
    inner = f"<title>{escape(tip)}</title>" if tip else ""
    return f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" fill="{fill}">{inner}</rect>'


def short(content: str, limit: int) -> str:
    """``content`` cut to ``limit`` characters with an ellipsis (the tables carry it whole)."""
    return content if len(content) <= limit else content[: limit - 1] + "…"
