"""Legal documents of the case lifecycle, rendered from filled-in values (pure, no database).

Each document kind is one Jinja2 template beside this module plus one :class:`TemplateSpec`
row below that says which fields it needs. The renderer refuses to produce a document that
lacks a required field, so a defective document never exists even as a draft. Every value
carries its source, shown as a footnote, so a reader can check where each fact came from.
All documents are synthetic look-alikes of real forms and say so on their face.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from immigrationos.core.errors import ValidationFailed

TEMPLATE_DIR = Path(__file__).with_name("templates")
SHARED_FILES = ("base.html.j2", "macros.html.j2", "style.css")


@dataclass(frozen=True)
class Value:
    """One filled-in value and where it came from (shown as a footnote)."""

    label: str
    value: Any  # str | int | date | datetime | list[str] | None
    source: str | None


@dataclass(frozen=True)
class DocumentInput:
    """Everything one document shows; ``draft`` stays True until its action is approved."""

    kind: str
    case_id: str
    person_id: str
    values: dict[str, Value]
    draft: bool
    generated_at: datetime
    issued_by: str | None = None
    approved_by: str | None = None


@dataclass(frozen=True)
class TemplateSpec:
    """What a document kind is and which fields it cannot be issued without."""

    kind: str
    title: str
    form_like: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Rendered:
    """A rendered document; ``sha256`` identifies its content (the PDF when there is one)."""

    kind: str
    template_version: str
    html: str
    pdf: bytes | None
    sha256: str


class DocumentRefused(ValidationFailed):
    """A document cannot be rendered: unknown kind, or required values missing or invalid."""


@dataclass(frozen=True)
class _Row:
    """One field as the template shows it: display text or list items, and its footnote."""

    name: str
    label: str
    text: str
    items: tuple[str, ...] | None
    note: int | None


_NAME = ("family_name", "given_name")
# Required means the document is defective, or unfair to the person, without it.
TEMPLATES: dict[str, TemplateSpec] = {
    spec.kind: spec
    for spec in (
        TemplateSpec(
            "encounter_record", "Record of encounter", "I-213",
            required=(*_NAME, "birth_date", "nationality", "encounter_date", "office", "officer",
                      "narrative"),
            optional=("a_number", "fin", "identifiers", "disposition"),
            description="What happened when an officer met the person, and on what records.",
        ),
        TemplateSpec(
            "notice_to_appear", "Notice to appear", "I-862",
            required=(*_NAME, "a_number", "nationality", "allegations", "charges",
                      "hearing_date", "hearing_time", "hearing_place"),
            optional=("address",),
            description="Starts removal proceedings before an immigration judge.",
        ),
        TemplateSpec(
            "arrest_warrant", "Administrative warrant for arrest", "I-200",
            required=(*_NAME, "birth_date", "nationality", "probable_cause", "requested_by"),
            optional=("a_number", "approved_by_name"),
            description="Authorises an immigration arrest on stated probable cause.",
        ),
        TemplateSpec(
            "detainer", "Immigration detainer – notice of action", "I-247A",
            required=(*_NAME, "birth_date", "nationality", "probable_cause_basis", "facility",
                      "warrant_reference", "release_date"),
            optional=("a_number",),
            description="Asks a facility for notice and a hold of at most 48 hours after release.",
        ),
        TemplateSpec(
            "warrant_of_removal", "Warrant of removal", "I-205",
            required=(*_NAME, "a_number", "nationality", "final_order_basis", "final_order_date",
                      "destination_country"),
            optional=("birth_date",),
            description="Carries out a final order of removal.",
        ),
        TemplateSpec(
            "vd_notice", "Voluntary departure notice", "I-210",
            required=(*_NAME, "departure_deadline"),
            optional=("a_number", "bond_amount", "bond_due_date", "consequences"),
            description="Tells the person by when to leave and what happens if they do not.",
        ),
        TemplateSpec(
            "departure_verification", "Verification of departure", "I-296",
            required=(*_NAME, "departed_at", "port", "evidence"),
            optional=("carrier", "flight", "document_number", "case_outcome"),
            description="Records that, when and how the person left the United States.",
        ),
        TemplateSpec(
            "case_status_notice", "Notice about your case", "",
            required=(*_NAME, "case_state_description", "next_step"),
            optional=("next_deadline", "a_number"),
            description="Tells the person in plain words where the case stands, and their rights.",
        ),
    )
}  # fmt: skip

DETAINER_BASES = (
    "A final order of removal against the person.",
    "Removal proceedings against the person are pending.",
    "Biometric confirmation of identity and a records check of federal databases that "
    "affirmatively indicate the person lacks status or is removable.",
    "Statements by the person to an immigration officer and/or other reliable evidence "
    "that affirmatively indicate the person lacks status or is removable.",
)
"""The only grounds a detainer may cite (modelled on the four boxes of the I-247A)."""

_HEARING = ("hearing_date", "hearing_time", "hearing_place")
_DEFECTIVE_NTA = (
    "A Notice to Appear without hearing date, time and place is defective "
    "(Pereira v. Sessions, 585 U.S. 198 (2018); Niz-Chavez v. Garland, 593 U.S. 155 (2021))."
)


def _spec(kind: str) -> TemplateSpec:
    """Look the kind up, refusing unknown kinds by name rather than with a KeyError."""
    if kind not in TEMPLATES:
        raise DocumentRefused(f"unknown document kind {kind!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[kind]


def _is_empty(value: Any) -> bool:
    """None, a blank string or a list of nothing but blanks cannot fill a required field."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple):
        return all(_is_empty(item) for item in value)
    return value is None


