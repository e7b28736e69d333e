"""Ed25519-signed checkpoints of the audit chain.

A checkpoint says "the chain had N entries and entry N's hash was H", signed with the
agency's audit key. An outside auditor keeps it; later, any export of the log must still
contain an entry N with hash H, or entries were rewritten since. The format is plain JSON
(``immos-audit-checkpoint/1``) so it can be checked without this project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from immigrationos.audit.chain import emit, hash_at, verify
from immigrationos.audit.events import CheckpointWritten
from immigrationos.audit.models import AuditCheckpoint
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ConfigurationError, IntegrityViolation
from immigrationos.core.ids import canonical_json, new_id
from immigrationos.core.settings import Settings
from immigrationos.gateway.context import AccessContext

FORMAT = "immos-audit-checkpoint/1"
KEY_FILE = Path("keys") / "audit-ed25519.key"


def generate_key(path: Path) -> Ed25519PrivateKey:
    """Create a new signing key file (hex seed, owner-readable only)."""
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key.private_bytes_raw().hex() + "\n")
    path.chmod(0o600)
    return key


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The audit signing key: configured, or the key file; created only in demo mode."""
    configured = settings.audit_signing_key.get_secret_value()
    if configured:
        return _key_from_hex(configured, "IMMOS_AUDIT_SIGNING_KEY")
    path = settings.data_dir / KEY_FILE
    if path.exists():
        return _key_from_hex(path.read_text().strip(), str(path))
    if settings.is_demo:
        return generate_key(path)
    raise ConfigurationError(
        f"no audit signing key: set IMMOS_AUDIT_SIGNING_KEY or run `immos audit keygen` "
        f"(expected {path})"
    )


def _key_from_hex(text: str, where: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
    except ValueError as exc:
        raise ConfigurationError(f"{where}: not a 32-byte Ed25519 seed in hex") from exc


def public_hex(key: Ed25519PrivateKey) -> str:
    """The raw public key, hex-encoded, as checkpoints carry it."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _signed_part(document: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in document.items() if k != "signature"}).encode()


def write_checkpoint(
    session: Session, key: Ed25519PrivateKey, ctx: AccessContext | None
) -> dict[str, Any]:
    """Verify the chain, sign its head, store and audit the checkpoint, and return it."""
    result = verify(session)
    if not result.ok:
        raise IntegrityViolation(f"refusing to sign a broken chain: {result.describe()}")
    # One clock reading for the signed text and the stored row, so the document can be rebuilt
    # from the row (exports do) with the very bytes that were signed.
    now = utcnow()
    document: dict[str, Any] = {
        "format": FORMAT,
        "entries": result.head_seq,
        "head_hash": result.head_hash,
        "created_at": now.isoformat(timespec="seconds"),
        "public_key": public_hex(key),
    }
    document["signature"] = key.sign(_signed_part(document)).hex()
    session.add(
        AuditCheckpoint(
            id=new_id("ckp"),
            created_at=now,
            entries=document["entries"],
            head_hash=document["head_hash"],
            public_key=document["public_key"],
            signature=document["signature"],
        )
    )
    emit(session, CheckpointWritten(entries=result.head_seq, head_hash=result.head_hash), ctx)
    return document


@dataclass(frozen=True)
class CheckpointCheck:
    """Whether a checkpoint's signature holds and the chain still contains its head."""

    ok: bool
    message: str


def check_signature(document: dict[str, Any], expected_public_key: str | None = None) -> None:
    """Raise :class:`IntegrityViolation` unless the checkpoint is well-formed and signed."""
    if document.get("format") != FORMAT:
        raise IntegrityViolation(f"not an audit checkpoint (format {document.get('format')!r})")
    public = document["public_key"]
    if expected_public_key and public != expected_public_key:
        raise IntegrityViolation("checkpoint is signed by a different key than the one expected")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(
            bytes.fromhex(document["signature"]), _signed_part(document)
        )
    except (InvalidSignature, ValueError) as exc:
        raise IntegrityViolation("checkpoint signature does not verify") from exc


def check_against_chain(
    session: Session, document: dict[str, Any], expected_public_key: str | None = None
) -> CheckpointCheck:
    """Check a checkpoint's signature, then that the live chain still agrees with it."""
    try:
        check_signature(document, expected_public_key)
    except IntegrityViolation as exc:
        return CheckpointCheck(False, str(exc))
    stored = hash_at(session, int(document["entries"]))
    if stored != document["head_hash"]:
        return CheckpointCheck(
            False,
            f"entry {document['entries']} no longer has the checkpointed hash "
            "(entries up to the checkpoint were rewritten or removed)",
        )
    result = verify(session)
    if not result.ok:
        return CheckpointCheck(False, result.describe())
    return CheckpointCheck(
        True, f"checkpoint of {document['entries']} entries holds; chain now has {result.checked}"
    )


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint file."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise IntegrityViolation(f"{path}: not a readable checkpoint: {exc}") from exc
    return data
