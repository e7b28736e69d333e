"""Benchmark runner: ``immos bench NAME`` runs ``benchmarks/NAME.py`` from the repository.

A benchmark module defines ``run(quick: bool) -> BenchReport``. Performance is always reported
beside a *peer* measured in the same run (machines are shared and noisy, so absolute numbers
alone mean little); the report carries the ratio. The runner prints the report as a table and
writes it as JSON to ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from immigrationos.core.errors import NotFound


@dataclass
class Target:
    """A published goal and whether this run met it."""

    description: str
    met: bool
    observed: str


@dataclass
class BenchReport:
    """What one benchmark run measured: rows of metrics, the targets, and notes."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def repo_root() -> Path:
    """The checkout this package runs from (benchmarks live beside ``src/``)."""
    env = os.environ.get("IMMOS_REPO_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "benchmarks").is_dir() and (parent / "pyproject.toml").exists():
            return parent
    return Path.cwd()


def available() -> list[str]:
    """Names of the benchmarks in ``benchmarks/``."""
    folder = repo_root() / "benchmarks"
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def load(name: str) -> Any:
    """Import ``benchmarks/NAME.py`` as a module."""
    path = repo_root() / "benchmarks" / f"{name}.py"
    if not path.exists():
        raise NotFound(f"no benchmark {name!r}; available: {', '.join(available()) or 'none'}")
    spec = importlib.util.spec_from_file_location(f"immos_bench_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """Where the run happened, recorded with every result."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def run(name: str, quick: bool = False) -> tuple[BenchReport, Path]:
    """Run one benchmark, write its JSON, and return the report and the JSON path."""
    module = load(name)
    started = time.perf_counter()
    report: BenchReport = module.run(quick=quick)
    payload = {
        "benchmark": name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "quick": quick,
        "machine": machine(),
        **asdict(report),
    }
    out = repo_root() / "benchmarks" / "results" / f"{name}{'-quick' if quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return report, out
