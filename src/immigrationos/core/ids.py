"""Identifiers derived from content, so re-ingesting the same thing is idempotent.

A content id is a short, prefixed SHA-256 over a canonical JSON form of its parts: the same
parts always give the same id, on every machine and database.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not canonicalisable: {type(value).__name__}")


#: ``json.dumps`` with these options builds an encoder on every call (most of the cost of a
#: content id); this one encoder writes the same text.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
)


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no insignificant whitespace, ISO dates, UTF-8 kept."""
    return _CANONICAL.encode(value)


def sha256_hex(data: bytes | str) -> str:
    """Hex SHA-256 of bytes, or of a string encoded as UTF-8."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_id(prefix: str, *parts: Any, length: int = 24) -> str:
    """A stable id such as ``rec-3f2a…`` for the given parts (order matters)."""
    return f"{prefix}-{sha256_hex(canonical_json(list(parts)))[:length]}"


def new_id(prefix: str) -> str:
    """A fresh random id for things that have no natural content (sessions, requests)."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
