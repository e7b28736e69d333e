"""Load benchmark of the web application: 50 users on worklist, person and case, PostgreSQL.

World: the demo world of ``N`` persons (full 100,000, quick 2,000; ``IMMOS_BENCH_WEB_PERSONS``
or the first of ``IMMOS_BENCH_SIZES`` overrides it), built by ``immos demo --persons N --seed
8 --no-serve`` in a subprocess into a PostgreSQL database of its own
(``immos_bench_web_<N>_s<seed>`` on the server at ``IMMOS_TEST_POSTGRES_URL``) with its data
folder (audit key) under ``var/bench/web-<N>-s<seed>/``. A world that finished building is
kept and reused by later runs (its ``world.json`` says how long it took); delete the folder to
rebuild.

Server: the production way, uvicorn serving ``create_app`` (``--factory``) with
``IMMOS_BENCH_WEB_WORKERS`` worker processes (default 2, one per core of the project's
machines), access log off, the lifecycle deadline tick off (``IMMOS_LIFECYCLE_TICK_SECONDS=0``).

Load: asyncio + ``httpx.AsyncClient``, 50 virtual users. In the judged phases each thinks
before every request for a random time (exponential, mean ``IMMOS_BENCH_WEB_THINK`` seconds,
default 5: people read a page before the next click; the first wait staggers the starts), for
a fixed duration (full 120 s, quick 30 s). In the closed-loop phases, the stress case, each
sends its next request as soon as the last one answered (full 60 s, quick 10 s, after a short
warm-up). Each user is one of the demo's officers and supervisors (Miami, Houston) and picks,
at random, its own office's worklist (page 1, 25 leads, as the worklist shows), a person of
that worklist (the priority explanation, which is what the person's page shows of
prioritization) and a case of its office, taking the routes in turn (each user starts at its
own) and the objects at random, so every route gets the same share of requests. The HTML
pages (``/worklist``, ``/persons/{id}``, ``/cases/{id}``) join the mix when they answer 200;
otherwise the output notes that they were skipped.

Phases (:data:`PHASES`), in the same run on the same server:

* *peer*: ``GET /api/health`` (no sign-in, no database) by thinking users: the framework's
  floor under the same load on the same machine; each judged route's ratio is its p95 over
  this peer's p95.
* *single*: one user alone on the bearer phase's routes, 10 requests per route (quick 3):
  what a request costs without queueing (no target; it says whether the time goes in the
  work or in the wait).
* *bearer* (judged): every available route, API tokens (created in the database beforehand
  with ``accounts.sessions.create_token``; a token costs one indexed lookup, no argon2) and
  the purpose in the ``X-Immos-Purpose`` header.
* *cookie* (judged): the HTML pages as a browser asks for them, with session cookies
  (sessions started and their purposes chosen in the database beforehand, one per purpose a
  user works under); the API routes stand in, with cookies, for pages not built yet.
* *peer, closed loop* and *bearer, closed loop*: the same without thinking, reported beside
  (the closed-loop routes' ratios are over the closed-loop peer).

An error is any answer but 200, or a transport failure (timeout 30 s). The load generator runs
on the same machine as the server and PostgreSQL, and takes CPU from them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from sqlalchemy import func, select

from immigrationos.accounts import sessions
from immigrationos.accounts.models import User
from immigrationos.api.serving import HTTP_PROTOCOL
from immigrationos.audit.models import AuditEntry
from immigrationos.bench import BenchReport, Target, repo_root
from immigrationos.core.settings import Settings
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store.engine import transaction

PG_URL = os.environ.get("IMMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FULL_PERSONS, QUICK_PERSONS, SEED = 100_000, 2_000, 8
USERS = 50
FULL_SECONDS, QUICK_SECONDS = 60.0, 10.0
THINK_FULL_SECONDS, THINK_QUICK_SECONDS = 120.0, 30.0
THINK_MEAN_S = float(os.environ.get("IMMOS_BENCH_WEB_THINK", "5"))
TARGET_P95_MS = 100.0
ACCOUNTS = ("officer.miami", "officer.houston", "supervisor.miami", "supervisor.houston")
PRIORITIZING = Purpose.ENFORCEMENT_PRIORITIZATION.value
CASEWORK = Purpose.CASE_PROCESSING.value
COLUMNS = [
    "phase", "route", "requests", "req_per_s", "errors", "p50_ms", "p95_ms", "p99_ms",
    "p95_vs_peer",
]  # fmt: skip


def _log(message: str) -> None:
    print(f"[bench web] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# What the users ask for


@dataclass(frozen=True)
class Route:
    """A kind of request: a label, a URL template (``{user}``, ``{person}``, ``{case}``), the
    purposes it may be read under (the first that answers is used), and whether it is a page."""

    label: str
    url: str
    purposes: tuple[str, ...]
    page: bool = False


ROUTES = (
    Route("worklist (API)", "/api/priority/worklist?officer={user}&size=25", (PRIORITIZING,)),
    Route("person (API)", "/api/priority/persons/{person}", (PRIORITIZING,)),
    Route("case (API)", "/api/cases/{case}", (CASEWORK,)),
    Route("worklist (page)", "/worklist", (PRIORITIZING,), page=True),
    Route("person (page)", "/persons/{person}", (PRIORITIZING, CASEWORK), page=True),
    Route("case (page)", "/cases/{case}", (CASEWORK,), page=True),
)  # fmt: skip
PEER = Route("health (peer)", "/api/health", ())


@dataclass
class Account:
    """One demo account the virtual users sign in as, with its objects and credentials."""

    username: str
    office: str
    token: str = ""
    cookies: dict[str, str] = field(default_factory=dict)  # purpose -> session cookie token
    persons: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Call:
    """One concrete request: the route it measures, the URL and the headers to send."""

    route: str
    url: str
    headers: dict[str, str]


def credentials(runtime: Runtime, users: int = USERS) -> list[Account]:
    """An API token per virtual user's account and a browser session per purpose it works
    under, written in the database (no argon2 on the request path, nothing to throttle)."""
    accounts = []
    with transaction(runtime.sessions) as session:
        for username in ACCOUNTS[: max(1, min(users, len(ACCOUNTS)))]:
            user = session.scalars(select(User).where(User.username == username)).one()
            token, _ = sessions.create_token(session, user, "load benchmark (benchmarks/web.py)", 1)
            account = Account(username, user.office or "", token)
            for purpose in (PRIORITIZING, CASEWORK):
                cookie, web = sessions.start(session, user, "bench")
                sessions.choose_purpose(
                    session, sessions.Signed(web, user), purpose, "load benchmark"
                )
                account.cookies[purpose] = cookie
            accounts.append(account)
    return accounts


def _bearer(account: Account, purpose: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {account.token}"}
    return headers | ({"X-Immos-Purpose": purpose} if purpose else {})


def _cookie(account: Account, purpose: str) -> dict[str, str]:
    return {"Cookie": f"immos_session={account.cookies[purpose]}"}


def harvest(base_url: str, accounts: list[Account], per_kind: int = 50) -> None:
    """Each account's objects, read through the API as its users would: the persons of its
    office's worklist and the cases of its office."""
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for a in accounts:
            got = client.get(
                f"/api/priority/worklist?officer={a.username}&size={min(per_kind, 200)}",
                headers=_bearer(a, PRIORITIZING),
            )
            got.raise_for_status()
            a.persons = [item["person_id"] for item in got.json()["items"]]
            got = client.get(
                f"/api/cases?office={a.office}&limit={per_kind}", headers=_bearer(a, CASEWORK)
            )
            got.raise_for_status()
            a.cases = [case["id"] for case in got.json()]


