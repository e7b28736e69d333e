"""The EU AI Act Article 9-15 mapping (``ai_act.yaml``) as typed data, checked against the code.

The mapping is the one hand-written part of the system dossier: per Article, which mechanism
meets the requirement, how an inspector checks it, the live evidence and the known gaps. It is
data rather than prose so that it can be checked: when it is loaded, Articles 9 to 15 must each
be present once, and every command it names must exist in the ``immos`` application, every API
route in the API's routers, every module path in the package, every test in the checkout and
every metric in :data:`METRICS`. When code moves, the dossier refuses to generate rather than
cite a mechanism that is gone.

Pydantic checks the file's shape. The reference checks are written here by hand because what
they resolve against (the Typer application, the FastAPI routers, this checkout) is the
project itself; no schema library knows it.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import immigrationos
from immigrationos.core.errors import ConfigurationError

MAPPING_PATH = Path(__file__).with_name("ai_act.yaml")
PACKAGE_DIR = Path(immigrationos.__file__).resolve().parent
#: A source checkout (``src/`` layout) has the tests and published benchmark results beside it.
CHECKOUT = PACKAGE_DIR.parent.parent if PACKAGE_DIR.parent.name == "src" else None

#: The live figures the mapping's ``metric:`` evidence may name, with what each counts. The
#: dossier fills every one (``dossier.metrics``); its summary table shows them in this order.
METRICS: dict[str, str] = {
    "sources.registered": "Sources registered",
    "sources.shipped": "Source definitions shipped with the project",
    "agreements.in_force": "Data-sharing agreements in force today",
    "agreements.versions": "Agreement versions on record",
    "ingest.batches": "Ingest batches",
    "ingest.rows_read": "Rows read by ingest",
    "ingest.rows_loaded": "Rows loaded",
    "ingest.rows_quarantined": "Rows quarantined (kept with the reason)",
    "retention.tombstones": "Records purged at the end of retention (tombstones)",
    "resolution.models": "Matching models stored",
    "resolution.models_evaluated": "Matching models with a stored evaluation",
    "resolution.runs": "Resolution runs (person-index versions)",
    "resolution.persons": "Persons in the newest person index",
    "resolution.reviews_decided": "Record pairs decided by a person",
    "departures.events": "Departure events processed",
    "departures.verified": "Departure events verified to a person",
    "departures.review": "Departure events sent to human review",
    "departures.unmatched": "Departure events left unmatched",
    "departures.dead_letters": "Departure events unreadable (dead letters)",
    "priority.policies_registered": "Priority policy versions registered",
    "priority.policies_in_force": "Priority policies in force",
    "priority.runs": "Priority runs",
    "priority.overrides": "Priority overrides recorded",
    "lifecycle.states": "Lifecycle states",
    "lifecycle.transitions": "Lifecycle transitions",
    "lifecycle.guards": "Due-process guards",
    "lifecycle.two_person_steps": "Steps that need a second person's approval",
    "lifecycle.deadlines": "Deadline rules",
    "lifecycle.steps_blocked": "Steps refused by a guard",
    "lifecycle.approvals_decided": "Requested actions approved or refused by a second person",
    "roles.count": "Roles",
    "users.active": "Active accounts",
    "audit.entries": "Audit entries verified at generation",
    "audit.chain_ok": "Audit chain intact at generation",
    "audit.refusals": "Refusals on the record",
    "audit.checkpoints": "Signed checkpoints",
    "audit.verifications": "Verifications of the chain run",
    "prohibited.attributes": "Attribute names no policy may use",
    "prohibited.violations": "Prohibited attributes found in schema, sources or policies",
}
METRIC_NAMES = tuple(METRICS)


# -- the file's shape -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mechanism(_Strict):
    """A part of this system that meets (some of) a requirement."""

    text: str = Field(min_length=10)
    modules: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


class Check(_Strict):
    """One way an inspector checks a claim: a command, an API route, or a test."""

    text: str = Field(min_length=5)
    command: str | None = None
    api: str | None = None
    test: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Check:
        if sum(x is not None for x in (self.command, self.api, self.test)) != 1:
            raise ValueError(f"check {self.text!r}: give exactly one of command, api or test")
        return self


class Evidence(_Strict):
    """A live number: a named metric, a count of audit actions, or a count of a table's rows."""

    label: str
    metric: str | None = None
    audit: tuple[str, ...] = ()
    table: str | None = None
    group_by: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Evidence:
        if sum(bool(x) for x in (self.metric, self.audit, self.table)) != 1:
            raise ValueError(f"evidence {self.label!r}: give exactly one of metric, audit, table")
        if self.group_by and not self.table:
            raise ValueError(f"evidence {self.label!r}: group_by needs a table")
        return self


