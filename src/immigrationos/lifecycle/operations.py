"""Enforcement operations: several requested actions approved and carried out together.

An operation is planned by one user and approved by a different supervisor. Approval and
execution go target by target, each re-checked by the guards at that moment: a target that a
guard now blocks drops out with the reason (a stay granted yesterday, a citizenship claim),
and the rest go ahead. Each target runs in a savepoint, so one refusal undoes only itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from immigrationos.accounts.roles import Role
from immigrationos.audit.events import OperationDecided
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import AccessRefused, ImmosError, NotFound, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.lifecycle import service
from immigrationos.lifecycle.models import ActionRequest, EnforcementOperation


def create(
    gw: Gateway,
    *,
    name: str,
    office: str | None,
    planned_for: datetime,
    justification: str,
    targets: list[dict[str, Any]],
    now: datetime | None = None,
) -> tuple[EnforcementOperation, dict[str, str]]:
    """Plan an operation: one request per target (``case_id``, ``action``, ``params``).

    Targets a guard blocks at request are left out and returned with the reason.
    """
    now = now or utcnow()
    if not targets:
        raise ValidationFailed("an operation needs at least one target")
    op = EnforcementOperation(
        id=new_id("opn"),
        name=name,
        office=office,
        planned_for=planned_for,
        status="pending",
        justification=justification,
        requested_by=gw.ctx.actor.user_id,
        requested_at=now,
    )
    gw.add(op)
    refused: dict[str, str] = {}
    for target in targets:
        outcome = _each(
            gw,
            lambda t=target: service.request_action(
                gw,
                t["case_id"],
                t["action"],
                t.get("params", {}),
                justification,
                operation_id=op.id,
                now=now,
            ),
        )
        if isinstance(outcome, str):
            refused[target["case_id"]] = outcome
    gw.update(op, checks={"request": refused})
    return op, refused


def _each(gw: Gateway, fn: Any) -> Any:
    """Run one target in a savepoint: its result, or the refusal's message."""
    savepoint = gw.session.begin_nested()
    try:
        result = fn()
    except ImmosError as exc:
        savepoint.rollback()
        if isinstance(exc, Refused):
            gw._audit(exc.audit_event())
        return str(exc)
    savepoint.commit()
    return result


def get(gw: Gateway, operation_id: str) -> EnforcementOperation:
    try:
        return gw.get(EnforcementOperation, operation_id)
    except NotFound:
        raise NotFound(f"no enforcement operation {operation_id!r}") from None


def requests(gw: Gateway, operation_id: str) -> list[ActionRequest]:
    return gw.select(
        select(ActionRequest).where(ActionRequest.operation_id == operation_id),
        ActionRequest,
        params={"operation": operation_id},
    )


def decide(
    gw: Gateway, operation_id: str, approve: bool, justification: str, now: datetime | None = None
) -> dict[str, str]:
    """A different supervisor approves (each target re-checked) or refuses the operation."""
    now = now or utcnow()
    op = get(gw, operation_id)
    if op.requested_by == gw.ctx.actor.user_id:
        raise AccessRefused("nobody approves their own operation (two-person rule)")
    if gw.ctx.actor.role is not Role.SUPERVISOR:
        raise AccessRefused("only a supervisor approves an enforcement operation")
    if op.status != "pending":
        raise ValidationFailed(f"operation {op.id} is {op.status}")
    dropped: dict[str, str] = {}
    pending = [r for r in requests(gw, op.id) if r.status == "pending"]
    for request in pending:
        outcome = _each(
            gw, lambda r=request: service.decide(gw, r.id, approve, justification, now=now)
        )
        if isinstance(outcome, str):
            dropped[str(request.case_id)] = outcome
    gw.update(
        op,
        status="approved" if approve else "refused",
        decided_by=gw.ctx.actor.user_id,
        decided_at=now,
        checks={**op.checks, "approval": dropped},
    )
    _audit(gw, op, "approved" if approve else "refused", len(pending), dropped)
    return dropped


def execute(gw: Gateway, operation_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Carry out an approved operation: every target re-checked now; blocked ones drop out."""
    now = now or utcnow()
    op = get(gw, operation_id)
    if op.status != "approved":
        raise ValidationFailed(f"operation {op.id} is {op.status}: only an approved one runs")
    done: list[str] = []
    dropped: dict[str, str] = {}
    for request in [r for r in requests(gw, op.id) if r.status == "approved"]:
        outcome = _each(gw, lambda r=request: service.execute(gw, r.id, now=now))
        if isinstance(outcome, str):
            dropped[str(request.case_id)] = outcome
        else:
            done.append(str(request.case_id))
    gw.update(op, status="executed", executed_at=now, checks={**op.checks, "execution": dropped})
    _audit(gw, op, "executed", len(done) + len(dropped), dropped)
    return {"operation": op.id, "done": done, "dropped": dropped}


def _audit(
    gw: Gateway, op: EnforcementOperation, decision: str, targets: int, dropped: dict[str, str]
) -> None:
    gw._audit(
        OperationDecided(
            object_type="enforcement_operations",
            object_ids=[op.id],
            decision=decision,
            targets=targets,
            dropped=dropped,
        )
    )
