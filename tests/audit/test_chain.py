"""The audit hash chain detects and locates every kind of tampering, on both backends."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit.chain import GENESIS_HASH, emit, verify
from immigrationos.audit.events import RecordRead, all_event_classes
from immigrationos.core.errors import IntegrityViolation
from immigrationos.gateway.context import system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

N = 10
CTX = system_context(Purpose.STATISTICS, "test")


def _fill(runtime: Runtime, n: int = N) -> None:
    with transaction(runtime.sessions) as session:
        for i in range(n):
            emit(session, RecordRead(object_type="persons", object_ids=[f"P-{i}"]), CTX)


def _sql(runtime: Runtime, statement: str, **params: object) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text(statement), params)


def _verify(runtime: Runtime):
    with transaction(runtime.sessions) as session:
        return verify(session)


def test_an_untouched_chain_verifies(runtime: Runtime) -> None:
    _fill(runtime)
    result = _verify(runtime)
    assert result.ok and result.checked == N
    assert result.head_hash != GENESIS_HASH


def test_a_modified_entry_is_located(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "UPDATE audit_entries SET purpose = 'redress' WHERE seq = 4")
    result = _verify(runtime)
    assert not result.ok
    assert result.first_broken_seq == 4
    assert "modified" in (result.problem or "")


def test_a_deleted_entry_is_located(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "DELETE FROM audit_entries WHERE seq = 6")
    result = _verify(runtime)
    assert not result.ok
    assert result.first_broken_seq == 6
    assert "missing" in (result.problem or "")


def test_removing_the_newest_entries_is_detected_by_the_head(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "DELETE FROM audit_entries WHERE seq > 8")
    result = _verify(runtime)
    assert not result.ok
    assert result.first_broken_seq == 9


def test_an_inserted_entry_is_located(runtime: Runtime) -> None:
    _fill(runtime)
    # Make room after entry 5 (renumbering from the top down to keep the key unique), then
    # insert a forged entry 6 that even links correctly to entry 5 and hashes correctly.
    for seq in range(N, 5, -1):
        _sql(runtime, "UPDATE audit_entries SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    with transaction(runtime.sessions) as session:
        from immigrationos.audit.chain import entry_hash
        from immigrationos.audit.models import AuditEntry

        five = session.get(AuditEntry, 5)
        assert five is not None
        forged = AuditEntry(**{c.name: getattr(five, c.name) for c in AuditEntry.__table__.c})
        forged.seq, forged.id, forged.prev_hash = 6, "aud-forged", five.entry_hash
        forged.object_ids = ["P-innocent"]
        forged.entry_hash = entry_hash(forged.prev_hash, forged)
        session.merge(forged)
    result = _verify(runtime)
    assert not result.ok
    assert result.first_broken_seq == 7  # the first genuine entry after the forgery
    assert "position 6" in (result.problem or "")


def test_a_naively_inserted_entry_is_located_at_itself(runtime: Runtime) -> None:
    _fill(runtime, 5)
    _sql(runtime, "UPDATE audit_entries SET seq = 99 WHERE seq = 5")
    _sql(
        runtime,
        "UPDATE audit_entries SET seq = 5, id = 'aud-x', entry_hash = :h WHERE seq = 99",
        h="f" * 64,
    )
    result = _verify(runtime)
    assert not result.ok and result.first_broken_seq == 5


def test_reordered_entries_are_located(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "UPDATE audit_entries SET seq = 1000 WHERE seq = 3")
    _sql(runtime, "UPDATE audit_entries SET seq = 3 WHERE seq = 7")
    _sql(runtime, "UPDATE audit_entries SET seq = 7 WHERE seq = 1000")
    result = _verify(runtime)
    assert not result.ok
    assert result.first_broken_seq == 3
    assert "position 7" in (result.problem or "")


def test_checkpoint_signature_and_chain_agreement(runtime: Runtime) -> None:
    _fill(runtime)
    key = ckpt.signing_key(runtime.settings)
    with transaction(runtime.sessions) as session:
        document = ckpt.write_checkpoint(session, key, CTX)
    assert document["entries"] == N
    _fill(runtime, 3)  # the chain grows; the checkpoint still holds
    with transaction(runtime.sessions) as session:
        assert ckpt.check_against_chain(session, document, ckpt.public_hex(key)).ok
    forged = json.loads(json.dumps(document)) | {"entries": N - 1}
    with pytest.raises(IntegrityViolation, match="signature"):
        ckpt.check_signature(forged)
    other = ckpt.public_hex(ckpt.Ed25519PrivateKey.generate())
    with pytest.raises(IntegrityViolation, match="different key"):
        ckpt.check_signature(document, other)


def test_checkpoint_detects_a_rewritten_history(runtime: Runtime) -> None:
    _fill(runtime)
    key = ckpt.signing_key(runtime.settings)
    with transaction(runtime.sessions) as session:
        document = ckpt.write_checkpoint(session, key, CTX)
    # A careful forger rewrites entry 2 and recomputes every later hash and the head.
    from immigrationos.audit.chain import entry_hash
    from immigrationos.audit.models import AuditEntry, AuditHead

    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET object_ids = '[\"P-x\"]' WHERE seq = 2"))
    with runtime.sessions() as session, session.begin():
        prev = GENESIS_HASH
        for entry in session.query(AuditEntry).order_by(AuditEntry.seq):
            entry.prev_hash = prev
            entry.entry_hash = entry_hash(prev, entry)
            prev = entry.entry_hash
        head = session.get(AuditHead, 1)
        assert head is not None
        head.entry_hash = prev
    with transaction(runtime.sessions) as session:
        assert verify(session).ok  # the chain alone cannot tell
        check = ckpt.check_against_chain(session, document)
    assert not check.ok and "rewritten" in check.message


def test_refuses_to_sign_a_broken_chain(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "UPDATE audit_entries SET action = 'x' WHERE seq = 2")
    with transaction(runtime.sessions) as session, pytest.raises(IntegrityViolation):
        ckpt.write_checkpoint(session, ckpt.signing_key(runtime.settings), CTX)


def test_every_event_class_is_documented_and_named_once() -> None:
    classes = all_event_classes()
    actions = [c.action for c in classes]
    assert len(actions) == len(set(actions))
    assert all((c.__doc__ or "").strip() for c in classes)


def _read(n: int) -> RecordRead:
    return RecordRead(object_type="persons", object_ids=[f"P-{n}"])


def _head_and_entries(runtime: Runtime) -> tuple[int, list[str]]:
    with runtime.engine.begin() as conn:
        head = conn.execute(text("SELECT seq FROM audit_head")).scalar_one()
        rows = conn.execute(text("SELECT object_ids FROM audit_entries ORDER BY seq")).all()
    return int(head), [json.loads(r[0])[0] if isinstance(r[0], str) else r[0][0] for r in rows]


def test_entries_take_their_place_in_the_chain_at_commit_only(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        for i in range(3):
            emit(session, _read(i), CTX)
        session.flush()  # the entries take their place in the chain at commit, not before
        assert verify(session).checked == 0
    assert _head_and_entries(runtime) == (3, ["P-0", "P-1", "P-2"])
    with pytest.raises(RuntimeError), transaction(runtime.sessions) as session:
        emit(session, _read(9), CTX)
        raise RuntimeError("rolled back")
    assert _head_and_entries(runtime) == (3, ["P-0", "P-1", "P-2"])
    assert _verify(runtime).ok


@pytest.mark.parametrize("before", [0, 2])
def test_a_rolled_back_savepoint_takes_its_entries_and_keeps_the_chain(
    runtime: Runtime, before: int
) -> None:
    with transaction(runtime.sessions) as session:
        for i in range(before):
            emit(session, _read(i), CTX)
        savepoint = session.begin_nested()
        emit(session, _read(100), CTX)
        session.flush()
        emit(session, _read(101), CTX)  # still pending when the savepoint rolls back
        savepoint.rollback()
        savepoint = session.begin_nested()
        emit(session, _read(200), CTX)
        savepoint.commit()
        emit(session, _read(300), CTX)
    expected = [f"P-{i}" for i in range(before)] + ["P-200", "P-300"]
    assert _head_and_entries(runtime) == (len(expected), expected)
    result = _verify(runtime)
    assert result.ok and result.checked == len(expected)