class ArticleSpec(_Strict):
    """One Article of the AI Act: the requirement, how it is met, checked, and what is missing."""

    article: int = Field(ge=9, le=15)
    title: str
    requirement: str = Field(min_length=40)
    mechanisms: tuple[Mechanism, ...] = Field(min_length=1)
    checks: tuple[Check, ...] = Field(min_length=1)
    evidence: tuple[Evidence, ...] = Field(min_length=1)
    gaps: tuple[str, ...] = Field(min_length=1)


class Companion(_Strict):
    """A report or tool the dossier points the inspector to (built by other parts)."""

    id: str
    title: str
    what: str
    commands: tuple[str, ...] = Field(min_length=1)
    api: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()


class Regulation(_Strict):
    title: str
    classification: str
    scope_note: str


class Mapping(_Strict):
    """The whole of ``ai_act.yaml``."""

    regulation: Regulation
    companions: tuple[Companion, ...]
    articles: tuple[ArticleSpec, ...]

    def article(self, number: int) -> ArticleSpec:
        return next(a for a in self.articles if a.article == number)


# -- what the references resolve against ------------------------------------------------------


def command_tree() -> dict[tuple[str, ...], bool]:
    """Every ``immos`` command path, and whether it is a group (has subcommands)."""
    import typer

    from immigrationos.cli.main import app  # here: the CLI imports the dossier, which imports us

    found: dict[tuple[str, ...], bool] = {}

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            path = (*prefix, name)
            found[path] = hasattr(command, "commands")
            if found[path]:
                walk(command, path)

    walk(typer.main.get_command(app), ())
    return found


def _module_routes(module: ModuleType) -> set[tuple[str, str]]:
    """(method, path) of the routes of every router a module defines."""
    from fastapi import APIRouter

    routers = [v for v in vars(module).values() if isinstance(v, APIRouter)]
    return {
        (method, str(getattr(route, "path", "")))
        for router in routers
        for route in router.routes
        for method in getattr(route, "methods", None) or ()
    }


def api_routes() -> set[tuple[str, str]]:
    """(method, path) of every route declared by the API's and the web pages' routers."""
    routes: set[tuple[str, str]] = set()
    for package in ("immigrationos.api", "immigrationos.web"):
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            routes |= _module_routes(importlib.import_module(f"{package}.{info.name}"))
    routes.add(("GET", "/metrics"))  # declared on the app itself
    return routes


# -- one problem per dead reference -----------------------------------------------------------


def command_problem(text: str, tree: dict[tuple[str, ...], bool]) -> str | None:
    """Why ``immos …`` does not name an existing command (None when it does)."""
    words = text.split()
    if not words or words[0] != "immos":
        return f"command {text!r} does not start with 'immos'"
    path: tuple[str, ...] = ()
    for word in words[1:]:
        if (*path, word) in tree:
            path = (*path, word)
            continue
        if path and not tree[path]:
            return None  # a command's arguments and options follow it
        if word.startswith("-") and path:
            return None
        where = " ".join(("immos", *path))
        return f"command {text!r}: {where!r} has no command {word!r}"
    return None if path else f"command {text!r} names no command"


