#!/usr/bin/env python3
"""The project's two entry points on a machine that has only Python.

    python3 tasks.py demo    # build a synthetic world, load it, serve it on :8000
    python3 tasks.py test    # lint, type-check and run the whole test suite

Each creates ``.venv`` on first use and installs the pinned dependencies
(``requirements.lock``) into it; later runs reinstall only when the lock or
``pyproject.toml`` changed. Other words after the command go to the tool it runs
(``python3 tasks.py demo --persons 10000``, ``python3 tasks.py test -k audit``).
Only the standard library is used here, on purpose.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".immos-installed"
PANGO = {"pango-1.0": "libpango-1.0-0", "pangoft2-1.0": "libpangoft2-1.0-0"}
#: Makes WeasyPrint's font step several times faster; PDFs work without it.
HARFBUZZ_SUBSET = {"harfbuzz-subset": "libharfbuzz-subset0"}


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (LOCK, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(*args: str | Path, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], cwd=ROOT, env=env)


def ensure_system_libraries() -> None:
    """Install Pango, which WeasyPrint (the PDF documents) loads at run time, if it is missing.

    pip cannot install C libraries, so on Debian/Ubuntu as root we ask apt; elsewhere we say
    what to install instead of letting a test fail later with an obscure OSError.
    """
    wanted = {**PANGO, **HARFBUZZ_SUBSET}
    if all(ctypes.util.find_library(lib) for lib in wanted):
        return
    advice = f"WeasyPrint needs the Debian packages {' '.join(PANGO.values())} (Pango) for PDFs"
    if not (shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0):
        if not all(ctypes.util.find_library(lib) for lib in PANGO):
            print(f"{advice}; please install them.", flush=True)
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ("apt-get", "install", "-y", "--no-install-recommends", *PANGO.values())
    if _run(*install, env=env) != 0:  # a fresh image has no package lists yet
        _run("apt-get", "update", env=env)
        if _run(*install, env=env) != 0:
            print(f"{advice}; installing them failed (see above).", flush=True)
    optional = ("apt-get", "install", "-y", "--no-install-recommends", *HARFBUZZ_SUBSET.values())
    if _run(*optional, env=env) != 0:
        print("libharfbuzz-subset0 not installed: PDFs render, more slowly", flush=True)


CHROMIUM = Path("/usr/bin/chromium")


def ensure_browser() -> None:
    """Install Debian's chromium for the browser tests (Playwright drives it), if missing.

    ``playwright install`` downloads browsers from a CDN the machines cannot reach; Debian's
    package comes from the package registry. Elsewhere, say what to install.
    """
    if CHROMIUM.exists() or os.environ.get("IMMOS_CHROMIUM"):
        return
    if not (shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0):
        print(
            "browser tests need chromium at /usr/bin/chromium (Debian: apt-get install "
            "chromium) or IMMOS_CHROMIUM pointing at one; they skip without it",
            flush=True,
        )
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ("apt-get", "install", "-y", "--no-install-recommends", "chromium")
    if _run(*install, env=env) != 0:
        _run("apt-get", "update", env=env)
        if _run(*install, env=env) != 0:
            print("installing chromium failed (see above); browser tests will fail", flush=True)


def ensure_venv() -> None:
    """Create the virtual environment and install the locked dependencies if needed."""
    ensure_system_libraries()
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    steps = [
        (PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip"),
        (PY, "-m", "pip", "install", "--quiet", "-r", LOCK),
        (PY, "-m", "pip", "install", "--quiet", "--no-deps", "-e", f"{ROOT}[dev]"),
    ]
    for step in steps:
        if _run(*step) != 0:
            sys.exit("installing dependencies failed (see above)")
    STAMP.write_text(_fingerprint())


def demo(args: list[str]) -> int:
    """Run ``immos demo``."""
    return _run(BIN / "immos", "demo", *args)


def test(args: list[str]) -> int:
    """Lint (ruff), type-check (mypy) and run the test suite (pytest)."""
    checks = [
        (BIN / "ruff", "check", "src", "tests", "benchmarks", "tasks.py"),
        (BIN / "ruff", "format", "--check", "src", "tests", "benchmarks", "tasks.py"),
        (BIN / "mypy",),
    ]
    for check in checks:
        if _run(*check) != 0:
            return 1
    ensure_browser()
    # worksteal: a worker that runs out takes queued tests from the other, so one long test
    # (the lifecycle state machine) does not leave a worker idle at the end.
    workers = (
        ["-n", str(min(os.cpu_count() or 1, 4)), "--dist", "worksteal"] if "-n" not in args else []
    )
    return _run(PY, "-m", "pytest", *workers, *args)


COMMANDS = {"demo": demo, "test": test}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    ensure_venv()
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
