"""``immos resolve``: build the person index, review uncertain matches, link, export, evaluate.

Batch work (run, train, export) runs as the system account under ``identity-resolution``;
review decisions are a person's: ``--as USER`` names the reviewer, who signs in with a
password (prompted, or ``IMMOS_PASSWORD``), and the decision is audited under their name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import typer
from rich.table import Table

from immigrationos.accounts.service import actor_of, authenticate
from immigrationos.cli.common import console, friendly_errors, kv_table, runtime
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.resolution import review, service
from immigrationos.resolution.evaluate import Truth, evaluate, load_truth
from immigrationos.store.engine import transaction

app = typer.Typer(
    help="Entity resolution: one person index from many records, explained and reviewable.",
    no_args_is_help=True,
)
review_app = typer.Typer(help="The queue of uncertain record pairs.", no_args_is_help=True)
events_app = typer.Typer(help="Merges and splits of the person index.", no_args_is_help=True)
app.add_typer(review_app, name="review")
app.add_typer(events_app, name="events")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON (as the API serves it).")
AS_OPTION = typer.Option(..., "--as", help="The reviewer's username (an analyst).")
PASSWORD_OPTION = typer.Option(
    None, "--password", envvar="IMMOS_PASSWORD", help="Reviewer's password (else prompted)."
)


def _system(job: str) -> AccessContext:
    return system_context(Purpose.IDENTITY_RESOLUTION, f"immos resolve {job}")


def _user_context(username: str, password: str | None, why: str) -> AccessContext:
    secret = password or typer.prompt(f"password for {username}", hide_input=True)
    with runtime() as rt, transaction(rt.sessions) as session:
        user = authenticate(session, username, secret)
        actor = actor_of(user)
    return AccessContext(actor, Purpose.IDENTITY_RESOLUTION, why)


@app.command("run")
@friendly_errors
def run_cmd(
    retrain: bool = typer.Option(
        False, "--retrain", help="Train a new model on the current records and review labels."
    ),
    backend: str = typer.Option(
        None, "--backend", help="duckdb or spark (default: IMMOS_RESOLUTION_BACKEND)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Resolve every person-bearing record into the person index (a new index version)."""
    with runtime() as rt:
        chosen = backend or rt.settings.resolution_backend
        with unit_of_work(rt.sessions, _system("run")) as gw, console.status("resolving") as bar:
            report = service.run(
                gw,
                backend_name=chosen,
                spark_master=rt.settings.spark_master,
                retrain=retrain,
                progress=lambda stage: bar.update(stage),
            )
    summary = report.summary()
    if json_out:
        console.print_json(json.dumps(summary | {"seconds_by_step": report.seconds}))
    else:
        console.print(kv_table("Resolution run", summary))


@app.command("train")
@friendly_errors
def train_cmd(
    truth: Path = typer.Option(
        None, "--truth", help="Truth file (record key, entity id): adds blocking recall."
    ),
    out: Path = typer.Option(None, "--out", help="Also write the model JSON here."),
) -> None:
    """Train a model (EM + review labels) on the current records and store it."""
    from immigrationos.resolution import linking, records

    with runtime() as rt, unit_of_work(rt.sessions, _system("train")) as gw:
        extracted = records.extract(gw)
        with console.status("training"):
            doc = linking.train(records.features(extracted.table), _labels(gw))
        truth_map = _truth_by_record(gw, load_truth(truth)) if truth else None
        doc.blocking_analysis = linking.blocking_analysis(
            records.features(extracted.table), truth_map
        )
        service.store_model(gw, doc)
    if out:
        out.write_text(json.dumps(doc.to_json(), indent=1, sort_keys=True) + "\n")
    console.print(kv_table("Model trained", {"version": doc.version, **doc.training}))
    console.print(_blocking_table(doc.blocking_analysis))


def _labels(gw: Any) -> list[tuple[str, str, float]]:
    must, cannot = service.decided_pairs(gw)
    return [(a, b, 1.0) for a, b in must] + [(a, b, 0.0) for a, b in cannot]


def _truth_by_record(gw: Any, truth: Truth) -> dict[str, str]:
    """Truth keyed by source record id (via ``source:record_key`` or the plain key)."""
    out = {}
    for record_id, source_id, key, _person in service.export_rows(gw, include_unlinked=True):
        entity = truth.entity_of.get(f"{source_id}:{key}") or truth.entity_of.get(key)
        if entity is not None:
            out[record_id] = entity
    return out


def _blocking_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("rule", "pairs (marginal)", "pairs (cumulative)", "recall (cumulative)")
    for r in rows:
        recall = r.get("cumulative_recall")
        table.add_row(
            r["rule"],
            f"{r['marginal_pairs']:,}",
            f"{r['cumulative_pairs']:,}",
            "—" if recall is None else f"{recall:.4f}",
        )
    return table


