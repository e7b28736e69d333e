"""The generic engine: what a step would do to a case, and whether the table allows it now.

Pure: it reads a :class:`CaseFacts` and the lifecycle table and returns a :class:`Plan`
(the planned change, every guard's answer, and whether it may go ahead). Nothing here
touches the store; :mod:`immigrationos.lifecycle.service` applies plans inside one
transaction. Tests assert on plans; the audit log keeps each plan's checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from immigrationos.accounts.roles import Role
from immigrationos.lifecycle.facts import CaseFacts
from immigrationos.lifecycle.guards import GUARDS, Check, Step
from immigrationos.lifecycle.table import (
    FINALITY_GUARD,
    LifecycleTable,
    TransitionSpec,
    load_table,
)


@dataclass
class Plan:
    """A step as it would apply to one case now."""

    transition: TransitionSpec
    case_id: str
    from_state: str
    to_state: str
    custody_from: str
    custody_to: str
    params: dict[str, Any]
    checks: list[Check] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def blocked_by(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def evidence(self) -> list[dict[str, Any]]:
        """What the passing guards relied on, by guard."""
        return [{"guard": c.guard, **e} for c in self.checks if c.ok for e in c.evidence]

    def why_not(self) -> str:
        return "; ".join(f"{c.guard}: {c.message}" for c in self.blocked_by)

    def as_dict(self) -> dict[str, Any]:
        t = self.transition
        return {
            "transition": t.name,
            "label": t.label,
            "kind": t.kind,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "custody": {"from": self.custody_from, "to": self.custody_to},
            "allowed": self.allowed,
            "needs_approval": t.needs_approval,
            "approvers": [r.value for r in t.approval.approvers] if t.approval else [],
            "by": [r.value for r in t.by],
            "documents": list(t.documents),
            "params": {k: v.model_dump(exclude_defaults=True) for k, v in t.params.items()},
            "checks": [c.as_dict() for c in self.checks],
            "blocked_by": [c.as_dict() for c in self.blocked_by],
        }


def _state_check(table: LifecycleTable, t: TransitionSpec, facts: CaseFacts) -> Check:
    sources = table.sources(t)
    if facts.state not in sources:
        return Check("state", False, f"not from {facts.state} (only from {', '.join(sources)})")
    if t.custody_from and facts.custody not in t.custody_from:
        return Check(
            "custody", False, f"custody is {facts.custody} (needs {', '.join(t.custody_from)})"
        )
    return Check("state", True, f"from {facts.state}")


def _role_check(t: TransitionSpec, role: Role | None) -> Check | None:
    if role is None or role is Role.SYSTEM:
        return None
    if t.kind == "computed":
        return Check("role", False, "applied by the engine as soon as its guards hold")
    if t.kind == "system":
        return Check("role", False, "recorded by the system from evidence, not by hand")
    if role is Role.SYSTEM or role in t.by:
        return None
    allowed = ", ".join(r.value for r in t.by)
    return Check("role", False, f"role {role.value} may not take this step (only {allowed})")


def plan(
    facts: CaseFacts,
    t: TransitionSpec,
    params: dict[str, Any],
    now: datetime,
    *,
    role: Role | None = None,
    partial: bool = False,
) -> Plan:
    """Plan ``t`` on the case with validated ``params`` at ``now``.

    ``partial`` (for "what can happen next" before any parameters are given) treats a guard
    that needs a missing parameter as not yet decidable rather than failing.
    """
    table = load_table()
    to_state = table.target(t, facts.state, facts.remembered_state)
    custody_to = t.custody_to or t.effects.custody or facts.custody
    result = Plan(t, facts.case_id, facts.state, to_state, facts.custody, custody_to, params)
    result.checks.append(_state_check(table, t, facts))
    role_check = _role_check(t, role)
    if role_check:
        result.checks.append(role_check)
    step = Step(t, params, now)
    guards = table.expand(t.guards)
    if to_state == "FINAL_ORDER" and FINALITY_GUARD not in guards:
        guards += (FINALITY_GUARD,)  # a return to a final order (after a review) proves it again
    for name in guards:
        try:
            result.checks.append(GUARDS[name].check(facts, step))
        except (KeyError, TypeError, ValueError):
            if not partial:
                raise
            result.checks.append(Check(name, True, "checked when the parameters are given"))
    return result


def options(facts: CaseFacts, now: datetime, role: Role | None = None) -> list[Plan]:
    """Every transition of the table as it stands for this case: allowed, or blocked and why.

    Transitions that cannot start from the case's state come last.
    """
    table = load_table()
    plans = [plan(facts, t, {}, now, role=role, partial=True) for t in table.transitions.values()]
    here = [p for p in plans if p.checks[0].ok]
    elsewhere = [p for p in plans if not p.checks[0].ok]
    return here + elsewhere


def computed_step(facts: CaseFacts, now: datetime) -> Plan | None:
    """The first computed transition whose guards all hold now, if any."""
    for t in load_table().computed():
        candidate = plan(facts, t, {}, now)
        if candidate.allowed:
            return candidate
    return None
