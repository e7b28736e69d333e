"""Who is acting, in which role, and for which purpose: carried by every gateway call."""

from __future__ import annotations

from dataclasses import dataclass

from immigrationos.accounts.roles import ROLES, Role
from immigrationos.core.errors import AccessRefused
from immigrationos.gateway.purposes import Purpose


@dataclass(frozen=True)
class Actor:
    """A signed-in user (or service account) as the audit log names them."""

    user_id: str
    username: str
    role: Role
    office: str | None = None


@dataclass(frozen=True)
class AccessContext:
    """An actor working under a declared purpose, optionally for a named case, with a reason.

    ``request_id`` names a disclosure request, for sources whose agreement demands one per use.
    """

    actor: Actor
    purpose: Purpose
    justification: str | None = None
    case_id: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        spec = ROLES[self.actor.role]
        if self.purpose not in spec.purposes:
            allowed = ", ".join(sorted(spec.purposes))
            raise AccessRefused(
                f"role {self.actor.role.value!r} may not work under purpose "
                f"{self.purpose.value!r} (allowed: {allowed})"
            )


SYSTEM_ACTOR = Actor(user_id="usr-system", username="system", role=Role.SYSTEM)


def system_context(purpose: Purpose, justification: str | None = None) -> AccessContext:
    """The context of scheduled and batch work done by the system account."""
    return AccessContext(SYSTEM_ACTOR, purpose, justification)
