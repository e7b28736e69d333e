"""An audit export verifies with the standalone script alone, and every tampering is named.

The verifier runs as an outside auditor would run it: a separate ``python -I`` process on the
copy inside the export folder; one test runs it where ImmigrationOS (and everything but the
standard library and ``cryptography``) cannot be imported at all.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from typer.testing import CliRunner

from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit import export as audit_export
from immigrationos.audit import verify_export as verifier
from immigrationos.audit.chain import _HASHED_FIELDS, GENESIS_HASH, emit, entry_hash, verify
from immigrationos.audit.events import RecordRead, RecordsSearched, RecordUpdated
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import IntegrityViolation, ValidationFailed
from immigrationos.core.ids import canonical_json
from immigrationos.gateway.context import system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.OVERSIGHT_AUDIT, "export test")


@dataclass
class Exported:
    """An export folder and what the test knows about it."""

    out: Path
    key: str
    head_seq: int
    early: dict[str, Any]  # a stored checkpoint made after three entries
    later: dict[str, Any]  # a stored checkpoint made after the demo accounts


def _emit_some(runtime: Runtime, n: int) -> None:
    with transaction(runtime.sessions) as session:
        for i in range(n):
            emit(session, RecordRead(object_type="persons", object_ids=[f"P-{i}"]), CTX)
        emit(
            session,
            RecordsSearched(
                object_type="persons",
                search_params={"name": "Zoë Ångström-Nguyễn 山田", "filters": {"age": [18, None]}},
                result_count=2,
                withheld_sources={"src-x": "agreement forbids «statistics»"},
            ),
            CTX,
        )
        emit(
            session,
            RecordUpdated(object_type="cases", count=3, criteria={"weight": 0.25, "gone": None}),
            CTX,
        )


def _checkpoint(runtime: Runtime) -> dict[str, Any]:
    with transaction(runtime.sessions) as session:
        return ckpt.write_checkpoint(session, ckpt.signing_key(runtime.settings), CTX)


def _build_log(runtime: Runtime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Entries from real services and emit(), with two stored checkpoints along the way."""
    _emit_some(runtime, 1)
    early = _checkpoint(runtime)
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
    later = _checkpoint(runtime)
    _emit_some(runtime, 4)
    return early, later


def _export(runtime: Runtime, out: Path, from_seq: int | None = None) -> audit_export.ExportResult:
    key = ckpt.signing_key(runtime.settings)
    return audit_export.export_audit(runtime.sessions, out, key, CTX, from_seq, batch=4)


@pytest.fixture
def exported(runtime: Runtime, tmp_path: Path) -> Exported:
    early, later = _build_log(runtime)
    result = _export(runtime, tmp_path / "export")
    return Exported(result.out, result.public_key, result.plan.last_seq, early, later)


def run_verifier(
    out: Path, *args: str, script: Path | None = None
) -> tuple[int, dict[str, Any], str]:
    """Run the export's own copy of the verifier as an auditor would (``python -I``)."""
    script = script or out / "verify_export.py"
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(out), "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, report, done.stderr


def first_problem(out: Path, key: str, *args: str) -> tuple[str, int]:
    code, report, _ = run_verifier(out, "--public-key", key, *args)
    assert code == 1, report
    return report["first_problem"]["kind"], report["first_problem"]["seq"]


def _lines(out: Path) -> list[str]:
    return (out / "entries.jsonl").read_text(encoding="utf-8").splitlines()