def _route_problem(text: str, routes: set[tuple[str, str]]) -> str | None:
    method, _, path = text.partition(" ")
    path = path.split("?", 1)[0]
    if (method, path) not in routes:
        return f"API route {text!r} is not declared by any router"
    return None


def _module_problem(path: str) -> str | None:
    if not path.startswith("immigrationos/"):
        return f"module path {path!r} must start with 'immigrationos/'"
    if not (PACKAGE_DIR.parent / path).exists():
        return f"module path {path!r} does not exist"
    return None


def _test_problem(ref: str) -> str | None:
    if CHECKOUT is None:
        return None  # an installed package has no tests to point at
    file, _, name = ref.partition("::")
    target = CHECKOUT / file
    if not file.startswith("tests/") or not target.is_file():
        return f"test {ref!r}: no such test file"
    if name and f"def {name}(" not in target.read_text(encoding="utf-8"):
        return f"test {ref!r}: {file} has no test {name!r}"
    return None


def _article_problems(mapping: Mapping) -> list[str]:
    numbers = [a.article for a in mapping.articles]
    missing = [f"Article {n} is missing" for n in range(9, 16) if n not in numbers]
    repeated = [f"Article {n} appears more than once" for n in set(numbers) if numbers.count(n) > 1]
    return missing + repeated


def _commands_named(mapping: Mapping) -> list[str]:
    """Every command the mapping names: mechanisms', then checks', then companions'."""
    mechanisms = [c for a in mapping.articles for m in a.mechanisms for c in m.commands]
    checks = [c.command for a in mapping.articles for c in a.checks if c.command]
    return mechanisms + checks + [c for comp in mapping.companions for c in comp.commands]


def _routes_named(mapping: Mapping) -> list[str]:
    """Every API route the mapping names: checks', then companions'."""
    checks = [c.api for a in mapping.articles for c in a.checks if c.api]
    return checks + [r for comp in mapping.companions for r in comp.api]


def _other_problems(mapping: Mapping) -> list[str]:
    """Dead module paths, tests and metric names."""
    modules = [p for a in mapping.articles for m in a.mechanisms for p in m.modules]
    tests = [c.test for a in mapping.articles for c in a.checks if c.test]
    metrics = [e.metric for a in mapping.articles for e in a.evidence if e.metric]
    problems = [p for path in modules if (p := _module_problem(path))]
    problems += [p for t in tests if (p := _test_problem(t))]
    return problems + [f"unknown metric {m!r}" for m in metrics if m not in METRIC_NAMES]


def mapping_problems(
    mapping: Mapping,
    commands: dict[tuple[str, ...], bool] | None = None,
    routes: set[tuple[str, str]] | None = None,
) -> list[str]:
    """Everything in ``mapping`` that does not hold: missing articles, dead references."""
    tree = command_tree() if commands is None else commands
    known_routes = api_routes() if routes is None else routes
    problems = _article_problems(mapping)
    problems += [p for c in _commands_named(mapping) if (p := command_problem(c, tree))]
    problems += [p for r in _routes_named(mapping) if (p := _route_problem(r, known_routes))]
    return problems + _other_problems(mapping)


# -- loading ----------------------------------------------------------------------------------


def parse_mapping(text: str) -> Mapping:
    """Parse the mapping's YAML; a malformed file fails naming the field."""
    try:
        return Mapping.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{MAPPING_PATH.name} is invalid: {exc}") from None


@cache
def load_mapping(path: Path = MAPPING_PATH) -> Mapping:
    """The shipped mapping, validated once per process; a dead reference is an error."""
    mapping = parse_mapping(path.read_text(encoding="utf-8"))
    problems = mapping_problems(mapping)
    if problems:
        raise ConfigurationError(f"{path.name}: " + "; ".join(problems))
    return mapping
