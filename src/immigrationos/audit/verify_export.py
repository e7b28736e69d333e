#!/usr/bin/env python3
"""Verify an ImmigrationOS audit export without installing ImmigrationOS.

Usage::

    pip install cryptography
    python verify_export.py EXPORT_DIR --public-key HEX [--checkpoint FILE ...] [--json]

Needs Python 3.9 or newer and one package, ``cryptography`` (for Ed25519). It re-computes every
entry's hash (SHA-256 over the previous entry's hash, a newline and the entry's canonical JSON),
checks that each entry links to the one before it and that entry numbers run without gaps,
compares the end of the chain with the export's manifest, checks the signature of every
checkpoint (the export's own, the ones the system had stored, and any you pass with
``--checkpoint``) and that the chain still holds each checkpointed entry with the signed hash.

Exit status: 0 the export is intact; 1 it is not (the first problem is printed with its entry
number and kind); 2 the input cannot be used (a missing folder, an unreadable manifest, a
malformed key), with a one-line message.

Written by hand on purpose, with the standard library only: it must run where the project is not
installed, so it re-implements the project's canonical JSON (the project's tests prove the two
agree) instead of importing it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EXPORT_FORMAT = "immos-audit-export/1"
CHECKPOINT_FORMAT = "immos-audit-checkpoint/1"
GENESIS_HASH = "0" * 64
MANIFEST, ENTRIES, CHECKPOINT, STORED, PUBLIC_KEY = (
    "manifest.json",
    "entries.jsonl",
    "checkpoint.json",
    "checkpoints.jsonl",
    "public-key.txt",
)

#: The kinds of problem, as printed and as ``--json`` reports them.
MODIFIED = "modified"
DELETED = "deleted"
REORDERED = "inserted-or-reordered"
TRUNCATED = "truncated"
BAD_SIGNATURE = "bad-signature"
NOT_IN_CHAIN = "checkpoint-not-in-chain"
MANIFEST_MISMATCH = "manifest-mismatch"
UNSIGNED = "unsigned-entries"


class Unusable(Exception):
    """The input cannot be verified at all (exit status 2)."""


@dataclass(frozen=True)
class Problem:
    """Something that does not verify, located at an entry number (``seq``)."""

    kind: str
    seq: int
    message: str


@dataclass
class Report:
    """Everything the verifier found."""

    export_dir: str
    first_seq: int
    last_seq: int
    head_hash: str
    key_source: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkpoints_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The problem at the lowest entry number (the first found, on a tie)."""
        return min(self.problems, key=lambda p: p.seq) if self.problems else None


# --- canonical JSON and hashes (must match immigrationos.core.ids / audit.chain) ---


def canonical_json(value: Any) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 kept: the project's canonical JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """The hash an entry must carry, given the hash of the entry before it."""
    text = prev_hash + "\n" + canonical_json(entry)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signed_bytes(document: dict[str, Any]) -> bytes:
    """What a checkpoint's signature covers: the canonical JSON of every other field."""
    return canonical_json({k: v for k, v in document.items() if k != "signature"}).encode("utf-8")


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and _is_hex(value)