def _url(route: Route, account: Account, rng: random.Random) -> str | None:
    needs = {"{person}": account.persons, "{case}": account.cases}
    values: dict[str, str] = {"user": account.username}
    for marker, pool in needs.items():
        if marker in route.url:
            if not pool:
                return None
            values[marker.strip("{}")] = rng.choice(pool)
    return route.url.format(**values)


def probe(base_url: str, accounts: list[Account]) -> tuple[dict[str, str], list[str]]:
    """Which routes answer 200 (a page may not be built yet): route label -> the purpose to
    ask it under, and a note for each route skipped."""
    usable: dict[str, str] = {}
    notes = []
    rng = random.Random(SEED)
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for route in ROUTES:
            statuses = []
            for purpose in route.purposes:
                url = _url(route, accounts[0], rng)
                if url is None:
                    statuses.append("no object to ask for")
                    break
                answer = client.get(url, headers=_bearer(accounts[0], purpose))
                if answer.status_code == 200:
                    usable[route.label] = purpose
                    break
                statuses.append(f"{answer.status_code} under {purpose}")
            if route.label not in usable:
                notes.append(f"{route.label} {route.url} skipped: {'; '.join(statuses)}")
    return usable, notes


# --------------------------------------------------------------------------------------------
# The load


@dataclass
class Plan:
    """What one virtual user asks for (routes in turn, from ``turn``) and how it signs."""

    account: Account
    routes: list[tuple[Route, str]]  # (route, purpose)
    cookie: bool = False
    turn: int = 0
    think: float = 0.0  # mean think time before each request, seconds (0: closed loop)

    def next_call(self, rng: random.Random) -> Call:
        """The next route in turn (each user starts at its own), for a random object."""
        route, purpose = self.routes[self.turn % len(self.routes)]
        self.turn += 1
        url = _url(route, self.account, rng) or "/api/health"
        if not purpose:
            return Call(route.label, url, {})
        sign = _cookie if self.cookie else _bearer
        return Call(route.label, url, sign(self.account, purpose))


