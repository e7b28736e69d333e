"""``immos redress``: correction requests about a person's record, their decision, letters.

``file`` and ``status`` are what a representative does (no account: the public intake);
``list``, ``show``, ``link``, ``dispute``, ``decide`` and ``letter`` are the privacy
officer's, under the purpose ``redress`` (``--as privacy``; the password from
``IMMOS_PASSWORD`` or a prompt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from immigrationos.cli.common import (
    JSON_OUT,
    PASSWORD,
    console,
    friendly_errors,
    kv_table,
    print_json,
    run_as,
    runtime,
    signed_in,
)
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import letters, redress, redress_filing, redress_triage

app = typer.Typer(
    help="File, triage and decide correction (redress) requests.", no_args_is_help=True
)
AS = typer.Option("privacy", "--as", help="Who is working (a privacy officer's username).")
WHY = typer.Option("redress request", "--why", help="Why you need this (audited).")


def _ctx(username: str, password: str | None, why: str) -> Any:
    return signed_in(username, password, Purpose.REDRESS, why)


@app.command("file")
@friendly_errors
def file_cmd(
    source: Path | None = typer.Option(
        None, "--from", exists=True, dir_okay=False, help="A filing as JSON (the API's body)."
    ),
    requester: str = typer.Option("", "--requester", help="Your name."),
    contact: str = typer.Option("", "--contact", help="Where the letter goes."),
    authority: str = typer.Option("", "--authority", help="Who you are to the person."),
    a_number: str | None = typer.Option(None, "--a-number", help="The person's A-number."),
    given: str | None = typer.Option(None, "--given", help="The person's given name."),
    family: str | None = typer.Option(None, "--family", help="The person's family name."),
    birth_date: str | None = typer.Option(None, "--birth-date", help="YYYY-MM-DD."),
    items: list[str] = typer.Option(
        [],
        "--item",
        help="KIND or KIND=CORRECT VALUE, repeated; kinds: "
        + ", ".join(redress_filing.FILED_KINDS),
    ),
    statement: str = typer.Option("", "--statement", help="Why the record is wrong."),
    json_out: bool = JSON_OUT,
) -> None:
    """File a correction request (as a representative: no account); prints the reference
    and the one-time tracking code."""
    from immigrationos.api.redress_routes import file_public

    if source is not None:
        data = json.loads(source.read_text(encoding="utf-8"))
    else:
        data = {
            "requester_name": requester, "requester_contact": contact, "authority": authority,
            "a_number": a_number, "given_name": given, "family_name": family,
            "birth_date": birth_date, "statement": statement,
            "items": [_item(i) for i in items],
        }  # fmt: skip
        data = {k: v for k, v in data.items() if v not in (None, "")}
    try:
        filing = redress_filing.Filing.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationFailed(f"the filing is not valid: {problems}") from None
    with runtime() as rt:
        filed = file_public(rt, filing, "cli")
    out = {"reference": filed.reference, "tracking_code": filed.tracking_code}
    if json_out:
        print_json(out)
        return
    console.print(kv_table("Correction request filed", out))
    console.print("Keep the tracking code: it is shown only once (only its hash is stored).")


def _item(text: str) -> dict[str, Any]:
    kind, _, value = text.partition("=")
    return {"kind": kind.strip(), **({"claimed_value": value.strip()} if value.strip() else {})}


@app.command("status")
@friendly_errors
def status_cmd(
    reference: str = typer.Argument(..., help="The request's reference."),
    code: str = typer.Option(..., "--code", prompt=True, hide_input=True, help="Tracking code."),
    json_out: bool = JSON_OUT,
) -> None:
    """Where a request stands, as its requester sees it (reference and tracking code)."""
    from immigrationos.api.redress_routes import status_public

    with runtime() as rt:
        view, _ = status_public(rt, reference, code)
    if json_out:
        print_json(view)
        return
    console.print(kv_table(f"Request {reference}", {
        "filed": view["filed_at"], "status": view["status_words"],
        "reasons": view["reasons"] or "—",
        "letter": f"version {view['letter']['version']}" if view["letter"] else "not yet",
    }))  # fmt: skip


@app.command("list")
@friendly_errors
def list_cmd(
    status: str | None = typer.Option(None, "--status", help="filed, in_review or decided."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """The redress queue, oldest first."""
    rows = run_as(_ctx(username, password, why), redress_triage.queue, status)
    if json_out:
        print_json(rows)
        return
    table = Table("request", "filed", "requester", "disputes", "person", "status")
    for r in rows:
        table.add_row(
            r["id"], r["filed_at"][:16], r["requester_name"], ", ".join(r["kinds"]),
            r["person_id"] or "—", r["decision"] or r["status"],
        )  # fmt: skip
    console.print(table if rows else "No redress request.")


@app.command("show")
@friendly_errors
def show_cmd(
    reference: str = typer.Argument(...),
    facts: bool = typer.Option(False, "--facts", help="Also the linked person's facts to mark."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """A request: the filing, candidates, marked facts, the decision and letters."""

    def read(gw: Any) -> dict[str, Any]:
        data = redress_triage.detail(gw, reference)
        if facts and data["person_id"]:
            data["markable"] = redress_triage.markable(gw, data["person_id"])
        return data

    data = run_as(_ctx(username, password, why), read)
    if json_out:
        print_json(data)
        return
    console.print(kv_table(f"Redress request {reference}", {
        "status": data["decision"] or data["status"], "filed": data["filed_at"],
        "requester": f"{data['requester_name']} ({data['authority']}), "
                     f"{data['requester_contact']}",
        "person (filed)": data["subject"], "person (linked)": data["person_id"] or "—",
        "reasons": data["reasons"] or "—",
    }))  # fmt: skip
    for i, item in enumerate(data["items"]):
        console.print(f"  item {i}: {item['kind']} claimed={item.get('claimed_value') or '—'}")
    for c in data["candidates"]:
        console.print(f"  candidate {c['id']} {c.get('name') or ''} ({c['why']})")
    table = Table("fact", "kind", "row", "field", "claimed", "status", title="Marked facts")
    for f in data["facts"]:
        table.add_row(f["id"], f["kind"], f["row_id"], f["field"] or "", f["claimed_value"] or "",
                      f["status"])  # fmt: skip
    if data["facts"]:
        console.print(table)
    for kind, rows in data.get("markable", {}).items():
        for row in rows:
            console.print(f"  {kind}:{row['row_id']}:{row.get('field') or ''}  {row['label']}")


@app.command("link")
@friendly_errors
def link_cmd(
    reference: str = typer.Argument(...),
    person_id: str = typer.Argument(..., help="The person of the index the request is about."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
) -> None:
    """Link a request to a person (it is then in review)."""
    run_as(_ctx(username, password, why), redress_triage.link, reference, person_id)
    console.print(f"{reference} linked to {person_id}")


def _mark(text: str, item: int | None, claimed: str | None) -> redress_triage.Mark:
    kind, _, rest = text.partition(":")
    row, _, field = rest.partition(":")
    return redress_triage.Mark(kind=kind, row_id=row or None, field=field or None, item=item,
                        claimed_value=claimed)  # fmt: skip


@app.command("dispute")
@friendly_errors
def dispute_cmd(
    reference: str = typer.Argument(...),
    marks: list[str] = typer.Option(
        ...,
        "--mark",
        help="KIND:ROW (record_link:RECORD, identifier:ROW, conviction:ROW, …) or "
        "attribute:[RECORD]:FIELD (no record: every linked record giving it); repeated.",
    ),
    item: int | None = typer.Option(None, "--item", min=0, help="The filed item they answer."),
    claimed: str | None = typer.Option(None, "--claimed", help="The claimed correct value."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """Mark facts of the linked person disputed (out of prioritization and automated
    matching until decided); the policy in force is re-scored."""
    parsed = [_mark(m, item, claimed) for m in marks]
    done = run_as(_ctx(username, password, why), redress_triage.dispute, reference, parsed)
    out = {"facts": done.facts, "rescored": done.rescored}
    if json_out:
        print_json(out)
        return
    console.print(f"{len(done.facts)} facts marked disputed: {', '.join(done.facts)}")
    console.print(f"priorities: {done.rescored}")


@app.command("decide")
@friendly_errors
def decide_cmd(
    reference: str = typer.Argument(...),
    reasons: str = typer.Option(..., "--reasons", help="Why (sent to the requester)."),
    accept: list[str] = typer.Option([], "--accept", help="FACT or FACT=CORRECT VALUE, repeated."),
    reject: list[str] = typer.Option([], "--reject", help="FACT, repeated."),
    accept_all: bool = typer.Option(False, "--accept-all", help="Accept every other fact."),
    reject_all: bool = typer.Option(False, "--reject-all", help="Reject every other fact."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; change nothing."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """Decide a request with reasons: accepted corrections propagate (re-resolution,
    re-scoring, documents as new versions) and a letter is generated."""
    if accept_all and reject_all:
        raise ValidationFailed("--accept-all or --reject-all, not both")
    given = [_verdict(a, "accept") for a in accept] + [_verdict(r, "reject") for r in reject]

    def work(gw: Any) -> dict[str, Any]:
        named = {v.fact_id for v in given}
        rest = "accept" if accept_all else "reject" if reject_all else None
        verdicts = given + [
            redress.Verdict(fact_id=f.id, verdict=rest)
            for f in redress_triage.facts_of(gw, reference)
            if rest and f.status == "disputed" and f.id not in named
        ]
        if dry_run:
            return {"plan": redress.plan_decision(gw, reference, verdicts, reasons).to_json()}
        return redress.decide(gw, reference, verdicts, reasons)

    out = run_as(_ctx(username, password, why), work)
    if json_out:
        print_json(out)
        return
    plan = out["plan"]
    console.print(kv_table(f"{'Plan for' if dry_run else 'Decided'} {reference}", {
        "decision": plan["decision"], "facts": len(plan["facts"]),
        "non-match decisions": len(plan["cannot_links"]),
        "persons re-resolved": ", ".join(plan["reresolve"]) or "none",
        "corrections": ", ".join(c["attribute"] for c in plan["corrections"]) or "none",
        **({"applied": json.dumps(out["applied"], default=str)[:400]} if "applied" in out else {}),
    }))  # fmt: skip


def _verdict(text: str, verdict: str) -> redress.Verdict:
    fact, _, value = text.partition("=")
    return redress.Verdict(fact_id=fact.strip(), verdict=verdict,
                           corrected_value=value.strip() or None)  # fmt: skip


@app.command("letter")
@friendly_errors
def letter_cmd(
    reference: str = typer.Argument(...),
    out: Path | None = typer.Option(None, "--out", help="Write the letter here (PDF or HTML)."),
    html: bool = typer.Option(False, "--html", help="HTML instead of PDF."),
    reissue: bool = typer.Option(False, "--reissue", help="Generate a new version first."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
) -> None:
    """The decision letter of a request (the newest version; ``--reissue`` makes a new one)."""

    def work(gw: Any) -> tuple[int, bytes, str]:
        if reissue:
            letters.issue(gw, redress_triage.get_request(gw, reference))
        letter = letters.latest(gw, reference)
        body = letter.html.encode() if html or letter.pdf is None else bytes(letter.pdf)
        return letter.version, body, letter.content_sha256

    version, body, sha = run_as(_ctx(username, password, why), work)
    target = out or Path(f"redress-{reference}-v{version}.{'html' if html else 'pdf'}")
    target.write_bytes(body)
    console.print(f"letter version {version} ({sha[:16]}…) written to {target}")