def missing(kind: str, values: Mapping[str, Value]) -> list[str]:
    """Required fields of ``kind`` still absent or empty, so the engine can ask for them."""
    return [f for f in _spec(kind).required if f not in values or _is_empty(values[f].value)]


def _problems(doc: DocumentInput) -> list[str]:
    """Everything wrong with the input, so one refusal can name it all.

    Values the kind does not declare are not a problem: the engine may offer every value it
    knows, and only the declared ones are ever printed.
    """
    problems = [f"missing {', '.join(gaps)}"] if (gaps := missing(doc.kind, doc.values)) else []
    basis = doc.values.get("probable_cause_basis")
    if doc.kind == "detainer" and basis and basis.value not in (None, "", *DETAINER_BASES):
        problems.append("probable_cause_basis is not one of DETAINER_BASES")
    return problems


def _check(doc: DocumentInput) -> TemplateSpec:
    """Refuse incomplete or malformed input; a hearing-less NTA also gets the reason in law."""
    spec = _spec(doc.kind)
    if problems := _problems(doc):
        hearing = set(missing(doc.kind, doc.values)) & set(_HEARING)
        why = f" {_DEFECTIVE_NTA}" if doc.kind == "notice_to_appear" and hearing else ""
        raise DocumentRefused(f"cannot render {doc.kind}: {'; '.join(problems)}.{why}")
    return spec


def _show(value: Any) -> str:
    """Dates the way a reader says them ("21 November 2026"); datetimes always in UTC."""
    if isinstance(value, datetime):
        at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return f"{at.day} {at:%B %Y, %H:%M} UTC"
    if isinstance(value, date):
        return f"{value.day} {value:%B %Y}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _items(value: Any) -> tuple[str, ...] | None:
    """A list value's non-blank entries, each shown as text; None for a single value."""
    if not isinstance(value, list | tuple):
        return None
    return tuple(_show(item) for item in value if not _is_empty(item))


def _rows(spec: TemplateSpec, values: Mapping[str, Value]) -> tuple[list[_Row], list[str]]:
    """Fields in declared order with footnote numbers; one number per distinct source."""
    sources: list[str] = []
    rows = []
    for name in (*spec.required, *spec.optional):
        v = values.get(name)
        if v is None or _is_empty(v.value):
            continue
        if v.source and v.source not in sources:
            sources.append(v.source)
        items = _items(v.value)
        note = sources.index(v.source) + 1 if v.source else None
        rows.append(_Row(name, v.label, _show(v.value), items, note))
    return rows, sources


def template_version(kind: str) -> str:
    """``kind@hash`` of every file the document is made from, so a stored copy names its text."""
    digest = hashlib.sha256()
    for name in (f"{_spec(kind).kind}.html.j2", *SHARED_FILES):
        digest.update((TEMPLATE_DIR / name).read_bytes())
    return f"{kind}@{digest.hexdigest()[:12]}"


@lru_cache(maxsize=4)
def _environment(directory: Path) -> jinja2.Environment:
    """One environment per template folder; strict so a misspelt variable fails loudly."""
    loader = jinja2.FileSystemLoader(directory)
    strict = jinja2.StrictUndefined
    return jinja2.Environment(
        loader=loader, autoescape=True, undefined=strict, trim_blocks=True, lstrip_blocks=True
    )


def _html(doc: DocumentInput, spec: TemplateSpec, version: str) -> str:
    """Fill the kind's template; autoescaping keeps values from becoming markup."""
    rows, sources = _rows(spec, doc.values)
    template = _environment(TEMPLATE_DIR).get_template(f"{doc.kind}.html.j2")
    return template.render(
        doc=doc,
        spec=spec,
        version=version,
        rows=rows,
        field={r.name: r for r in rows},
        notes=list(enumerate(sources, start=1)),
        generated=_show(doc.generated_at),
        detainer_bases=DETAINER_BASES,
    )


def _pdf(html: str) -> bytes:
    """Print the HTML; imported here because WeasyPrint is slow to load and needs Pango."""
    import weasyprint

    # fontTools stamps each embedded font subset with the current time unless this is set;
    # pinning it makes the same input give the same PDF bytes, hence the same sha256.
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    return bytes(weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR)).write_pdf())


def render(doc: DocumentInput, *, pdf: bool = True) -> Rendered:
    """Render ``doc`` to HTML (and PDF); :class:`DocumentRefused` says what is missing."""
    spec = _check(doc)
    version = template_version(doc.kind)
    html = _html(doc, spec, version)
    data = _pdf(html) if pdf else None
    sha = hashlib.sha256(data if data is not None else html.encode()).hexdigest()
    return Rendered(doc.kind, version, html, data, sha)