@dataclass(frozen=True)
class Phase:
    """One measured phase: its name, whose routes (``peer``, ``bearer`` or ``cookie``), and
    whether its users think between requests (``think``) or ask again at once (stress)."""

    name: str
    kind: str
    think: bool
    target: bool = False  # judged against the targets
    peer: str = ""  # the phase whose p95 this one's is divided by


PHASES = (
    Phase("peer", "peer", think=True),
    Phase("single", "bearer", think=False),
    Phase("bearer", "bearer", think=True, target=True, peer="peer"),
    Phase("cookie", "cookie", think=True, target=True, peer="peer"),
    Phase("peer, closed loop", "peer", think=False),
    Phase("bearer, closed loop", "bearer", think=False, peer="peer, closed loop"),
)


def plans(
    accounts: list[Account],
    usable: dict[str, str],
    kind: str,
    users: int = USERS,
    think: float = 0.0,
) -> list[Plan]:
    """The virtual users of a phase of ``kind`` (``peer``, ``bearer`` or ``cookie``), each
    thinking ``think`` seconds on average before a request (0: a closed loop)."""
    if kind == "peer":
        chosen: list[tuple[Route, str]] = [(PEER, "")]
    else:
        chosen = [(r, usable[r.label]) for r in ROUTES if r.label in usable]
        if kind == "cookie" and any(r.page for r, _ in chosen):
            chosen = [(r, p) for r, p in chosen if r.page]
    if not chosen:
        raise RuntimeError(f"no route to measure in phase {kind!r}")
    cookie = kind == "cookie"
    return [
        Plan(accounts[i % len(accounts)], chosen, cookie, turn=i, think=think) for i in range(users)
    ]


