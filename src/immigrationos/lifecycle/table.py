"""The lifecycle table (``lifecycle.yaml``) as typed, validated data.

The engine never names a state or a transition in code: it asks this table. Validation at
load time catches a table that names an unknown state, guard, document, deadline, role or
parameter type, and enforces the rules the table itself must keep: nothing enters
``FINAL_ORDER`` without the ``final_order_holds`` guard (the order is computed, never typed
in), computed and system steps name no human role, and every enforcement step needs a
second person's approval.
"""

from __future__ import annotations

from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from immigrationos.accounts.roles import Role
from immigrationos.core.errors import ConfigurationError, ValidationFailed

TABLE_PATH = Path(__file__).with_name("lifecycle.yaml")
OPEN = "*open"
SAME = "*same"
REMEMBERED = "*remembered"
#: Steps that restrain a person or move towards removal: a second person must approve them.
ENFORCEMENT_STEPS = frozenset(
    {
        "arrest",
        "lodge_detainer",
        "issue_warrant_of_removal",
        "schedule_removal",
        "issue_expedited_order",
        "reinstate_prior_order",
        "redetain",
    }
)
FINALITY_GUARD = "final_order_holds"

ParamType = Literal["text", "date", "datetime", "choice", "bool", "int", "money", "country", "list"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StateSpec(_Strict):
    label: str
    group: str
    description: str
    terminal: bool = False


class ParamSpec(_Strict):
    type: ParamType
    required: bool = False
    choices: tuple[str, ...] = ()
    min_length: int | None = None
    minimum: float | None = None
    help: str | None = None


class ConditionSpec(_Strict):
    """A condition a step opens; ``$name`` values are taken from the step's parameters."""

    kind: str
    status: str
    country: str | None = None
    form: str | None = None

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        def value(v: str | None) -> Any:
            if isinstance(v, str) and v.startswith("$"):
                return params.get(v[1:])
            return v

        return {
            "kind": self.kind,
            "status": value(self.status),
            "country": value(self.country),
            "form": value(self.form),
        }


class Effects(_Strict):
    remember_state: bool = False
    remember_as: dict[str, str] = Field(default_factory=dict)
    """States not to return to as they were (a seat on a flight is given up: the case returns
    to the order, and removal is scheduled afresh with a new approval)."""
    citizenship: str | None = None
    opens: tuple[ConditionSpec, ...] = ()
    ends: tuple[str, ...] = ()
    cancels: tuple[str, ...] = ()
    deadlines: tuple[str, ...] = ()
    custody: str | None = None
    track: str | None = None
    close_case: bool = False
    leave_flight: bool = False
    travel_document: Literal["requested", "decided"] | None = None
    seat: Literal["assign"] | None = None
    mark_timeliness: str | None = None


class ApprovalSpec(_Strict):
    """``by``: a different user of one of these roles approves. ``joint``: one user of each
    role must take part (one requests, another of the other role approves)."""

    by: tuple[Role, ...] = ()
    joint: tuple[Role, ...] = ()
    valid_hours: int | None = None

    @property
    def approvers(self) -> tuple[Role, ...]:
        return self.by or self.joint


class TransitionSpec(_Strict):
    name: str = ""
    label: str
    kind: Literal["action", "computed", "system"] = "action"
    from_: tuple[str, ...] | str = Field(alias="from")
    to: str | None = None
    custody_from: tuple[str, ...] = ()
    custody_to: str | None = None
    by: tuple[Role, ...] = ()
    approval: ApprovalSpec | None = None
    documents: tuple[str, ...] = ()
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    effects: Effects = Field(default_factory=Effects)
    guards: tuple[str, ...] = ()

    @property
    def needs_approval(self) -> bool:
        return self.approval is not None


class DeadlineSpec(_Strict):
    label: str
    start: str
    days: int = 0
    business_days: int = 0
    hours: int = 0
    roll: Literal["next_business_day"] | None = None
    overdue_after_hours: int | None = None


class ApprovalDefaults(_Strict):
    default_valid_hours: int
    request_valid_hours: int


class LifecycleTable(_Strict):
    version: str
    states: dict[str, StateSpec]
    initial: str
    custody: dict[str, str]
    guard_sets: dict[str, tuple[str, ...]]
    deadlines: dict[str, DeadlineSpec]
    approvals: ApprovalDefaults
    transitions: dict[str, TransitionSpec]

    @field_validator("transitions", mode="before")
    @classmethod
    def _name_transitions(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {name: {**spec, "name": name} for name, spec in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> LifecycleTable:
        problems = [p for t in self.transitions.values() for p in self._problems(t)]
        if self.initial not in self.states:
            problems.append(f"initial state {self.initial!r} is not a state")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _problems(self, t: TransitionSpec) -> list[str]:
        from immigrationos.lifecycle.guards import GUARDS
        from immigrationos.lifecycle.render import TEMPLATES

        where = f"transition {t.name!r}"
        out: list[str] = []
        sources = [] if t.from_ == OPEN else list(t.from_)
        targets = [] if t.to in (None, SAME, REMEMBERED) else [t.to]
        out += [
            f"{where}: unknown state {s!r}" for s in [*sources, *targets] if s not in self.states
        ]
        if isinstance(t.from_, str) and t.from_ != OPEN:
            out.append(f"{where}: 'from' must be a list or {OPEN!r}")
        for g in t.guards:
            if g not in GUARDS and g not in self.guard_sets:
                out.append(f"{where}: unknown guard {g!r}")
        out += [f"{where}: unknown document {d!r}" for d in t.documents if d not in TEMPLATES]
        for d in (*t.effects.deadlines, *t.effects.cancels):
            if d not in self.deadlines:
                out.append(f"{where}: unknown deadline {d!r}")
        for s in (*t.effects.remember_as, *t.effects.remember_as.values()):
            if s not in self.states:
                out.append(f"{where}: unknown state {s!r} in remember_as")
        for c in (t.custody_to, *t.custody_from, t.effects.custody):
            if c is not None and c not in self.custody:
                out.append(f"{where}: unknown custody {c!r}")
        if t.to == "FINAL_ORDER" and FINALITY_GUARD not in self.expand(t.guards):
            out.append(f"{where}: enters FINAL_ORDER without the {FINALITY_GUARD!r} guard")
        if t.kind == "action" and not t.by:
            out.append(f"{where}: an action names the roles that may take it ('by')")
        if t.kind != "action" and (t.by or t.approval):
            out.append(f"{where}: a {t.kind} step is taken by no person and needs no approval")
        if t.name in ENFORCEMENT_STEPS and t.approval is None:
            out.append(f"{where}: an enforcement step needs a second person's approval")
        if t.to is None and t.custody_to is None:
            out.append(f"{where}: changes neither state nor custody")
        return out

    # -- questions the engine asks ------------------------------------------------------

    @cached_property
    def terminal(self) -> frozenset[str]:
        return frozenset(name for name, s in self.states.items() if s.terminal)

    @cached_property
    def open_states(self) -> tuple[str, ...]:
        return tuple(name for name in self.states if name not in self.terminal)

    def sources(self, t: TransitionSpec) -> tuple[str, ...]:
        """The states a transition may start from."""
        return self.open_states if t.from_ == OPEN else tuple(t.from_)

    def expand(self, guards: tuple[str, ...]) -> tuple[str, ...]:
        """Guard names with the guard sets spelled out, each once, in order."""
        out: list[str] = []
        for g in guards:
            for name in self.guard_sets.get(g, (g,)):
                if name not in out:
                    out.append(name)
        return tuple(out)

    def target(self, t: TransitionSpec, state: str, remembered: str | None) -> str:
        """The state a transition leads to from ``state``."""
        if t.to in (None, SAME):
            return state
        if t.to == REMEMBERED:
            return remembered or self.initial
        return t.to

    def transition(self, name: str) -> TransitionSpec:
        if name not in self.transitions:
            raise ValidationFailed(
                f"unknown action {name!r}; actions are: {', '.join(sorted(self.transitions))}"
            )
        return self.transitions[name]

    def computed(self) -> list[TransitionSpec]:
        return [t for t in self.transitions.values() if t.kind == "computed"]


_PYTHON_TYPES: dict[str, Any] = {
    "text": str,
    "date": date,
    "datetime": AwareDatetime,
    "choice": str,
    "bool": bool,
    "int": int,
    "money": float,
    "country": Annotated[str, Field(pattern=r"^[A-Z]{3}$")],
    "list": list[str],
}


@cache
def params_model(name: str) -> type[BaseModel]:
    """A Pydantic model of a transition's parameters (typed, with choices and minimums)."""
    spec = load_table().transition(name)
    fields: dict[str, Any] = {}
    for pname, p in spec.params.items():
        kind: Any = _PYTHON_TYPES[p.type]
        if p.choices:
            kind = Literal[p.choices]
        constraints: dict[str, Any] = {"description": p.help}
        if p.min_length is not None:
            constraints["min_length"] = p.min_length
        if p.minimum is not None:
            constraints["ge"] = p.minimum
        if p.required:
            fields[pname] = (kind, Field(**constraints))
        else:
            fields[pname] = (kind | None, Field(default=None, **constraints))
    return create_model(f"Params_{name}", __config__=ConfigDict(extra="forbid"), **fields)


def validate_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` against the transition's declared types; JSON-ready values back."""
    from pydantic import ValidationError

    try:
        parsed = params_model(name).model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationFailed(f"{name}: {problems}") from None
    return parsed.model_dump(mode="json", exclude_none=True)


@cache
def load_table(path: Path = TABLE_PATH) -> LifecycleTable:
    """The lifecycle table, validated; a broken table is a configuration error at start-up."""
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return LifecycleTable.model_validate(raw)
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"lifecycle table {path.name} is invalid: {exc}") from None
