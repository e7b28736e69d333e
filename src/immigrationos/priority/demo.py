"""The demo's priorities: the three example policies registered, 2021 adopted, 2021 and 2025 run.

The analyst registers and runs, a supervisor adopts: the same two-person path a real agency
would take, so the audit log of the demo shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.priority import service
from immigrationos.priority.policy import shipped_policies
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

ADOPTED = "dhs-2021-guidelines"
COMPARED = "dhs-2025-enforcement"


@dataclass
class PriorityLoad:
    """What the demo set up: the policy in force and the runs made."""

    in_force: str
    runs: dict[str, str]
    actionable: int


def _ctx(runtime: Runtime, username: str, why: str) -> AccessContext:
    with transaction(runtime.sessions) as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        actor = actor_of(user)
    return AccessContext(actor, Purpose.ENFORCEMENT_PRIORITIZATION, why)


def load_priorities(runtime: Runtime) -> PriorityLoad:
    """Register the shipped policies, adopt the 2021 one, and run it and the 2025 one."""
    analyst = _ctx(runtime, "analyst", "demo: publish and run the example policies")
    with unit_of_work(runtime.sessions, analyst) as gw:
        ids = {p.name: service.register(gw, p.read_text(encoding="utf-8")).id
               for p in shipped_policies()}  # fmt: skip
    keys = {pid.split("@")[0]: pid for pid in ids.values()}
    supervisor = _ctx(runtime, "supervisor.miami", "demo: adopt the 2021 guidelines")
    with unit_of_work(runtime.sessions, supervisor) as gw:
        service.adopt(gw, keys[ADOPTED], "Demo: the 2021 guidelines are the policy in force.")
    runs, actionable = {}, 0
    for name in (ADOPTED, COMPARED):
        with unit_of_work(runtime.sessions, analyst) as gw:
            run = service.run(gw, keys[name])
            runs[name] = run.id
            if name == ADOPTED:
                actionable = int(run.counts["actionable"])
    return PriorityLoad(keys[ADOPTED], runs, actionable)
