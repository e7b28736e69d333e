"""Read models of persons: the search (name, identifier, status, office) and the person page.

Both read only through the gateway, so each search is one audited ``records.searched`` entry
carrying its parameters and result count, and each value a purpose may not see is replaced by
a note naming the agreement and purpose that hide it.

Name search reuses the resolution package's name keys (:mod:`immigrationos.resolution.names`):
folded tokens (accents and punctuation gone), the Wikidata name symbols shared by
transliterations and nicknames (Mohammed/Muhammad, William/Bill), metaphone codes; and
rapidfuzz's Jaro-Winkler for plain misspellings, as the matching model's comparisons do. The
person index keeps no name keys in the database, so the names of the persons the other
filters allow are read (audited as the search's candidate step) and ranked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from rapidfuzz.distance import JaroWinkler
from sqlalchemy import ColumnElement, Select, func, or_, select

from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.departures.models import Departure
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.facts import office_scope
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase
from immigrationos.oversight.models import DisputedFact, RedressRequest
from immigrationos.persons.models import Identifier, Person, StatusEpisode
from immigrationos.resolution import names, review
from immigrationos.resolution.golden import CORRECTION_SOURCE
from immigrationos.sources.models import SourceRecord

MAX_RESULTS = 100
#: A spelling is close enough to count (Jaro-Winkler similarity of folded tokens).
SPELLING = 0.88
#: The person columns that cache golden-record values, by golden attribute.
COLUMNS = {
    "given_name": "given_name",
    "middle_name": "middle_name",
    "family_name": "family_name",
    "birth_date": "birth_date",
    "sex": "sex",
    "nationality": "nationality",
}
#: Roles that may read a person's tier and score, under the prioritization purpose.
PRIORITY_ROLES = frozenset({"analyst", "officer", "supervisor"})


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


# -- what a purpose may see --------------------------------------------------------------------


def withheld_sources(gw: Gateway) -> dict[str, str]:
    """Sources the purpose may not read, each with the agreement's reason."""
    return gw.agreements.permitted_sources(gw.ctx)[1]


def _readable_sources(gw: Gateway) -> list[str]:
    """Sources a sub-query may read: permitted, and needing no per-request disclosure (those
    are read only record by record through the gateway's own scope)."""
    allowed, _ = gw.agreements.permitted_sources(gw.ctx)
    return [s for s in allowed if not gw.agreements.terms[s].per_request]


def _hidden_reason(gw: Gateway, source_id: str | None, attribute: str) -> str | None:
    """Why the purpose may not see ``attribute`` as ``source_id`` gave it (None: it may).

    A value corrected under redress (source ``redress``) is the agency's own decision, not a
    source's record: every purpose that may see the person sees it."""
    if not source_id or source_id == CORRECTION_SOURCE:
        return None
    decision = gw.agreements.decide(source_id, gw.ctx)
    if not decision.allowed:
        return f"withheld under purpose {gw.ctx.purpose.value!r}: {decision.reason}"
    terms = gw.agreements.terms[source_id]
    visible = terms.purpose_fields.get(gw.ctx.purpose.value)
    if visible is not None and attribute not in visible:
        return (
            f"hidden by {terms.label()}: purpose {gw.ctx.purpose.value!r} may see only "
            f"{', '.join(visible)}"
        )
    return None


def visible_golden(gw: Gateway, golden: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The golden record's values the purpose may see (with provenance and the conflicting
    values it may see), and each hidden attribute with the agreement and purpose hiding it."""
    shown: dict[str, Any] = {}
    hidden: dict[str, str] = {}
    for attribute, entry in golden.items():
        if not isinstance(entry, dict):
            continue
        reason = _hidden_reason(gw, entry.get("source_id"), attribute)
        if reason:
            hidden[attribute] = reason
            continue
        conflicts = entry.get("conflicts", [])
        seen = [c for c in conflicts if not _hidden_reason(gw, c.get("source_id"), attribute)]
        shown[attribute] = {
            **entry,
            "conflicts": seen,
            "conflicts_withheld": len(conflicts) - len(seen),
        }
    return shown, hidden


# -- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    """What a search asks for; empty fields are not used."""

    name: str = ""
    identifier: str = ""
    status: str = ""
    office: str = ""
    limit: int = 25

    def params(self) -> dict[str, Any]:
        """The parameters the audit entry records."""
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}

    @property
    def empty(self) -> bool:
        return not (self.name.strip() or self.identifier.strip() or self.status or self.office)


@dataclass(frozen=True)
class NameMatch:
    """How well one person's name matches the query, and in which ways."""

    score: float
    reasons: tuple[str, ...]