def _write_lines(out: Path, lines: list[str]) -> None:
    (out / "entries.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return data


def _rehash_from(lines: list[str], start: int, prev: str) -> list[str]:
    """What a careful forger does: recompute every hash from line ``start`` on."""
    fixed = lines[:start]
    for line in lines[start:]:
        record = json.loads(line)
        record["prev_hash"] = prev
        record["entry_hash"] = prev = verifier.entry_hash(prev, record["entry"])
        fixed.append(canonical_json(record))
    return fixed


# --- an intact export ---


def test_an_export_verifies_with_the_copied_script(exported: Exported) -> None:
    out = exported.out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [audit_export.MANIFEST, *audit_export.FILES.values()]
    )
    manifest = _manifest(out)
    assert manifest["format"] == verifier.EXPORT_FORMAT == audit_export.FORMAT
    assert manifest["first_seq"] == 1 and manifest["last_seq"] == exported.head_seq
    assert manifest["entries"] == len(_lines(out)) == exported.head_seq
    assert manifest["anchor"] == {"seq": 0, "hash": GENESIS_HASH}
    assert (out / "public-key.txt").read_text().strip() == exported.key
    assert (out / "verify_export.py").read_bytes() == Path(verifier.__file__).read_bytes()
    stored = [json.loads(line) for line in (out / "checkpoints.jsonl").read_text().splitlines()]
    assert stored == [exported.early, exported.later]  # rebuilt byte for byte from the table
    code, report, stderr = run_verifier(out, "--public-key", exported.key)
    assert code == 0, report
    assert report["ok"] and report["problems"] == [] and report["warnings"] == []
    assert "WARNING" not in stderr


