"""One small exception hierarchy rooted in :class:`ImmosError`.

Every error the platform raises on purpose derives from it, so the CLI and the API can turn
any of them into a clear message (and an HTTP status) without leaking internals.
"""

from __future__ import annotations


class ImmosError(Exception):
    """Base class of every deliberate ImmigrationOS error."""

    #: HTTP status the API answers with when this error escapes a route.
    http_status: int = 400


class ConfigurationError(ImmosError):
    """Settings are missing, malformed or unsafe (for instance a default secret in production)."""

    http_status = 500


class ValidationFailed(ImmosError):
    """Input does not satisfy the contract it was given against."""

    http_status = 422


class NotFound(ImmosError):
    """The object asked for does not exist (or is not visible to the actor)."""

    http_status = 404


class AccessRefused(ImmosError):
    """The actor's role or declared purpose does not permit the operation.

    The message always says which rule refused it; the refusal itself is audited.
    """

    http_status = 403


class IntegrityViolation(ImmosError):
    """Stored data does not verify (for instance a broken audit hash chain)."""

    http_status = 409
