"""The state diagram, generated from the lifecycle table so the documentation cannot drift.

``docs/lifecycle.md`` holds the Mermaid text between two markers; a test regenerates it and
compares, and ``immos lifecycle diagram --write`` rewrites it after the table changes.
"""

from __future__ import annotations

from pathlib import Path

from immigrationos.lifecycle.table import OPEN, LifecycleTable, load_table

BEGIN = "<!-- BEGIN GENERATED: lifecycle diagram (immos lifecycle diagram --write) -->"
END = "<!-- END GENERATED: lifecycle diagram -->"


def mermaid(table: LifecycleTable | None = None) -> str:
    """A Mermaid ``stateDiagram-v2`` of every state-changing transition of the table.

    Transitions allowed from any open state are drawn once from a pseudo-state "any open
    state"; computed ones are labelled so; a step needing approval carries a ✓✓ mark.
    """
    table = table or load_table()
    lines = ["stateDiagram-v2", f"    [*] --> {table.initial}"]
    lines += ['    state "any open state" as ANY_OPEN']
    seen: set[tuple[str, str, str]] = set()
    for t in table.transitions.values():
        if t.to is None or (t.to.startswith("*") and t.to != "*remembered"):
            continue
        mark = (
            " (computed)" if t.kind == "computed" else " (evidence)" if t.kind == "system" else ""
        )
        mark += " ✓✓" if t.needs_approval else ""
        targets = ["PRIOR_STATE" if t.to == "*remembered" else t.to]
        sources = ["ANY_OPEN"] if t.from_ == OPEN else list(t.from_)
        for src in sources:
            for dst in targets:
                key = (src, dst, t.name)
                if key not in seen:
                    seen.add(key)
                    lines.append(f"    {src} --> {dst}: {t.name}{mark}")
    lines.append('    state "state before the review" as PRIOR_STATE')
    lines += [f"    {s} --> [*]" for s in sorted(table.terminal)]
    return "\n".join(lines) + "\n"


def block(table: LifecycleTable | None = None) -> str:
    """The generated Markdown block, markers included."""
    return f"{BEGIN}\n```mermaid\n{mermaid(table)}```\n{END}"


def write(doc: Path) -> bool:
    """Replace the generated block in ``doc``; True when it changed."""
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + block() + text[end:]
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return new != text


def current(doc: Path) -> str:
    """The generated block as it stands in ``doc``."""
    text = doc.read_text(encoding="utf-8")
    return text[text.index(BEGIN) : text.index(END) + len(END)]