@app.command("status")
@friendly_errors
def status_cmd(json_out: bool = JSON_OPTION) -> None:
    """The latest runs (person-index versions) and the model each used."""
    with runtime() as rt, unit_of_work(rt.sessions, _system("status")) as gw:
        runs = service.recent_runs(gw)
    if json_out:
        console.print_json(json.dumps(runs, default=str))
        return
    table = Table("run", "model", "backend", "finished", "records", "persons", "status")
    for r in runs:
        table.add_row(
            r["id"], r["model_id"], r["backend"], str(r["finished_at"] or "—"),
            f"{r['records']:,}", f"{r['persons']:,}", r["status"],
        )  # fmt: skip
    console.print(table)


@app.command("person")
@friendly_errors
def person_cmd(person_id: str, json_out: bool = JSON_OPTION) -> None:
    """A person's golden record: each value with its record, source and date; conflicts shown."""
    with runtime() as rt, unit_of_work(rt.sessions, _system("person")) as gw:
        view = review.person_view(gw, person_id)
    if json_out:
        console.print_json(json.dumps(view, default=str))
        return
    if view["redirected"]:
        console.print(f"[yellow]{person_id} was merged; showing {view['person_id']}[/]")
    table = Table("attribute", "value", "from (source / record)", "support", "conflicting values")
    for name, entry in view["golden"].items():
        if not isinstance(entry, dict):
            continue
        conflicts = ", ".join(
            f"{c['value']} ({c['source_id']}, {c['support']})" for c in entry["conflicts"]
        )
        table.add_row(
            name, str(entry["value"]), f"{entry['source_id']} / {entry['record_key']}",
            str(entry["support"]), conflicts or "—",
        )  # fmt: skip
    console.print(table)
    links = Table("record", "linked by", "match weight", "model")
    for link in view["links"]:
        weight = link["match_weight"]
        links.add_row(
            link["record_id"], link["method"], "—" if weight is None else f"{weight:.1f}",
            link["model_version"] or "—",
        )  # fmt: skip
    console.print(links)


@app.command("export")
@friendly_errors
def export_cmd(
    out: Path = typer.Option(..., "--out", help="CSV file: source, record_key, person_id."),
) -> None:
    """Write each source record's key with its person id."""
    import pyarrow.csv as pacsv

    with runtime() as rt, unit_of_work(rt.sessions, _system("export")) as gw:
        rows = service.export_rows(gw)
    table = pa.table(
        {
            "source": [r[1] for r in rows],
            "record_key": [r[2] for r in rows],
            "person_id": [r[3] for r in rows],
        }
    )
    pacsv.write_csv(table, out)
    console.print(f"wrote {len(rows):,} records to {out}")


@app.command("evaluate")
@friendly_errors
def evaluate_cmd(
    truth: Path = typer.Option(..., "--truth", help="CSV/Parquet/JSONL: record key, entity id."),
    cultures: Path = typer.Option(
        None, "--cultures", help="Optional file: entity id → name_culture (per-culture rates)."
    ),
    json_path: Path = typer.Option(None, "--json", help="Also write the result as JSON here."),
) -> None:
    """Score the current person index against a truth file (pairwise, B-cubed, per culture)."""
    loaded = load_truth(truth)
    if cultures:
        loaded = _with_cultures(loaded, load_truth_cultures(cultures))
    with runtime() as rt, unit_of_work(rt.sessions, _system("evaluate")) as gw:
        rows = service.export_rows(gw)
    predicted: dict[str, str] = {}
    for _record, source, key, person in rows:
        if person is not None:
            predicted[key] = person
            predicted[f"{source}:{key}"] = person
    result = evaluate({k: v for k, v in predicted.items() if k in loaded.entity_of}, loaded)
    console.print(result.table())
    if result.cultures:
        console.print(result.culture_table())
    if json_path:
        json_path.write_text(json.dumps(result.to_json(), indent=1) + "\n")
        console.print(f"wrote {json_path}")


def load_truth_cultures(path: Path) -> dict[str, str]:
    """Entity id → name culture, from a file with ``entity_id`` (or ``person_id``) and
    ``name_culture``."""
    import duckdb

    reader = "read_parquet" if path.suffix in {".parquet", ".pq"} else "read_csv"
    con = duckdb.connect()
    try:
        table = con.sql(f"SELECT * FROM {reader}($p)", params={"p": str(path)}).to_arrow_table()
    except duckdb.Error as exc:
        raise ValidationFailed(f"{path}: cannot read cultures: {exc}") from exc
    cols = set(table.column_names)
    entity = next((c for c in ("entity_id", "person_id") if c in cols), None)
    if entity is None or "name_culture" not in cols:
        raise ValidationFailed(f"{path}: needs entity_id (or person_id) and name_culture columns")
    return dict(
        zip(
            [str(v) for v in table.column(entity).to_pylist()],
            [str(v) for v in table.column("name_culture").to_pylist()],
            strict=True,
        )
    )