def _is_hex(value: str) -> bool:
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- reading the export ---


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Unusable(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Unusable(f"{what} {path} is not readable JSON: {exc}") from None


@dataclass(frozen=True)
class Manifest:
    """The export's description of itself: range, anchor and head."""

    first_seq: int
    last_seq: int
    entries: int
    anchor_seq: int
    anchor_hash: str
    head_hash: str
    generated_at: str
    system: str


def load_manifest(directory: Path) -> Manifest:
    """Read and check the shape of ``manifest.json``; anything malformed is unusable input."""
    data = _read_json(directory / MANIFEST, "manifest")
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise Unusable(f"{directory / MANIFEST}: not an audit export manifest ({found!r})")
    anchor = data.get("anchor")
    fields = {name: data.get(name) for name in ("first_seq", "last_seq", "entries")}
    if not all(_is_int(v) for v in fields.values()) or not isinstance(anchor, dict):
        raise Unusable(f"{directory / MANIFEST}: first_seq, last_seq, entries or anchor missing")
    if not (_is_int(anchor.get("seq")) and _is_hash(anchor.get("hash"))):
        raise Unusable(f"{directory / MANIFEST}: the anchor needs a seq and a 64-hex hash")
    if not _is_hash(data.get("head_hash")):
        raise Unusable(f"{directory / MANIFEST}: head_hash is not a 64-hex hash")
    system = data.get("system")
    if not isinstance(system, dict):
        system = {}
    return Manifest(
        first_seq=data["first_seq"],
        last_seq=data["last_seq"],
        entries=data["entries"],
        anchor_seq=anchor["seq"],
        anchor_hash=anchor["hash"],
        head_hash=data["head_hash"],
        generated_at=str(data.get("generated_at", "")),
        system=f"{system.get('name', '?')} {system.get('version', '?')}",
    )


@dataclass(frozen=True)
class Line:
    """One record of ``entries.jsonl``."""

    number: int
    entry: dict[str, Any]
    prev_hash: str
    entry_hash: str

    @property
    def seq(self) -> int:
        seq: int = self.entry["seq"]
        return seq


def parse_line(number: int, raw: bytes) -> Line:
    """A record, or ValueError saying why the line is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("entry"), dict):
        raise ValueError("no entry object")
    if not _is_int(data["entry"].get("seq")):
        raise ValueError("the entry has no integer seq")
    if not (isinstance(data.get("prev_hash"), str) and isinstance(data.get("entry_hash"), str)):
        raise ValueError("prev_hash or entry_hash missing")
    return Line(number, data["entry"], data["prev_hash"], data["entry_hash"])


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                yield number, raw


def _lines_after(path: Path, number: int) -> Iterator[Line]:
    """Well-formed records after line ``number`` (used only to explain a problem)."""
    for n, raw in _raw_lines(path):
        if n > number:
            try:
                yield parse_line(n, raw)
            except ValueError:
                continue


# --- walking the chain ---


@dataclass
class Walk:
    """How far the chain verified: the last good entry, its hash, and hashes asked for."""

    last_seq: int
    head_hash: str
    count: int = 0
    hashes: dict[int, str] = field(default_factory=dict)
    problem: Problem | None = None


def walk_chain(path: Path, manifest: Manifest, wanted: set[int]) -> Walk:
    """Re-hash and link every entry from the anchor on; stop at the first that does not fit."""
    walk = Walk(manifest.anchor_seq, manifest.anchor_hash)
    for number, raw in _raw_lines(path):
        expected = walk.last_seq + 1
        try:
            line = parse_line(number, raw)
        except ValueError as exc:
            walk.problem = Problem(MODIFIED, expected, f"line {number} is not an entry: {exc}")
            return walk
        walk.problem = diagnose(path, line, expected, walk.head_hash, manifest)
        if walk.problem:
            return walk
        walk.last_seq, walk.head_hash, walk.count = line.seq, line.entry_hash, walk.count + 1
        if line.seq in wanted:
            walk.hashes[line.seq] = line.entry_hash
    return walk


def diagnose(
    path: Path, line: Line, expected: int, prev_hash: str, manifest: Manifest
) -> Problem | None:
    """Why ``line`` does not fit where it stands, or None when it does."""
    if line.seq < expected:
        return Problem(
            REORDERED,
            expected,
            f"line {line.number} holds entry {line.seq} where entry {expected} belongs "
            "(an entry was inserted, duplicated or moved)",
        )
    if line.seq > expected:
        return _gap(path, line, expected)
    if entry_hash(line.prev_hash, line.entry) != line.entry_hash:
        moved = _written_at(path, line, manifest)
        if moved is not None:
            return Problem(
                REORDERED,
                line.seq,
                f"this entry was written at position {moved} (inserted or reordered entries)",
            )
        return Problem(MODIFIED, line.seq, "content does not match its hash (modified)")
    if line.prev_hash != prev_hash:
        return Problem(
            REORDERED,
            line.seq,
            "does not link to the entry before it (an entry was inserted or removed before it)",
        )
    return None


def _gap(path: Path, line: Line, expected: int) -> Problem:
    """Entry numbers jump: moved (the missing ones come later) or deleted (they never do)."""
    if any(expected <= later.seq < line.seq for later in _lines_after(path, line.number)):
        return Problem(
            REORDERED,
            expected,
            f"line {line.number} holds entry {line.seq}, but entry {expected} comes later in "
            "the file (entries reordered)",
        )
    span = (
        f"entry {expected} is"
        if expected == line.seq - 1
        else (f"entries {expected}..{line.seq - 1} are")
    )
    return Problem(DELETED, expected, f"{span} missing (deleted)")


def _written_at(path: Path, line: Line, manifest: Manifest) -> int | None:
    """Where an entry whose hash fails would verify: the position after its real predecessor."""
    before: int | None = manifest.anchor_seq if line.prev_hash == manifest.anchor_hash else None
    if before is None:
        before = next(
            (other.seq for other in _lines_after(path, 0) if other.entry_hash == line.prev_hash),
            None,
        )
    if before is None or before + 1 == line.seq:
        return None
    original = {**line.entry, "seq": before + 1}
    return before + 1 if entry_hash(line.prev_hash, original) == line.entry_hash else None


# --- checkpoints ---


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint document and where it came from (for messages)."""

    label: str
    document: Any

    @property
    def seq(self) -> int | None:
        entries = self.document.get("entries") if isinstance(self.document, dict) else None
        return entries if _is_int(entries) else None


def signature_problem(document: Any, trusted: set[str]) -> str | None:
    """Why a checkpoint's signature cannot be trusted, or None when it holds."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        return "not an audit checkpoint"
    key, signature = document.get("public_key"), document.get("signature")
    if not (isinstance(key, str) and isinstance(signature, str)):
        return "no public key or signature"
    if key not in trusted:
        return f"signed by key {key[:16]}…, which is not a key you trust"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(
            bytes.fromhex(signature), signed_bytes(document)
        )
    except (InvalidSignature, ValueError):
        return "the signature does not verify (the checkpoint was altered or forged)"
    if not (_is_int(document.get("entries")) and isinstance(document.get("head_hash"), str)):
        return "signed, but entries or head_hash is malformed"
    return None


def check_checkpoint(
    checkpoint: Checkpoint, walk: Walk, manifest: Manifest, trusted: set[str]
) -> Problem | str | None:
    """A problem, a note (why it could not be checked), or None when the chain holds it."""
    seq = checkpoint.seq
    reason = signature_problem(checkpoint.document, trusted)
    if reason or seq is None:
        where = seq if seq is not None else manifest.first_seq
        return Problem(BAD_SIGNATURE, where, f"{checkpoint.label}: {reason}")
    signed = checkpoint.document["head_hash"]
    if seq < manifest.anchor_seq:
        return (
            f"{checkpoint.label} ({seq} entries) predates this export, which starts at entry "
            f"{manifest.first_seq}: not checked here; check it against an export that covers it"
        )
    if seq > walk.last_seq:
        if walk.problem:
            return f"{checkpoint.label} ({seq} entries): not checked, the chain breaks before it"
        return Problem(
            TRUNCATED,
            walk.last_seq + 1,
            f"{checkpoint.label} vouches for {seq} entries, but the export ends at entry "
            f"{walk.last_seq} (entries {walk.last_seq + 1}..{seq} were removed)",
        )
    found = manifest.anchor_hash if seq == manifest.anchor_seq else walk.hashes.get(seq)
    if found != signed:
        return Problem(
            NOT_IN_CHAIN,
            seq,
            f"{checkpoint.label}: entry {seq} has hash {str(found)[:16]}… in the export, but the "
            f"checkpoint signed {str(signed)[:16]}… (the history up to it was rewritten)",
        )
    return None


def load_checkpoints(
    directory: Path, given: list[Path]
) -> tuple[Checkpoint | None, list[Checkpoint]]:
    """The export's own checkpoint (None when missing), then the stored and the given ones."""
    own_path = directory / CHECKPOINT
    own = None
    if own_path.exists():
        try:
            own = Checkpoint("the export's signed checkpoint", json.loads(own_path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            own = Checkpoint("the export's signed checkpoint (unreadable)", None)
    others = list(_stored(directory / STORED))
    for path in given:
        document = _read_json(path, "checkpoint")
        if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
            raise Unusable(f"{path}: not an audit checkpoint ({CHECKPOINT_FORMAT})")
        others.append(Checkpoint(f"your checkpoint {path.name}", document))
    return own, others


def _stored(path: Path) -> Iterator[Checkpoint]:
    if not path.exists():
        return
    for number, raw in _raw_lines(path):
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            document = None
        created = document.get("created_at", "?") if isinstance(document, dict) else "?"
        yield Checkpoint(f"stored checkpoint {number} (created {created})", document)


# --- the whole verification ---


def trusted_keys(directory: Path, given: list[str], report: Report) -> set[str]:
    """The keys signatures must come from: the ones given, else (with a warning) the export's."""
    for key in given:
        if not (len(key) == 64 and _is_hex(key)):
            raise Unusable(f"--public-key {key!r} is not a 32-byte Ed25519 key in hex")
    shipped = _shipped_key(directory)
    if given:
        keys = {key.lower() for key in given}
        if shipped and shipped not in keys:
            report.notes.append("the export's public-key.txt differs from the key(s) you gave")
        return keys
    if not shipped:
        raise Unusable(f"no --public-key given and {directory / PUBLIC_KEY} is missing or invalid")
    report.warnings.append(
        "no --public-key given: trusting the key shipped INSIDE this export. That proves only "
        "that the export is consistent with itself, not that the agency signed it. Get the "
        "agency's published audit key and pass it with --public-key."
    )
    return {shipped}


def _shipped_key(directory: Path) -> str | None:
    try:
        key = (directory / PUBLIC_KEY).read_text(encoding="utf-8").strip().lower()
    except (OSError, UnicodeDecodeError):
        return None
    return key if len(key) == 64 and _is_hex(key) else None


def verify(directory: Path, public_keys: list[str], checkpoint_files: list[Path]) -> Report:
    """Verify an export folder; raises :class:`Unusable` when it cannot be verified at all."""
    if not directory.is_dir():
        raise Unusable(f"not a folder: {directory}")
    manifest = load_manifest(directory)
    if not (directory / ENTRIES).is_file():
        raise Unusable(f"entries not found: {directory / ENTRIES}")
    report = Report(str(directory), manifest.first_seq, manifest.last_seq, manifest.head_hash, "")
    trusted = trusted_keys(directory, public_keys, report)
    report.key_source = (
        "given with --public-key"
        if public_keys
        else "FROM THE EXPORT ITSELF (not an independent check, see the warning)"
    )
    own, others = load_checkpoints(directory, checkpoint_files)
    wanted = {c.seq for c in [*others, *([own] if own else [])] if c.seq is not None}
    walk = walk_chain(directory / ENTRIES, manifest, wanted)
    if walk.problem:
        report.problems.append(walk.problem)
    else:
        report.problems.extend(manifest_problems(manifest, walk))
    report.problems.extend(own_checkpoint_problems(own, walk, manifest, trusted))
    for checkpoint in others:
        _record(report, check_checkpoint(checkpoint, walk, manifest, trusted))
    report.checkpoints_checked = len(others) + (1 if own else 0)
    return report


def _record(report: Report, outcome: Problem | str | None) -> None:
    if isinstance(outcome, Problem):
        report.problems.append(outcome)
    elif outcome:
        report.notes.append(outcome)


def manifest_problems(manifest: Manifest, walk: Walk) -> list[Problem]:
    """Does the chain end where, and with the hash, the manifest says?"""
    if walk.last_seq < manifest.last_seq:
        return [
            Problem(
                TRUNCATED,
                walk.last_seq + 1,
                f"the manifest lists entries up to {manifest.last_seq}, but the file ends at "
                f"entry {walk.last_seq} (entries after it were removed)",
            )
        ]
    if walk.last_seq > manifest.last_seq:
        return [
            Problem(
                MANIFEST_MISMATCH,
                manifest.last_seq + 1,
                f"the file has entries after {manifest.last_seq}, the manifest's last entry",
            )
        ]
    problems = []
    if walk.head_hash != manifest.head_hash:
        problems.append(
            Problem(
                MANIFEST_MISMATCH,
                manifest.last_seq,
                f"the manifest's head hash {manifest.head_hash[:16]}… is not the chain's "
                f"{walk.head_hash[:16]}… (the manifest was altered)",
            )
        )
    if manifest.entries != walk.count or manifest.first_seq != manifest.anchor_seq + 1:
        problems.append(
            Problem(
                MANIFEST_MISMATCH,
                manifest.first_seq,
                f"the manifest counts {manifest.entries} entries from {manifest.first_seq}; the "
                f"file has {walk.count} after the anchor at {manifest.anchor_seq}",
            )
        )
    return problems


def own_checkpoint_problems(
    own: Checkpoint | None, walk: Walk, manifest: Manifest, trusted: set[str]
) -> list[Problem]:
    """The export's own checkpoint must exist, verify, be in the chain and cover its end."""
    if own is None:
        return [
            Problem(
                UNSIGNED,
                manifest.first_seq,
                f"the export has no {CHECKPOINT}: nothing signed vouches for its entries",
            )
        ]
    outcome = check_checkpoint(own, walk, manifest, trusted)
    if isinstance(outcome, Problem):
        return [outcome]
    seq = own.seq
    if outcome is None and seq is not None and not walk.problem and seq < walk.last_seq:
        return [
            Problem(
                UNSIGNED,
                seq + 1,
                f"entries {seq + 1}..{walk.last_seq} come after the export's signed head "
                f"(entry {seq}): they were added after signing",
            )
        ]
    return []


# --- output ---


def render(report: Report) -> tuple[str, str]:
    """The text for standard output, and the warnings for standard error."""
    count = max(report.last_seq - report.first_seq + 1, 0)
    lines = [
        "ImmigrationOS audit export verifier",
        f"  export:      {report.export_dir}",
        f"  entries:     {report.first_seq}..{report.last_seq} ({count} entries), "
        f"head {report.head_hash[:16]}…",
        f"  signing key: {report.key_source}",
        f"  checkpoints: {report.checkpoints_checked} read",
    ]
    lines += [f"  note: {note}" for note in report.notes]
    first = report.first
    if first is None:
        lines.append(
            "RESULT: INTACT. Every entry re-hashes, links to the one before it, the manifest's "
            "head matches, and every signed checkpoint is in the chain."
        )
    else:
        lines.append("RESULT: NOT INTACT")
        lines.append(f"  first problem: entry {first.seq}: {first.kind}: {first.message}")
        lines += [
            f"  also: entry {p.seq}: {p.kind}: {p.message}"
            for p in report.problems
            if p is not first
        ]
    warnings = "".join(f"WARNING: {w}\n" for w in report.warnings)
    return "\n".join(lines) + "\n", warnings


def as_json(report: Report) -> str:
    """The report as one JSON object (for scripts)."""
    first = report.first
    return json.dumps(
        {
            "ok": report.ok,
            "export": report.export_dir,
            "first_seq": report.first_seq,
            "last_seq": report.last_seq,
            "head_hash": report.head_hash,
            "key_source": report.key_source,
            "first_problem": asdict(first) if first else None,
            "problems": [asdict(p) for p in report.problems],
            "notes": report.notes,
            "warnings": report.warnings,
        },
        indent=2,
        ensure_ascii=False,
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="verify_export.py",
        description="Verify an ImmigrationOS audit export (hash chain, manifest, signatures).",
        epilog="Exit status: 0 intact, 1 not intact, 2 unusable input.",
    )
    parser.add_argument("export_dir", type=Path, help="the folder the export was written to")
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="HEX",
        help="the agency's Ed25519 audit key (hex); repeat for rotated keys",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a signed checkpoint you received earlier; repeat for several",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the verifier; returns the exit status."""
    args = _arguments(argv)
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
    except ImportError as exc:
        print(
            f"error: this verifier needs one package, cryptography ({exc}): "
            "pip install cryptography",
            file=sys.stderr,
        )
        return 2
    try:
        report = verify(args.export_dir, args.public_key, args.checkpoint)
    except Unusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(as_json(report))
        sys.stderr.write("".join(f"WARNING: {w}\n" for w in report.warnings))
    else:
        out, warnings = render(report)
        sys.stdout.write(out)
        sys.stderr.write(warnings)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
