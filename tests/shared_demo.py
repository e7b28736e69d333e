"""The demo world the web, oversight and demo tests share: ``immos demo --persons 400
--seed 3 --no-serve``, run once per test run.

It holds resolution, cases with documents, the 2021 policy adopted and run, departures,
two weeks of staff activity with planted misuse (scanned), this year's transparency report
and two sample redress requests. A build takes most of a minute; a copy of its data folder
(a 12 MB SQLite file and a few small folders) takes milliseconds, so tests that change the
world work on a copy and the build itself is never changed. The ``demo_build`` fixture in
tests/conftest.py hands it out.

Under xdist the first worker to need the world builds it in the run's shared temporary
folder, holding a file lock; the others wait on the lock and read what it left (the data
folder, and the build's record pickled beside it).

The command runs in this process (typer's runner, without the test run's ``IMMOS_*``
settings) so that what ``load_demo`` returned to it, which the command prints only in part,
stays at hand: the anomaly tests compare the planted ground truth and the scan with what
the demo stored. It hashes the demo passwords with the tests' cheap argon2id parameters
(``cheap_password_hashing``, tests/conftest.py): with the production parameters every copy
of the world would pay a full-cost verification (~50 ms, far more on a busy machine) at
each demo user's first sign-in.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from immigrationos import demo
from immigrationos.accounts import service
from immigrationos.cli.main import app
from immigrationos.core.settings import get_settings

PERSONS, SEED = 400, 3
#: argon2id with minimal cost, for tests only (the production parameters take ~50 ms a hash).
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass(frozen=True)
class DemoBuild:
    """What ``immos demo`` built (its data folder) and printed, and the oversight part of
    what ``load_demo`` returned to it. ``data`` is never changed: copy it first."""

    data: Path
    output: str
    oversight: demo.OversightLoad

    def copy(self, target: Path) -> Path:
        """A private copy of the data folder (database, world, reports, activity truth)."""
        shutil.copytree(self.data, target)
        return target


def shared_build(tmp_path_factory: pytest.TempPathFactory) -> DemoBuild:
    """The run's one build: made by the first worker that asks, read by the others."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    record = root / "demo-build.pickle"
    with (root / "demo-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
        if not record.exists():
            record.write_bytes(pickle.dumps(build_demo(root / "demo-build")))
    built: DemoBuild = pickle.loads(record.read_bytes())
    return built


def build_demo(data: Path) -> DemoBuild:
    """Run ``immos demo`` into ``data``, keeping what ``load_demo`` returned to it."""
    returned: list[demo.DemoResult] = []
    real = demo.load_demo

    def recorded(*args: Any, **kwargs: Any) -> demo.DemoResult:
        returned.append(real(*args, **kwargs))
        return returned[-1]

    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("IMMOS_")]:
            patch.delenv(name)
        patch.setenv("IMMOS_MODE", "demo")
        patch.setenv("IMMOS_DATA_DIR", str(data))  # the command would set it for good
        patch.setenv("COLUMNS", "200")
        patch.setattr(demo, "load_demo", recorded)
        patch.setattr(service, "_hasher", CHEAP_HASHER)
        get_settings.cache_clear()
        args = ["demo", "--persons", str(PERSONS), "--seed", str(SEED)]
        done = CliRunner().invoke(app, [*args, "--data-dir", str(data), "--no-serve"])
    get_settings.cache_clear()
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    (result,) = returned
    assert result.oversight is not None
    return DemoBuild(data, done.output, result.oversight)