@dataclass
class Measured:
    """Latencies (ms) and failures per route, over ``seconds`` of wall time."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)


async def _user(
    client: httpx.AsyncClient,
    plan: Plan,
    rng: random.Random,
    until: float,
    out: Measured,
    calls: int | None,
) -> None:
    while time.perf_counter() < until and (calls is None or plan.turn < calls):
        if plan.think:
            await asyncio.sleep(min(rng.expovariate(1 / plan.think), until - time.perf_counter()))
            if time.perf_counter() >= until:
                break
        call = plan.next_call(rng)
        started = time.perf_counter()
        try:
            answer = await client.get(call.url, headers=call.headers)
            problem = None if answer.status_code == 200 else f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        out.latencies.setdefault(call.route, []).append((time.perf_counter() - started) * 1e3)
        if problem:
            out.errors[call.route] += 1
            out.examples.setdefault(call.route, f"{problem} on {call.url}")


async def _drive(
    base_url: str, users: list[Plan], seconds: float, seed: int, calls: int | None
) -> Measured:
    out = Measured()
    # uvicorn closes a connection idle for 5 s (its --timeout-keep-alive), and httpx keeps one
    # 5 s by default: a user who thought about 5 s could send on a connection the server was
    # closing and get a ReadError (a browser retries such a request; httpx does not)
    limits = httpx.Limits(
        max_connections=len(users) + 5, max_keepalive_connections=len(users), keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(
                _user(client, p, random.Random(seed + i), until, out, calls)
                for i, p in enumerate(users)
            )
        )
        out.seconds = time.perf_counter() - started
    return out


def load(
    base_url: str, users: list[Plan], seconds: float, seed: int = SEED, calls: int | None = None
) -> Measured:
    """``users`` in a closed loop against ``base_url`` for ``seconds``, or until each made
    ``calls`` requests (requests in flight at the end are waited for and counted)."""
    return asyncio.run(_drive(base_url, users, seconds, seed, calls))


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def rows_of(phase: str, measured: Measured, peer_p95: float | None) -> list[dict[str, Any]]:
    """One row per route and one for the phase as a whole (the ratio is None for the peer
    itself and for the single user, which has no peer at its concurrency)."""
    groups = dict(measured.latencies)
    if len(groups) > 1:
        groups["all"] = [v for values in measured.latencies.values() for v in values]
    rows = []
    for route, values in groups.items():
        errors = sum(measured.errors.values()) if route == "all" else measured.errors[route]
        p95 = _ms(values, 95)
        rows.append(
            {
                "phase": phase, "route": route, "requests": len(values),
                "req_per_s": round(len(values) / measured.seconds, 1), "errors": errors,
                "p50_ms": _ms(values, 50), "p95_ms": p95, "p99_ms": _ms(values, 99),
                "p95_vs_peer": round(p95 / peer_p95, 1) if peer_p95 else None,
            }
        )  # fmt: skip
    return rows


def targets_of(rows: list[dict[str, Any]], users: int = USERS) -> list[Target]:
    """p95 ≤ 100 ms and no errors, per phase judged (users who think between requests; the
    closed loop is the stress case, reported beside, and the peer is not ours)."""
    out = []
    for phase in (p.name for p in PHASES if p.target):
        mine = [r for r in rows if r["phase"] == phase and r["route"] != "all"]
        if not mine:
            continue
        worst = max(mine, key=lambda r: r["p95_ms"])
        errors = sum(r["errors"] for r in mine)
        per_route = ", ".join(f"{r['route']} {r['p95_ms']:g}" for r in mine)
        out.append(
            Target(
                f"p95 ≤ {TARGET_P95_MS:g} ms on every route, {users} concurrent users ({phase})",
                worst["p95_ms"] <= TARGET_P95_MS,
                f"worst {worst['route']} p95 {worst['p95_ms']:g} ms; p95 ms: {per_route}",
            )
        )
        out.append(Target(f"no errors ({phase})", errors == 0, f"{errors} errors"))
    return out


def measure(
    base_url: str,
    accounts: list[Account],
    *,
    users: int = USERS,
    seconds: float = FULL_SECONDS,
    think_seconds: float = THINK_FULL_SECONDS,
    think: float = THINK_MEAN_S,
    warmup: float = 3.0,
    samples: int = 10,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The phases against a running server: the rows and notes of the report."""
    harvest(base_url, accounts)
    usable, notes = probe(base_url, accounts)
    rows: list[dict[str, Any]] = []
    p95_of: dict[str, float] = {}
    for phase in PHASES:
        single = phase.name == "single"
        count = 1 if single else users
        users_of = plans(accounts, usable, phase.kind, count, think if phase.think else 0.0)
        if warmup and not single and not phase.think:
            load(base_url, users_of, warmup, seed=SEED - 1)
        how = f"thinking {think:g} s on average" if phase.think else "closed loop"
        _log(
            f"{phase.name}: "
            + (f"1 user, {samples} per route" if single else f"{count} users, {how}")
        )
        calls = samples * len(users_of[0].routes) if single else None
        duration = 3600 if single else think_seconds if phase.think else seconds
        measured = load(base_url, users_of, duration, calls=calls)
        mine = rows_of(phase.name, measured, p95_of.get(phase.peer))
        p95_of[phase.name] = mine[-1]["p95_ms"]
        rows += mine
        notes += [
            f"{phase.name}: {route}: first error {ex}" for route, ex in measured.examples.items()
        ]
    return rows, notes


# --------------------------------------------------------------------------------------------
# The world and the server


def _persons(quick: bool) -> int:
    chosen = os.environ.get("IMMOS_BENCH_WEB_PERSONS") or os.environ.get("IMMOS_BENCH_SIZES")
    if chosen:
        return int(chosen.split(",")[0])
    return QUICK_PERSONS if quick else FULL_PERSONS


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMOS_")}
    return env | {"IMMOS_MODE": "demo", "COLUMNS": "200"} | values


