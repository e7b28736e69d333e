"""The system dossier: what an inspector needs, generated from the running system.

``immos report dossier`` (and ``GET /api/reports/dossier``) describe the platform as it runs
now, not as someone once wrote it up: the sources and the agreements in force, the matching
models and what is known of their accuracy, the priority policies in force, the lifecycle's
states, transitions and due-process guards, roles and purposes, the audit chain verified at
generation time, the attributes that are absent by design, and one section per EU AI Act
Article 9 to 15 (``ai_act.yaml``: which mechanism meets the requirement, the live numbers,
how to check it, and the known gaps).

This module collects the sections, fills in the mapping's live evidence, renders and audits
the generation. Each group of sections is built by its own module, so a section is changed in
one place: ``dossier_system`` (version, settings, dependencies), ``dossier_sources`` (sources,
agreements, attributes absent by design), ``dossier_matching`` (models, departure matching),
``dossier_rules`` (policies, lifecycle, roles), ``dossier_audit`` (the audit chain and the
counts every section uses), ``ai_act`` (the mapping, validated when loaded: a dossier that
cites something that does not exist is refused rather than generated) and ``dossier_render``.

It reads configuration and aggregates only. Everything comes from the shipped declarative
tables and from tables that hold no personal data (sources, agreements, ingest batches,
models, runs, policies, users' roles, the departure inbox, the audit log). The session is the
runtime's guarded one, so an accidental read of a personal table would raise rather than slip
through. A count the mapping asks of a personal table (``table:`` evidence) goes through the
gateway under ``oversight-audit`` and is audited like any other search.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, func, inspect, select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import User
from immigrationos.audit.chain import emit
from immigrationos.core.errors import ValidationFailed
from immigrationos.core.ids import sha256_hex
from immigrationos.core.settings import Settings
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.table import load_table
from immigrationos.oversight.ai_act import METRIC_NAMES, METRICS, Evidence, Mapping, load_mapping
from immigrationos.oversight.dossier_audit import AuditCounts, audit_section
from immigrationos.oversight.dossier_matching import departures_section, resolution_section
from immigrationos.oversight.dossier_render import FORMATS, Format, render, render_json
from immigrationos.oversight.dossier_rules import lifecycle_section, priority_section, roles_section
from immigrationos.oversight.dossier_sources import (
    permitted_purposes,
    prohibited_section,
    sources_section,
)
from immigrationos.oversight.dossier_system import system_section
from immigrationos.priority.catalogue import PROHIBITED
from immigrationos.store.base import Base, is_personal

# -- the sections -----------------------------------------------------------------------------


def _sections(
    session: Session, settings: Settings, audit: AuditCounts, users: dict[str, str]
) -> dict[str, Any]:
    """Every section built from the running system (the mapping's come after)."""
    d: dict[str, Any] = {"system": system_section(session, settings)}
    d["sources"] = sources_section(session, users)
    d["audit"] = audit_section(session, settings, audit, d["sources"]["sources"])
    d["resolution"] = resolution_section(session, audit, users)
    d["departures"] = departures_section(session)
    d["priority"] = priority_section(session, audit, users)
    d["lifecycle"] = lifecycle_section(audit)
    d["roles"] = roles_section(session, load_table(), permitted_purposes(session))
    d["prohibited"] = prohibited_section(session, d["priority"]["policies"])
    return d


# -- the summary figures ----------------------------------------------------------------------


def _source_metrics(d: dict[str, Any]) -> dict[str, Any]:
    sources = d["sources"]["sources"]
    ingest = [s["ingest"] for s in sources]
    in_force = [s for s in sources if s["agreement"] and s["agreement"]["effective_today"]]
    return {
        "sources.registered": len(sources),
        "sources.shipped": len(d["sources"]["shipped"]),
        "agreements.in_force": len(in_force),
        "agreements.versions": sum(s["agreement_versions"] for s in sources),
        "ingest.batches": sum(i["batches"] for i in ingest),
        "ingest.rows_read": sum(i["read"] for i in ingest),
        "ingest.rows_loaded": sum(i["loaded"] for i in ingest),
        "ingest.rows_quarantined": sum(i["quarantined"] for i in ingest),
        "retention.tombstones": d["audit"]["retention"]["tombstones"],
    }


def _matching_metrics(d: dict[str, Any]) -> dict[str, Any]:
    res, bands = d["resolution"], d["departures"]["bands"]
    return {
        "resolution.models": len(res["models"]),
        "resolution.models_evaluated": sum(1 for m in res["models"] if m["evaluation"]),
        "resolution.runs": res["runs"],
        "resolution.persons": (res["latest_run"] or {}).get("persons", 0),
        "resolution.reviews_decided": sum(res["review_decisions"].values()),
        "departures.events": d["departures"]["events"],
        "departures.verified": bands.get("verified", 0),
        "departures.review": bands.get("review", 0),
        "departures.unmatched": bands.get("unmatched", 0),
        "departures.dead_letters": d["departures"]["dead_letters"],
    }


def _rule_metrics(d: dict[str, Any]) -> dict[str, Any]:
    pri, lc, roles = d["priority"], d["lifecycle"], d["roles"]["roles"]
    return {
        "priority.policies_registered": len(pri["policies"]),
        "priority.policies_in_force": sum(1 for p in pri["policies"] if p["in_force"]),
        "priority.runs": pri["runs"],
        "priority.overrides": sum(pri["overrides"].values()),
        "lifecycle.states": len(lc["states"]),
        "lifecycle.transitions": len(lc["transitions"]),
        "lifecycle.guards": len(lc["guards"]),
        "lifecycle.two_person_steps": len(lc["two_person_steps"]),
        "lifecycle.deadlines": len(lc["deadlines"]),
        "lifecycle.steps_blocked": lc["live"]["steps_blocked"],
        "lifecycle.approvals_decided": sum(lc["live"]["approvals"].values()),
        "roles.count": len(roles),
        "users.active": sum(r["users_active"] for r in roles),
    }


def _audit_metrics(d: dict[str, Any], audit: AuditCounts) -> dict[str, Any]:
    return {
        "audit.entries": d["audit"]["chain"]["entries_checked"],
        "audit.chain_ok": d["audit"]["chain"]["ok"],
        "audit.refusals": audit.by_outcome.get("refused", 0),
        "audit.checkpoints": d["audit"]["checkpoints"],
        "audit.verifications": audit.count(["audit.verified"]),
        "prohibited.attributes": len(PROHIBITED),
        "prohibited.violations": d["prohibited"]["violations"],
    }


def metrics(d: dict[str, Any], audit: AuditCounts) -> dict[str, Any]:
    """Every figure of :data:`~immigrationos.oversight.ai_act.METRICS`, in its order."""
    values = {
        **_source_metrics(d),
        **_matching_metrics(d),
        **_rule_metrics(d),
        **_audit_metrics(d, audit),
    }
    return {name: values[name] for name in METRIC_NAMES}


# -- the mapping's live evidence --------------------------------------------------------------


def _count_statement(table: Table, group_by: str | None) -> Select[Any]:
    """``count(*)`` of ``table``, per value of ``group_by`` when one is given."""
    if group_by is None:
        return select(func.count()).select_from(table)
    column = table.c[group_by]
    return select(column, func.count()).group_by(column).select_from(table)


def _count_rows(
    session: Session, table: Table, stmt: Select[Any], ev: Evidence, requester: str
) -> tuple[list[Any], str]:
    """Run a count, through the gateway when the table holds personal data, and say how."""
    model = next(m.class_ for m in Base.registry.mappers if m.local_table is table)
    if not is_personal(model):
        return list(session.execute(stmt).all()), "direct (no personal data)"
    why = f"system dossier: aggregate count for {requester}"
    gateway = Gateway(session, system_context(Purpose.OVERSIGHT_AUDIT, why))
    params = {"dossier": ev.label, "group_by": ev.group_by}
    return gateway.rows(stmt, model, params=params), "gateway (oversight-audit), audited"


def _table_counts(session: Session, ev: Evidence, requester: str) -> dict[str, Any]:
    """Rows of a table (grouped); a table or column that does not exist yet says so."""
    table = Base.metadata.tables.get(ev.table or "")
    if table is None or not inspect(session.connection()).has_table(table.name):
        return {"available": False, "note": f"table {ev.table!r} does not exist in this system"}
    if ev.group_by and ev.group_by not in table.c:
        return {"available": False, "note": f"table {ev.table!r} has no column {ev.group_by!r}"}
    group_by = ev.group_by or None
    rows, via = _count_rows(session, table, _count_statement(table, group_by), ev, requester)
    if group_by is None:
        return {"available": True, "value": int(rows[0][0]), "via": via}
    groups = {str(k): int(n) for k, n in rows}
    return {"available": True, "value": sum(groups.values()), "groups": groups, "via": via}


def _evidence(
    ev: Evidence, figures: dict[str, Any], audit: AuditCounts, session: Session, requester: str
) -> dict[str, Any]:
    """One piece of evidence with its live value (or why it is not available)."""
    if ev.metric:
        value, source = figures[ev.metric], f"metric {ev.metric}"
        return {"label": ev.label, "available": True, "value": value, "from": source}
    if ev.audit:
        value, source = audit.count(ev.audit), "audit log: " + ", ".join(ev.audit)
        return {"label": ev.label, "available": True, "value": value, "from": source}
    return {"label": ev.label, "from": f"table {ev.table}", **_table_counts(session, ev, requester)}


def _articles(
    mapping: Mapping, d: dict[str, Any], audit: AuditCounts, session: Session, requester: str
) -> list[dict[str, Any]]:
    """Articles 9 to 15 in order, each with its evidence filled in."""
    out = []
    for a in sorted(mapping.articles, key=lambda x: x.article):
        spec = a.model_dump(mode="json", exclude={"evidence"})
        spec["evidence"] = [
            _evidence(e, d["metrics"], audit, session, requester) for e in a.evidence
        ]
        out.append(spec)
    return out


def _companions(mapping: Mapping, audit: AuditCounts) -> list[dict[str, Any]]:
    """The companion reports and tools, each with how often it was used."""
    return [
        {**c.model_dump(mode="json"), "audit_entries": audit.count(c.audit) if c.audit else None}
        for c in mapping.companions
    ]


# -- collection and generation ----------------------------------------------------------------


def collect(
    session: Session, settings: Settings, requester: AccessContext, mapping: Mapping | None = None
) -> dict[str, Any]:
    """The dossier's data: configuration and aggregates only, JSON-ready."""
    mapping = mapping or load_mapping()
    who = requester.actor.username
    users = dict(session.execute(select(User.id, User.username)).all())
    audit = AuditCounts(session)
    d = _sections(session, settings, audit, users)
    d["metrics"] = metrics(d, audit)
    d["metric_labels"] = dict(METRICS)
    d["regulation"] = mapping.regulation.model_dump(mode="json")
    d["companions"] = _companions(mapping, audit)
    d["articles"] = _articles(mapping, d, audit, session, who)
    d["system"]["requested_by"] = {
        "username": who,
        "role": requester.actor.role.value,
        "purpose": requester.purpose.value,
    }
    return json.loads(json.dumps(d, default=str))


@dataclass(frozen=True)
class Dossier:
    """A generated dossier: its data and the requested renderings."""

    data: dict[str, Any]
    outputs: dict[str, bytes]

    @property
    def sha256(self) -> str:
        """The SHA-256 of the data's JSON rendering: what the audit entry records."""
        return sha256_hex(render_json(self.data).decode())


def parse_formats(text: str) -> list[Format]:
    """``html,pdf,json`` (any subset, any order) as a list; unknown names are refused."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        choose = ", ".join(FORMATS)
        raise ValidationFailed(
            f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {choose}"
        )
    return [n for n in FORMATS if n in names]


def generate(
    session: Session, settings: Settings, ctx: AccessContext, formats: Sequence[Format]
) -> Dossier:
    """Collect, render the requested formats, and audit the generation (caller's transaction)."""
    from immigrationos.audit.events import DossierGenerated

    data = collect(session, settings, ctx)
    dossier = Dossier(data, render(data, formats))
    chain = data["audit"]["chain"]
    event = DossierGenerated(
        formats=list(formats),
        sha256=dossier.sha256,
        chain_ok=chain["ok"],
        entries_checked=chain["entries_checked"],
    )
    emit(session, event, ctx)
    return dossier