def test_the_export_is_on_the_record(exported: Exported, runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.exported"))
        row = entry.one()
        assert verify(session).ok
    assert row.details["first_seq"] == 1 and row.details["last_seq"] == exported.head_seq
    assert row.details["head_hash"] == _manifest(exported.out)["head_hash"]
    assert row.details["checkpoints"] == 2 and row.details["destination"] == str(exported.out)
    assert row.purpose == "oversight-audit" and row.seq > exported.head_seq


def test_a_stored_checkpoint_rebuilds_with_its_signed_time_across_a_second(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two clock readings a microsecond apart straddle a second: the row must keep the signed one.
    ticks = iter(
        [datetime(2031, 5, 1, 12, 0, 0, 999_999, UTC), datetime(2031, 5, 1, 12, 0, 1, tzinfo=UTC)]
    )
    monkeypatch.setattr(ckpt, "utcnow", lambda: next(ticks))
    document = _checkpoint(runtime)
    with transaction(runtime.sessions) as session:
        row = session.scalars(select(ckpt.AuditCheckpoint)).one()
        assert audit_export.stored_document(row) == document
    assert verifier.signature_problem(document, {document["public_key"]}) is None


def test_without_a_public_key_it_warns_loudly(exported: Exported) -> None:
    code, report, stderr = run_verifier(exported.out)
    assert code == 0
    assert "WARNING" in stderr and "INSIDE this export" in stderr
    assert "FROM THE EXPORT ITSELF" in report["key_source"]


def test_human_output_names_the_first_problem(exported: Exported) -> None:
    lines = _lines(exported.out)
    _write_lines(exported.out, lines[:5] + lines[6:])
    script = exported.out / "verify_export.py"
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(exported.out), "--public-key", exported.key],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "RESULT: NOT INTACT" in done.stdout
    assert "first problem: entry 6: deleted: entry 6 is missing (deleted)" in done.stdout


# --- the verifier needs nothing of ImmigrationOS ---


def test_the_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(Path(verifier.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module
            roots.add(node.module.split(".")[0])
    outside = {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}
    assert outside == {"cryptography"}


def test_the_verifier_runs_where_immigrationos_cannot_be_imported(
    exported: Exported, tmp_path: Path
) -> None:
    # Only cryptography (and its compiled cffi backend) on the path: no site-packages at all.
    import _cffi_backend
    import cryptography

    only = tmp_path / "only-cryptography"
    only.mkdir()
    (only / "cryptography").symlink_to(Path(cryptography.__file__).parent)
    backend = Path(_cffi_backend.__file__)
    (only / backend.name).symlink_to(backend)
    program = f"""
import runpy, sys
sys.path.insert(0, {str(only)!r})
for name in ("immigrationos", "pydantic", "orjson", "sqlalchemy"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"{{name}} is importable: not an isolated environment")
sys.argv = ["verify_export.py", {str(exported.out)!r}, "--public-key", {exported.key!r}]
runpy.run_path({str(exported.out / "verify_export.py")!r}, run_name="__main__")
"""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "")},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RESULT: INTACT" in done.stdout


def test_the_verifier_ships_inside_the_package() -> None:
    assert audit_export.verifier_source() == Path(verifier.__file__).read_bytes()
    assert audit_export.verifier_source().startswith(b"#!/usr/bin/env python3")


# --- every kind of tampering is named, with its entry ---


def test_a_changed_field_is_modified_at_its_entry(exported: Exported) -> None:
    lines = _lines(exported.out)
    record = json.loads(lines[4])
    record["entry"]["actor_name"] = "someone else"
    lines[4] = canonical_json(record)
    _write_lines(exported.out, lines)
    assert first_problem(exported.out, exported.key) == ("modified", 5)


def test_a_malformed_line_is_modified(exported: Exported) -> None:
    lines = _lines(exported.out)
    lines[2] = lines[2][:40]
    _write_lines(exported.out, lines)
    assert first_problem(exported.out, exported.key) == ("modified", 3)


def test_a_deleted_line_is_deleted_at_its_entry(exported: Exported) -> None:
    lines = _lines(exported.out)
    _write_lines(exported.out, lines[:5] + lines[7:])
    code, report, _ = run_verifier(exported.out, "--public-key", exported.key)
    assert code == 1
    assert report["first_problem"]["kind"] == "deleted" and report["first_problem"]["seq"] == 6
    assert "entries 6..7 are missing" in report["first_problem"]["message"]


def test_swapped_lines_are_reordered_at_the_first(exported: Exported) -> None:
    lines = _lines(exported.out)
    lines[2], lines[6] = lines[6], lines[2]
    _write_lines(exported.out, lines)
    assert first_problem(exported.out, exported.key) == ("inserted-or-reordered", 3)


def test_an_inserted_forgery_with_renumbering_is_located(exported: Exported) -> None:
    lines = _lines(exported.out)
    five = json.loads(lines[4])
    forged_entry = {**five["entry"], "seq": 6, "id": "aud-forged", "object_ids": ["P-innocent"]}
    forged = {
        "entry": forged_entry,
        "prev_hash": five["entry_hash"],
        "entry_hash": verifier.entry_hash(five["entry_hash"], forged_entry),
    }
    renumbered = []
    for line in lines[5:]:
        record = json.loads(line)
        record["entry"]["seq"] += 1
        renumbered.append(canonical_json(record))
    _write_lines(exported.out, [*lines[:5], canonical_json(forged), *renumbered])
    code, report, _ = run_verifier(exported.out, "--public-key", exported.key)
    assert code == 1
    first = report["first_problem"]
    assert (first["kind"], first["seq"]) == ("inserted-or-reordered", 7)
    assert "written at position 6" in first["message"]


def test_a_truncated_tail_past_a_checkpoint_is_truncated(exported: Exported) -> None:
    keep = exported.later["entries"] - 2
    _write_lines(exported.out, _lines(exported.out)[:keep])
    code, report, _ = run_verifier(exported.out, "--public-key", exported.key)
    assert code == 1
    assert (report["first_problem"]["kind"], report["first_problem"]["seq"]) == (
        "truncated",
        keep + 1,
    )
    assert any(
        p["kind"] == "truncated" and "stored checkpoint 2" in p["message"]
        for p in report["problems"]
    )


def test_a_truncation_with_a_matching_manifest_is_still_truncated(exported: Exported) -> None:
    keep = exported.later["entries"] - 2
    lines = _lines(exported.out)[:keep]
    _write_lines(exported.out, lines)
    manifest = _manifest(exported.out)
    manifest.update(last_seq=keep, entries=keep, head_hash=json.loads(lines[-1])["entry_hash"])
    (exported.out / "manifest.json").write_text(json.dumps(manifest))
    assert first_problem(exported.out, exported.key) == ("truncated", keep + 1)


def test_a_forged_checkpoint_signature_is_a_bad_signature(exported: Exported) -> None:
    path = exported.out / "checkpoints.jsonl"
    first, second = path.read_text().splitlines()
    forged = json.loads(second)
    forged["entries"] -= 1  # claim a shorter history, keep the old signature
    forged["head_hash"] = json.loads(_lines(exported.out)[forged["entries"] - 1])["entry_hash"]
    path.write_text(first + "\n" + json.dumps(forged) + "\n")
    assert first_problem(exported.out, exported.key) == ("bad-signature", forged["entries"])


def test_a_checkpoint_signed_by_another_key_is_a_bad_signature(exported: Exported) -> None:
    other = ckpt.Ed25519PrivateKey.generate()
    document = {k: v for k, v in exported.later.items() if k != "signature"}
    document["public_key"] = ckpt.public_hex(other)
    document["signature"] = other.sign(canonical_json(document).encode()).hex()
    path = exported.out / "checkpoints.jsonl"
    path.write_text(path.read_text() + json.dumps(document) + "\n")
    kind, seq = first_problem(exported.out, exported.key)
    assert (kind, seq) == ("bad-signature", exported.later["entries"])
    wrong = ckpt.public_hex(other)
    assert first_problem(exported.out, wrong) == ("bad-signature", exported.early["entries"])


def test_a_changed_manifest_head_is_a_manifest_mismatch(exported: Exported) -> None:
    manifest = _manifest(exported.out)
    manifest["head_hash"] = "ab" * 32
    (exported.out / "manifest.json").write_text(json.dumps(manifest))
    assert first_problem(exported.out, exported.key) == ("manifest-mismatch", exported.head_seq)


def test_a_rewritten_history_with_recomputed_hashes_fails_the_checkpoints(
    exported: Exported,
) -> None:
    lines = _lines(exported.out)
    record = json.loads(lines[1])
    record["entry"]["object_ids"] = ["P-someone-else"]
    lines[1] = canonical_json(record)
    lines = _rehash_from(lines, 1, json.loads(lines[0])["entry_hash"])
    _write_lines(exported.out, lines)
    manifest = _manifest(exported.out)
    manifest["head_hash"] = json.loads(lines[-1])["entry_hash"]
    (exported.out / "manifest.json").write_text(json.dumps(manifest))
    kind, seq = first_problem(exported.out, exported.key)
    assert (kind, seq) == ("checkpoint-not-in-chain", exported.early["entries"])


def test_entries_appended_after_signing_are_unsigned(exported: Exported) -> None:
    lines = _lines(exported.out)
    last = json.loads(lines[-1])
    extra_entry = {**last["entry"], "seq": last["entry"]["seq"] + 1, "id": "aud-extra"}
    extra_hash = verifier.entry_hash(last["entry_hash"], extra_entry)
    extra = {"entry": extra_entry, "entry_hash": extra_hash, "prev_hash": last["entry_hash"]}
    _write_lines(exported.out, [*lines, canonical_json(extra)])
    manifest = _manifest(exported.out)
    manifest.update(last_seq=exported.head_seq + 1, entries=exported.head_seq + 1)
    manifest["head_hash"] = extra_hash
    (exported.out / "manifest.json").write_text(json.dumps(manifest))
    assert first_problem(exported.out, exported.key) == ("unsigned-entries", exported.head_seq + 1)


def test_a_missing_export_checkpoint_is_unsigned(exported: Exported) -> None:
    (exported.out / "checkpoint.json").unlink()
    assert first_problem(exported.out, exported.key) == ("unsigned-entries", 1)


def test_an_earlier_checkpoint_catches_a_history_rewritten_in_the_database(
    runtime: Runtime, tmp_path: Path
) -> None:
    _build_log(runtime)
    earlier = _checkpoint(runtime)  # the auditor kept this one
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    # Someone with database access rewrites entry 2, recomputes every hash and the head, and
    # removes the stored checkpoints that would betray it.
    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET object_ids = '[\"P-x\"]' WHERE seq = 2"))
        conn.execute(text("DELETE FROM audit_checkpoints"))
    from immigrationos.audit.models import AuditHead

    with runtime.sessions() as session, session.begin():
        prev = GENESIS_HASH
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
            entry.prev_hash, entry.entry_hash = prev, entry_hash(prev, entry)
            prev = entry.entry_hash
        head = session.get(AuditHead, 1)
        assert head is not None
        head.entry_hash = prev
    result = _export(runtime, tmp_path / "export")
    out = result.out
    assert run_verifier(out, "--public-key", result.public_key)[0] == 0  # self-consistent
    kind, seq = first_problem(
        out, result.public_key, "--checkpoint", str(tmp_path / "earlier.json")
    )
    assert (kind, seq) == ("checkpoint-not-in-chain", earlier["entries"])


# --- partial exports ---


def test_a_partial_export_is_anchored_and_verifies(runtime: Runtime, tmp_path: Path) -> None:
    early, _later = _build_log(runtime)
    start = early["entries"] + 1  # the early checkpoint is the anchor itself
    result = _export(runtime, tmp_path / "partial", from_seq=start)
    manifest = _manifest(result.out)
    with transaction(runtime.sessions) as session:
        from immigrationos.audit.chain import hash_at

        assert manifest["anchor"] == {"seq": start - 1, "hash": hash_at(session, start - 1)}
    assert json.loads(_lines(result.out)[0])["entry"]["seq"] == start
    assert manifest["entries"] == result.plan.last_seq - start + 1
    code, report, _ = run_verifier(result.out, "--public-key", result.public_key)
    assert code == 0, report
    assert report["notes"] == []  # both stored checkpoints were checkable
    (result.out / "partial-anchor.txt").write_text("")  # extra files are ignored
    lines = _lines(result.out)
    _write_lines(result.out, lines[1:])
    assert first_problem(result.out, result.public_key) == ("deleted", start)


def test_a_partial_export_notes_checkpoints_it_cannot_check(
    runtime: Runtime, tmp_path: Path
) -> None:
    _early, later = _build_log(runtime)
    start = later["entries"] + 2
    result = _export(runtime, tmp_path / "partial", from_seq=start)
    code, report, _ = run_verifier(result.out, "--public-key", result.public_key)
    assert code == 0, report
    assert len(report["notes"]) == 2 and all("predates this export" in n for n in report["notes"])
    manifest = _manifest(result.out)
    manifest["anchor"]["hash"] = "cd" * 32  # a different anchor: the first entry no longer links
    (result.out / "manifest.json").write_text(json.dumps(manifest))
    assert first_problem(result.out, result.public_key) == ("inserted-or-reordered", start)


def test_plan_export_ranges() -> None:
    assert audit_export.plan_export(10) == audit_export.ExportPlan(1, 10)
    plan = audit_export.plan_export(10, 4)
    assert (plan.anchor_seq, plan.entries) == (3, 7)
    assert audit_export.plan_export(0).entries == 0
    with pytest.raises(ValidationFailed, match="signed head is entry 10"):
        audit_export.plan_export(10, 11)
    with pytest.raises(ValidationFailed, match="1 or more"):
        audit_export.plan_export(10, 0)


def test_an_empty_log_exports_and_verifies(runtime: Runtime, tmp_path: Path) -> None:
    result = _export(runtime, tmp_path / "empty")
    assert result.plan.entries == 0 and _lines(result.out) == []
    assert run_verifier(result.out, "--public-key", result.public_key)[0] == 0


def test_export_refuses_a_used_folder_and_a_broken_chain(runtime: Runtime, tmp_path: Path) -> None:
    _build_log(runtime)
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("")
    with pytest.raises(ValidationFailed, match="not an empty folder"):
        _export(runtime, used)
    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET purpose = 'redress' WHERE seq = 3"))
    with pytest.raises(IntegrityViolation, match="broken chain"):
        _export(runtime, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with transaction(runtime.sessions) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "audit.exported" not in actions


# --- unusable input: exit 2, a message, no traceback ---


def test_unusable_input_exits_2_with_a_message(exported: Exported, tmp_path: Path) -> None:
    script = exported.out / "verify_export.py"
    code, _, stderr = run_verifier(tmp_path / "nowhere", "--public-key", "ab" * 32, script=script)
    assert code == 2 and "not a folder" in stderr
    code, _, stderr = run_verifier(exported.out, "--public-key", "xyz")
    assert code == 2 and "not a 32-byte Ed25519 key" in stderr
    code, _, stderr = run_verifier(exported.out, "--checkpoint", str(tmp_path / "missing.json"))
    assert code == 2 and "checkpoint not found" in stderr
    (exported.out / "manifest.json").write_text("{not json")
    code, _, stderr = run_verifier(exported.out, "--public-key", exported.key)
    assert code == 2 and "not readable JSON" in stderr
    (exported.out / "manifest.json").unlink()
    code, _, stderr = run_verifier(exported.out)
    assert code == 2 and "manifest not found" in stderr


# --- the command line ---


def test_cli_export_and_verify_export(env_settings: Path, tmp_path: Path) -> None:
    from immigrationos.cli.main import app
    from immigrationos.core.settings import get_settings
    from immigrationos.runtime import open_runtime

    runtime = open_runtime(get_settings())
    try:
        _build_log(runtime)
    finally:
        runtime.close()
    runner = CliRunner()
    out = tmp_path / "cli-export"
    done = runner.invoke(app, ["audit", "export", "--out", str(out), "--batch", "3"])
    assert done.exit_code == 0, done.output
    assert "exported entries 1.." in done.output
    key = (out / "public-key.txt").read_text().strip()
    checked = runner.invoke(app, ["audit", "verify-export", str(out), "--public-key", key])
    assert checked.exit_code == 0, checked.output
    assert "RESULT: INTACT" in checked.output
    partial = runner.invoke(app, ["audit", "export", "-o", str(tmp_path / "p"), "--from-seq", "5"])
    assert partial.exit_code == 0, partial.output
    assert _manifest(tmp_path / "p")["anchor"]["seq"] == 4
    lines = _lines(out)
    _write_lines(out, lines[:3] + lines[4:])
    broken = runner.invoke(app, ["audit", "verify-export", str(out), "--public-key", key])
    assert broken.exit_code == 1 and "entry 4: deleted" in broken.output
    beyond = runner.invoke(app, ["audit", "export", "-o", str(tmp_path / "q"), "--from-seq", "999"])
    assert beyond.exit_code == 1 and "nothing to export" in beyond.output


# --- the verifier's canonical JSON is the project's ---

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)  # the databases' JSON has neither
    | st.text()
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
optional_text = st.none() | st.text()
entries = st.fixed_dictionaries(
    {
        "seq": st.integers(min_value=1, max_value=2**53),
        "id": st.text(min_size=1),
        "at": st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
        ),
        "actor_id": optional_text,
        "actor_name": optional_text,
        "actor_role": optional_text,
        "actor_office": optional_text,
        "purpose": optional_text,
        "justification": optional_text,
        "action": st.text(min_size=1),
        "outcome": st.sampled_from(["ok", "refused"]),
        "object_type": optional_text,
        "object_ids": st.lists(st.text(), max_size=5),
        "search_params": st.none() | st.dictionaries(st.text(), json_values, max_size=4),
        "result_count": st.none() | st.integers(min_value=0, max_value=2**31),
        "details": st.dictionaries(st.text(), json_values, max_size=5),
    }
)


@settings(max_examples=300, deadline=None)
@given(entries, st.binary(min_size=32, max_size=32).map(bytes.hex))
def test_the_verifier_rehashes_exported_entries_exactly(
    values: dict[str, Any], prev_hash: str
) -> None:
    assert set(values) == set(_HASHED_FIELDS)
    row = SimpleNamespace(**values, prev_hash=prev_hash, entry_hash="")
    row.entry_hash = entry_hash(prev_hash, row)
    line = audit_export.export_line(row)
    assert "\n" not in line and verifier.canonical_json(json.loads(line)) == line
    record = json.loads(line)
    assert record["entry"]["at"] == values["at"].astimezone(UTC).isoformat(timespec="microseconds")
    assert verifier.entry_hash(record["prev_hash"], record["entry"]) == record["entry_hash"]
    assert record["entry_hash"] == row.entry_hash


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_verifiers_canonical_json_equals_the_projects(value: Any) -> None:
    assert verifier.canonical_json(value) == canonical_json(value)
    assert verifier.canonical_json(json.loads(canonical_json(value))) == canonical_json(value)