def world(persons: int, seed: int = SEED) -> tuple[str, Path, dict[str, Any]]:
    """The demo world's database URL and data folder, built unless a finished one is kept."""
    name = f"immos_bench_web_{persons}_s{seed}"
    folder = repo_root() / "var" / "bench" / f"web-{persons}-s{seed}"
    url = f"postgresql+psycopg://{PG_URL.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    marker = folder / "world.json"
    if marker.exists():
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return url, folder, json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    _log(f"building the demo world of {persons:,} persons into {name} (kept for later runs)")
    started = time.perf_counter()
    command = [sys.executable, "-c", "from immigrationos.cli.main import app; app()", "demo"]
    command += ["--persons", str(persons), "--seed", str(seed), "--data-dir", str(folder)]
    with (folder / "build.log").open("w") as log:
        done = subprocess.run(
            [*command, "--no-serve"], env=_clean_env(IMMOS_DATABASE_URL=url), stdout=log,
            stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"immos demo failed; see {folder / 'build.log'}")
    facts = {"persons": persons, "seed": seed, "database": name}
    facts["build_seconds"] = round(time.perf_counter() - started, 1)
    marker.write_text(json.dumps(facts, indent=2) + "\n")
    return url, folder, facts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(url: str, folder: Path, workers: int) -> Iterator[str]:
    """uvicorn serving the app over the world, in a subprocess; yields its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "immigrationos.api.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--no-access-log", "--log-level", "warning", "--http", HTTP_PROTOCOL]
    env = _clean_env(
        IMMOS_DATABASE_URL=url, IMMOS_DATA_DIR=str(folder), IMMOS_LIFECYCLE_TICK_SECONDS="0"
    )
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_until_up(base: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}; see server.log")
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server did not answer within {timeout:g} s")


def _audit_entries(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def run(quick: bool = False) -> BenchReport:
    """Build or reuse the world, serve it, and measure the phases."""
    persons = _persons(quick)
    workers = int(os.environ.get("IMMOS_BENCH_WEB_WORKERS", "2"))
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    url, folder, facts = world(persons)
    settings = Settings(mode="demo", data_dir=folder, database_url=url, lifecycle_tick_seconds=0)
    runtime = open_runtime(settings)
    busy = os.getloadavg()[1]
    try:
        accounts = credentials(runtime)
        audit_before = _audit_entries(runtime)
        with serve(url, folder, workers) as base:
            rows, notes = measure(
                base,
                accounts,
                seconds=seconds,
                think_seconds=THINK_QUICK_SECONDS if quick else THINK_FULL_SECONDS,
                warmup=2 if quick else 5,
                samples=3 if quick else 10,
            )
        audited = _audit_entries(runtime) - audit_before
    finally:
        runtime.engine.dispose()
    requests = sum(
        r["requests"] for r in rows if r["route"] != "all" and not r["phase"].startswith("peer")
    )
    return BenchReport(
        f"Web: {USERS} users on worklist, person and case pages, {persons:,}-person demo world "
        "on PostgreSQL, vs /api/health",
        COLUMNS,
        rows,
        targets_of(rows),
        [
            *_notes(facts, workers, seconds, requests, audited),
            f"machine load average (5 min) before / after: {busy:.1f} / {os.getloadavg()[1]:.1f}"
            " (2 cores; other work on the machine shares them)",
            *notes,
        ],
    )


def _notes(
    facts: dict[str, Any], workers: int, seconds: float, requests: int, audited: int
) -> list[str]:
    per = f"{audited / requests:.1f}" if requests else "n/a"
    return [
        f"world: immos demo --persons {facts['persons']} --seed {facts['seed']} on PostgreSQL "
        f"(database {facts['database']}); building it took {facts['build_seconds']:g} s "
        "(kept and reused: not part of this run's time unless it was built now)",
        f"server: uvicorn immigrationos.api.app:create_app --factory --workers {workers}, "
        "lifecycle tick off, on the same machine as PostgreSQL and the load generator",
        f"load: {USERS} virtual users; in the judged phases each thinks before every request "
        f"for a random time (exponential, mean {THINK_MEAN_S:g} s: people read a page before "
        "the next click), in the closed-loop phases it asks again as soon as it is answered "
        f"(the stress case, {seconds:g} s after a warm-up); each user is one of "
        "officer.miami, officer.houston, supervisor.miami, supervisor.houston and asks for "
        "its office's worklist (25 leads), a person of it and a case of its office, taking "
        "the routes in turn (each user starting at its own) and the objects at random",
        "phases: peer = GET /api/health (no sign-in, no database); single = one user alone "
        "on the bearer routes, a fixed number of requests each (the cost of a request "
        "without queueing; not a target); bearer = every route that answered 200, API "
        "token + X-Immos-Purpose; cookie = the HTML pages with browser "
        "session cookies (the API routes when no page is built yet); the targets are judged "
        "on bearer and cookie (users who think), the closed loop is reported beside them",
        "p95_vs_peer = the route's p95 / the p95 of the peer phase with the same kind of "
        "users in this run; an error is any status but 200 or a transport failure "
        "(timeout 30 s)",
        f"audit: {audited:,} entries written during the measured and warm-up requests "
        f"(~{per} per measured request: every read of personal data is audited)",
    ]