def _with_cultures(truth: Truth, culture_of_entity: dict[str, str]) -> Truth:
    keys = list(truth.entity_of)
    entities = [truth.entity_of[k] for k in keys]
    return Truth.from_columns(
        keys, entities, [culture_of_entity.get(e) for e in entities], origin=truth.origin
    )


@app.command("link")
@friendly_errors
def link_cmd(
    record: Path = typer.Argument(..., help="JSON file with one record's person attributes."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Link one new record (a fresh encounter, say) to the index without a full run."""
    raw = json.loads(record.read_text())
    with runtime() as rt, unit_of_work(rt.sessions, _system("link")) as gw:
        decision = service.link_record(gw, raw)
    if json_out:
        console.print_json(json.dumps(decision))
    else:
        console.print(
            kv_table("Link decision", {k: v for k, v in decision.items() if k != "explanation"})
        )


# -- review queue -----------------------------------------------------------------------------


@review_app.command("list")
@friendly_errors
def review_list(
    limit: int = typer.Option(50, help="How many."),
    status: str = typer.Option("open", help="open or decided."),
) -> None:
    """Uncertain pairs waiting for a decision (or decided ones)."""
    with runtime() as rt, unit_of_work(rt.sessions, _system("review list")) as gw:
        rows = [
            (f"{r.match_weight:.1f}", r.record_l, r.record_r, r.decision or "—", r.id)
            for r in review.open_reviews(gw, limit, status)
        ]
    table = Table("match weight", "record", "record", "decision")
    table.add_column("review", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@review_app.command("show")
@friendly_errors
def review_show(review_id: str, json_out: bool = JSON_OPTION) -> None:
    """Both records side by side, with each comparison's contribution to the match weight."""
    with runtime() as rt, unit_of_work(rt.sessions, _system("review show")) as gw:
        view = review.show(gw, review_id).to_json()
    if json_out:
        console.print_json(json.dumps(view, default=str))
        return
    side = Table("field", view["left"]["source_id"], view["right"]["source_id"])
    for f in view["fields"]:
        side.add_row(f["field"], str(f["left"] or "—"), str(f["right"] or "—"))
    console.print(side)
    parts = Table("comparison", "level", "weight")
    for c in view["contributions"]:
        parts.add_row(c["comparison"], c["level"], f"{c['weight'] + c['tf_adjustment']:+.2f}")
    console.print(parts)
    console.print(
        f"match weight {view['match_weight']:+.2f} "
        f"(probability {view['match_probability']}); status {view['status']}"
    )


@review_app.command("decide")
@friendly_errors
def review_decide(
    review_id: str,
    decision: str = typer.Argument(..., help="match, non-match or unsure"),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the decision)."),
    username: str = AS_OPTION,
    password: str = PASSWORD_OPTION,
) -> None:
    """Decide a pair; match and non-match bind every later run (must-link / cannot-link)."""
    ctx = _user_context(username, password, f"review {review_id}")
    with runtime() as rt, unit_of_work(rt.sessions, ctx) as gw:
        review.decide(gw, review_id, decision, reason)
    console.print(f"{review_id}: {decision} (recorded for {username})")


# -- events -----------------------------------------------------------------------------------


@events_app.command("list")
@friendly_errors
def events_list(
    needs_review: bool = typer.Option(False, "--needs-review", help="Only splits holding cases."),
) -> None:
    """Created, merged and split persons, newest first."""
    with runtime() as rt, unit_of_work(rt.sessions, _system("events")) as gw:
        rows = [
            (e.kind, e.person_id, ", ".join(e.related_ids) or "—", ", ".join(e.case_ids) or "—",
             "yes" if e.needs_review and not e.reviewed_at else "", e.id)
            for e in review.events(gw, needs_review)
        ]  # fmt: skip
    table = Table("kind", "person", "related", "cases", "needs review")
    table.add_column("event", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@events_app.command("review")
@friendly_errors
def events_review(
    event_id: str, username: str = AS_OPTION, password: str = PASSWORD_OPTION
) -> None:
    """Mark a split reviewed and lift the identity hold on its cases."""
    ctx = _user_context(username, password, f"review person event {event_id}")
    with runtime() as rt, unit_of_work(rt.sessions, ctx) as gw:
        released = review.review_event(gw, event_id)
    console.print(f"{event_id}: reviewed; {released} case(s) released")