def _tokens(text: str | None) -> tuple[str, ...]:
    return names.tokens(text)


def _part(query: tuple[str, ...], candidate: tuple[str, ...], tag: str) -> tuple[float, str | None]:
    """How one name part (given or family) compares: same, variant, spelling, sound, none."""
    if not query or not candidate:
        return 0.0, None
    if set(query) & set(candidate) or "".join(query) == "".join(candidate):
        return 1.0, "same after folding accents and punctuation"
    if set(names.symbols(query, tag)) & set(names.symbols(candidate, tag)):
        return 0.9, "a transliteration or nickname of the same name"
    similarity = max(JaroWinkler.similarity(a, b) for a in query for b in candidate)
    if similarity >= SPELLING:
        return 0.85 * similarity, f"a spelling variant (similarity {similarity:.2f})"
    sounds = {names.phonetic(t) for t in query} & {names.phonetic(t) for t in candidate}
    if sounds - {""}:
        return 0.6, "sounds alike"
    return 0.0, None


def _readings(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Ways to read a typed name as (given, family): "Family, Given" or either order."""
    if "," in text:
        family, given = text.split(",", 1)
        return [(_tokens(given), names.surname_tokens(_tokens(family)))]
    parts = _tokens(text)
    if len(parts) < 2:
        return [((), parts), (parts, ())]
    return [
        (parts[:-1], names.surname_tokens(parts[-1:])),
        (parts[1:], names.surname_tokens(parts[:1])),
        (parts[:1], names.surname_tokens(parts[1:])),
    ]


def match_name(text: str, given: str | None, middle: str | None, family: str | None) -> NameMatch:
    """Score a person's name against the typed name (0 when it does not match)."""
    c_given = _tokens(given) + _tokens(middle)
    c_family = names.surname_tokens(_tokens(family))
    best = NameMatch(0.0, ())
    for q_given, q_family in _readings(text):
        if not q_given or not q_family:  # one word: the given or the family name
            word = q_given or q_family
            score, why = max(
                (_part(word, c_family, "family"), _part(word, c_given, "given")),
                key=lambda p: p[0],
            )
            found = NameMatch(score, (f"name: {why}",) if why else ())
        else:
            f_score, f_why = _part(q_family, c_family, "family")
            g_score, g_why = _part(q_given, c_given, "given")
            if not (f_score and g_score):
                continue
            found = NameMatch(
                0.55 * f_score + 0.45 * g_score,
                (f"family name: {f_why}", f"given name: {g_why}"),
            )
        if found.score > best.score:
            best = found
    return best


def identifier_forms(value: str) -> list[str]:
    """The stored forms a typed identifier may have: upper-case, no spaces or dashes; an
    A-number typed with or without its "A" and with 8 or 9 digits."""
    text = "".join(ch for ch in value.upper() if ch.isalnum())
    forms = {text}
    digits = text[1:] if text[:1] == "A" and text[1:].isdigit() else text
    if digits.isdigit() and 8 <= len(digits) <= 9:
        forms |= {f"A{digits}", f"A{digits.zfill(9)}", f"A{digits.lstrip('0').zfill(8)}"}
    return sorted(forms)


def _filters(gw: Gateway, q: SearchQuery) -> list[ColumnElement[bool]]:
    """Conditions on persons for the identifier, status and office of the query.

    Sub-queries over sourced tables read only the sources the purpose permits, as the
    gateway's own scope does (the audit entry lists the sources left out).
    """
    readable = _readable_sources(gw)
    where: list[ColumnElement[bool]] = [Person.status == "active", Person.merged_into_id.is_(None)]
    if q.identifier.strip():
        stored = func.upper(func.replace(func.replace(Identifier.value, "-", ""), " ", ""))
        where.append(
            Person.id.in_(
                select(Identifier.person_id).where(
                    stored.in_(identifier_forms(q.identifier)),
                    or_(Identifier.source_id.in_(readable), Identifier.source_id.is_(None)),
                )
            )
        )
    if q.status:
        status = q.status.strip()
        where.append(
            or_(
                func.lower(Person.citizenship_status) == status.lower(),
                Person.id.in_(
                    select(StatusEpisode.person_id).where(
                        func.lower(StatusEpisode.status) == status.lower(),
                        or_(
                            StatusEpisode.source_id.in_(readable),
                            StatusEpisode.source_id.is_(None),
                        ),
                    )
                ),
                Person.id.in_(
                    select(EnforcementCase.person_id).where(
                        EnforcementCase.state == status.upper().replace(" ", "_").replace("-", "_")
                    )
                ),
            )
        )
    if q.office:
        where.append(
            Person.id.in_(
                select(EnforcementCase.person_id).where(
                    func.lower(EnforcementCase.office) == q.office.strip().lower()
                )
            )
        )
    return where


def _check_office(gw: Gateway, q: SearchQuery) -> None:
    """An office-bound actor may search the cases of their own office only."""
    own = office_scope(gw)
    if q.office and own and q.office.strip().lower() != own.lower():
        raise Refused(
            f"{gw.ctx.actor.username} works for the {own} office and may not search the "
            f"cases of {q.office!r}",
            "search",
            "cases",
            [],
            gw.ctx,
        )


def _rank_names(gw: Gateway, q: SearchQuery, where: list[ColumnElement[bool]]) -> dict[str, Any]:
    """Candidate persons by name: read their names (audited), keep and rank the matches."""
    rows = gw.rows(
        select(Person.id, Person.given_name, Person.middle_name, Person.family_name).where(*where),
        Person,
        params={**q.params(), "step": "name candidates"},
    )
    scored = [(match_name(q.name, r[1], r[2], r[3]), r[0]) for r in rows]
    kept = sorted(((m, pid) for m, pid in scored if m.score > 0), key=lambda p: -p[0].score)
    return {pid: m for m, pid in kept[: q.limit]}


def search(gw: Gateway, q: SearchQuery) -> dict[str, Any]:
    """Persons matching the query, best first, with the fields the purpose may see.

    The final read is one gateway search: its audit entry holds the parameters and the
    number of persons returned.
    """
    if q.empty:
        raise ValidationFailed("give a name, an identifier, a status or an office to search by")
    limit = max(1, min(q.limit, MAX_RESULTS))
    q = SearchQuery(q.name.strip(), q.identifier.strip(), q.status, q.office, limit)
    _check_office(gw, q)
    where = _filters(gw, q)
    matches: dict[str, NameMatch] = {}
    if q.name:
        matches = _rank_names(gw, q, where)
        where = [Person.id.in_(list(matches))]
    stmt: Select[Any] = select(Person).where(*where).order_by(Person.family_name, Person.id)
    persons = gw.select(stmt.limit(limit), Person, params=q.params())
    if q.name:
        persons.sort(key=lambda p: -matches[p.id].score)
    return {
        "query": q.params(),
        "count": len(persons),
        "results": [_result(gw, p, matches.get(p.id)) for p in persons],
        "withheld_sources": withheld_sources(gw),
    }


def _result(gw: Gateway, person: Person, match: NameMatch | None) -> dict[str, Any]:
    _, hidden = visible_golden(gw, person.golden or {})
    fields = {
        column: None if attribute in hidden else _iso(getattr(person, column))
        for attribute, column in COLUMNS.items()
    }
    name = " ".join(
        v for v in (fields["given_name"], fields["middle_name"], fields["family_name"]) if v
    )
    return {
        "id": person.id,
        "name": name or None,
        **fields,
        "citizenship_status": person.citizenship_status,
        "score": round(match.score, 3) if match else None,
        "match": list(match.reasons) if match else [],
        "hidden_fields": {k: v for k, v in hidden.items() if k in COLUMNS},
    }


# -- the person page ---------------------------------------------------------------------------


def person_page(gw: Gateway, person_id: str) -> dict[str, Any]:
    """Everything the person page shows: golden record with provenance, linked records with
    their match explanation, identifiers, statuses, cases and their timeline, departures,
    redress requests and the priority tier when the purpose allows it."""
    view = review.person_view(gw, person_id)
    pid = view["person_id"]
    person = gw.get(Person, pid)
    golden, hidden = visible_golden(gw, view["golden"] or {})
    redress = _redress(gw, pid)
    links = _links(gw, view["links"], view["golden"] or {})
    identifiers = _identifiers(gw, pid)
    _mark_disputed(redress, links, identifiers)
    return {
        "person_id": pid,
        "requested_id": person_id,
        "redirected": view["redirected"],
        "status": view["status"],
        "citizenship_status": person.citizenship_status,
        "index_version": view["index_version"],
        "golden": golden,
        "hidden_fields": hidden,
        "withheld_sources": withheld_sources(gw),
        "links": links,
        "identifiers": identifiers,
        "status_episodes": _episodes(gw, pid),
        "cases": _cases(gw, pid),
        "departures": _departures(gw, pid),
        "redress": redress,
        "priority": priority_summary(gw, pid),
    }


def _record_sources(golden: Mapping[str, Any]) -> dict[str, str]:
    """Record id → source id, as the golden record's provenance names them."""
    out: dict[str, str] = {}
    for entry in golden.values():
        if isinstance(entry, dict):
            for e in (entry, *entry.get("conflicts", [])):
                if e.get("record_id") and e.get("source_id"):
                    out[e["record_id"]] = e["source_id"]
    return out


def _links(
    gw: Gateway, links: list[dict[str, Any]], golden: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Linked records the purpose may read with their match explanation; the others say why."""
    ids = [link["record_id"] for link in links]
    readable = {
        r.id: r
        for r in gw.select(
            select(SourceRecord).where(SourceRecord.id.in_(ids)),
            SourceRecord,
            params={"linked_records_of": "person", "records": len(ids)},
        )
    }
    known = _record_sources(golden)
    withheld = withheld_sources(gw)
    out = []
    for link in links:
        record = readable.get(link["record_id"])
        if record is None:
            source = known.get(link["record_id"])
            reason = withheld.get(source or "", "withheld under this purpose")
            out.append({"record_id": link["record_id"], "source_id": source, "withheld": reason})
            continue
        out.append(
            {
                **link,
                "source_id": record.source_id,
                "record_key": record.record_key,
                "withheld": None,
                "hidden_fields": getattr(record, "hidden_fields", {}),
            }
        )
    return out


def _by_person(
    gw: Gateway, model: Any, person_id: str, order: Iterable[Any], what: str
) -> list[Any]:
    return gw.select(
        select(model).where(model.person_id == person_id).order_by(*order),
        model,
        params={"person_id": person_id, "part": what},
    )


def _identifiers(gw: Gateway, person_id: str) -> list[dict[str, Any]]:
    rows = _by_person(gw, Identifier, person_id, (Identifier.kind, Identifier.value), "identifiers")
    return [
        {
            "id": i.id,
            "kind": i.kind,
            "value": i.value,
            "issuing_country": i.issuing_country,
            "valid_from": _iso(i.valid_from),
            "valid_until": _iso(i.valid_until),
            "source_id": i.source_id,
        }
        for i in rows
    ]


def _episodes(gw: Gateway, person_id: str) -> list[dict[str, Any]]:
    order = (StatusEpisode.started_on, StatusEpisode.id)
    return [
        {
            "status": e.status,
            "basis": e.basis,
            "started_on": _iso(e.started_on),
            "ended_on": _iso(e.ended_on),
            "source_id": e.source_id,
        }
        for e in _by_person(gw, StatusEpisode, person_id, order, "status episodes")
    ]


def _cases(gw: Gateway, person_id: str) -> list[dict[str, Any]]:
    """The person's cases with their timeline; another office's cases only say whose they are."""
    cases = _by_person(gw, EnforcementCase, person_id, (EnforcementCase.created_at,), "cases")
    own = office_scope(gw)
    shown = [c for c in cases if not (own and c.office and c.office != own)]
    events: dict[str, list[dict[str, Any]]] = {c.id: [] for c in shown}
    if shown:
        for e in gw.select(
            select(CaseEvent)
            .where(CaseEvent.case_id.in_(list(events)))
            .order_by(CaseEvent.case_id, CaseEvent.seq),
            CaseEvent,
            params={"person_id": person_id, "part": "case timeline"},
        ):
            events[e.case_id].append(
                {
                    "at": _iso(e.at),
                    "kind": e.kind,
                    "action": e.action,
                    "from_state": e.from_state,
                    "to_state": e.to_state,
                }
            )
    return [
        {
            "id": c.id,
            "office": c.office,
            "state": c.state if c.id in events else None,
            "custody": c.custody if c.id in events else None,
            "opened_at": _iso(c.created_at),
            "closed_at": _iso(c.closed_at),
            "timeline": events.get(c.id, []),
            "hidden": None
            if c.id in events
            else f"a case of the {c.office} office; {gw.ctx.actor.username} works for {own}",
        }
        for c in cases
    ]


def _departures(gw: Gateway, person_id: str) -> list[dict[str, Any]]:
    order = (Departure.occurred_at, Departure.id)
    return [
        {
            "id": d.id,
            "channel": d.channel,
            "occurred_at": _iso(d.occurred_at),
            "port": d.port,
            "carrier": d.carrier,
            "flight": d.flight,
            "match_band": d.match_band,
            "match_probability": d.match_probability,
            "review_status": d.review_status,
            "source_id": d.source_id,
        }
        for d in _by_person(gw, Departure, person_id, order, "departures")
    ]


def _redress(gw: Gateway, person_id: str) -> list[dict[str, Any]]:
    """Redress flags: which facts are disputed (each as "kind table/row: status") and where
    each request stands, not the claim itself."""
    order = (RedressRequest.filed_at,)
    requests = _by_person(gw, RedressRequest, person_id, order, "redress")
    marks = _by_person(gw, DisputedFact, person_id, (DisputedFact.marked_at,), "disputed facts")
    return [
        {
            "id": r.id,
            "status": r.decision or r.status,
            "disputed": [_mark(f) for f in marks if f.request_id == r.id],
            "facts": [
                {"id": f.id, "kind": f.kind, "table": f.table_name, "row_id": f.row_id,
                 "record_id": f.record_id, "field": f.field, "status": f.status}
                for f in marks if f.request_id == r.id
            ],
            "filed_at": _iso(r.filed_at),
            "decided_at": _iso(r.decided_at),
        }
        for r in requests
    ]  # fmt: skip


def _mark_disputed(
    redress: list[dict[str, Any]], links: list[dict[str, Any]], identifiers: list[dict[str, Any]]
) -> None:
    """Mark linked records and identifiers disputed under a request (``disputed``: the
    request and the fact's status), so the page shows them beside the values."""
    marks: dict[tuple[str, str], str] = {}
    for request in redress:
        for f in request["facts"]:
            marks[(f["kind"], f["row_id"])] = f"{f['status']} under {request['id']}"
    for link in links:
        link["disputed"] = marks.get(("record_link", link["record_id"]))
    for identifier in identifiers:
        identifier["disputed"] = marks.get(("identifier", identifier["id"]))


def _mark(fact: DisputedFact) -> str:
    """One disputed fact as the person page names it (no values)."""
    what = f"{fact.kind} {fact.field}" if fact.field else fact.kind
    return f"{what} ({fact.table_name} {fact.row_id}): {fact.status}"


def priority_summary(gw: Gateway, person_id: str) -> dict[str, Any]:
    """The person's current tier and score if the purpose and role may read them, else why not."""
    from immigrationos.priority import service, views

    explanation = f"/api/priority/persons/{person_id}"
    if gw.ctx.actor.role.value not in PRIORITY_ROLES:
        reason = f"the role {gw.ctx.actor.role.value!r} does not read priority scores"
        return {"readable": False, "reason": reason, "explanation": None}
    if gw.ctx.purpose is not Purpose.ENFORCEMENT_PRIORITIZATION:
        reason = (
            f"tier and score are read under the purpose "
            f"{Purpose.ENFORCEMENT_PRIORITIZATION.value!r}; you work under "
            f"{gw.ctx.purpose.value!r}"
        )
        return {"readable": False, "reason": reason, "explanation": explanation}
    try:
        policy = service.in_force(gw)
        score = views.current_score(gw, person_id, policy.id)
    except NotFound as exc:
        return {"readable": False, "reason": str(exc), "explanation": explanation}
    return {
        "readable": True,
        "policy": policy.id,
        "tier": score.tier,
        "score": score.score,
        "actionable": score.actionable,
        "run_id": score.run_id,
        "explanation": explanation,
    }
