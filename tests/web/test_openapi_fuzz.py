"""schemathesis against the OpenAPI spec: no server errors, responses as the schema says.

Runs on a copy of the demo world (generated requests create and change things), as four
roles with API tokens, each under its default purpose. Resolution runs are left out: each is
a full re-resolution of the world (covered by the resolution tests), too slow to fuzz.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select

from immigrationos.accounts import sessions
from immigrationos.accounts.models import User
from immigrationos.api.app import create_app
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store.engine import transaction

FUZZED_AS = ("officer.miami", "analyst", "auditor", "privacy")
SLOW = r"^/api/resolution/runs$"


@pytest.fixture(scope="module")
def fuzz_world(demo_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A private copy of the demo world, so fuzzing changes no other test's data."""
    copy = tmp_path_factory.mktemp("fuzz-world") / "data"
    shutil.copytree(demo_world, copy, ignore=shutil.ignore_patterns("world"))
    from immigrationos.core.settings import Settings

    runtime = open_runtime(Settings(mode="demo", data_dir=copy, lifecycle_tick_seconds=0))
    yield runtime
    runtime.engine.dispose()


@pytest.fixture(scope="module")
def fuzz_tokens(fuzz_world: Runtime) -> dict[str, str]:
    made = {}
    with transaction(fuzz_world.sessions) as session:
        for username in FUZZED_AS:
            user = session.scalar(select(User).where(User.username == username))
            assert user is not None
            made[username], _ = sessions.create_token(session, user, "schemathesis", 1)
    return made


@pytest.fixture(scope="module")
def api_schema(fuzz_world: Runtime) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_world)).exclude(
        path_regex=SLOW
    )


def _problem(exc: BaseException) -> str:
    """The first line of the innermost failure (schemathesis raises groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {' / '.join(lines[:3])[:300]}"


def test_api_conforms(api_schema: Any, fuzz_tokens: dict[str, str]) -> None:
    checks = [not_a_server_error, response_schema_conformance]
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            for username in FUZZED_AS:  # each generated request, as each role
                token = fuzz_tokens[username]
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {_problem(exc)}")
    assert operations > 50
    assert failures == [], "\n".join(failures)
