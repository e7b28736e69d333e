"""Rule conditions: parsed from YAML into a small tree, compiled to SQL or evaluated in Python.

The language is deliberately small so that every condition reads as a sentence:

.. code-block:: yaml

    when: felony                                   # a boolean feature is true
    when: {feature: max_sentence_days, ">=": 365}  # a comparison
    when: {all: [felony, {feature: years_since_last_felony, "<": 5}]}
    when: {any: [...]}      when: {not: ...}
    when: {fired: [r1, r2]} # tiers only: one of these rules fired
    when: {score: {">=": 6}}                       # tiers only
    when: always                                   # tiers only: the last tier

A comparison with an unknown value is false, so an unavailable feature never fires a rule
(three-valued logic is folded to two at each test, in SQL and in Python alike).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from immigrationos.priority.catalogue import Kind

OPS = {"is": "=", "eq": "=", "ne": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_PY: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
}


class ConditionError(ValueError):
    """A condition that cannot be parsed; the message says where and why."""


@dataclass(frozen=True)
class Test:
    feature: str
    op: str
    value: Any


@dataclass(frozen=True)
class Between:
    feature: str
    low: Any
    high: Any


@dataclass(frozen=True)
class All:
    items: tuple[Cond, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Cond, ...]


@dataclass(frozen=True)
class Not:
    item: Cond


@dataclass(frozen=True)
class Fired:
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Score:
    op: str
    value: float


@dataclass(frozen=True)
class Always:
    pass


Cond = Test | Between | All | AnyOf | Not | Fired | Score | Always


def parse(raw: Any, where: str) -> Cond:
    """Parse one YAML condition; errors name ``where`` (the rule or tier)."""
    if raw == "always":
        return Always()
    if isinstance(raw, str):
        return Test(raw, "=", True)
    if not isinstance(raw, Mapping) or not raw:
        raise ConditionError(f"{where}: a condition is a feature name or a mapping, got {raw!r}")
    if "all" in raw or "any" in raw:
        key = "all" if "all" in raw else "any"
        items = raw[key]
        if not isinstance(items, list) or not items:
            raise ConditionError(f"{where}: '{key}' takes a non-empty list")
        parsed = tuple(parse(i, where) for i in items)
        return All(parsed) if key == "all" else AnyOf(parsed)
    if "not" in raw:
        return Not(parse(raw["not"], where))
    if "fired" in raw:
        names = raw["fired"]
        names = [names] if isinstance(names, str) else names
        return Fired(tuple(str(n) for n in names))
    if "score" in raw:
        return _score(raw["score"], where)
    if "feature" in raw:
        return _test(raw, where)
    raise ConditionError(f"{where}: unknown condition keys {sorted(raw)}")


def _score(spec: Any, where: str) -> Score:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConditionError(f"{where}: 'score' takes one comparison, e.g. {{'>=': 6}}")
    ((op, value),) = spec.items()
    if op not in OPS or op == "is":
        raise ConditionError(f"{where}: unknown score operator {op!r}")
    return Score(OPS[op], float(value))


def _test(raw: Mapping[str, Any], where: str) -> Cond:
    feature = str(raw["feature"])
    ops = [k for k in raw if k != "feature"]
    if len(ops) != 1:
        raise ConditionError(f"{where}: feature {feature!r} needs exactly one operator")
    op = ops[0]
    value = raw[op]
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ConditionError(f"{where}: 'between' takes [low, high]")
        return Between(feature, value[0], value[1])
    if op not in OPS:
        raise ConditionError(f"{where}: unknown operator {op!r} (use {', '.join(OPS)}, between)")
    return Test(feature, OPS[op], value)


def features_of(cond: Cond) -> set[str]:
    """Every feature a condition names."""
    if isinstance(cond, Test | Between):
        return {cond.feature}
    if isinstance(cond, All | AnyOf):
        return set().union(*(features_of(i) for i in cond.items))
    if isinstance(cond, Not):
        return features_of(cond.item)
    return set()


def rules_of(cond: Cond) -> set[str]:
    """Every rule a tier condition refers to (``fired``)."""
    if isinstance(cond, Fired):
        return set(cond.rules)
    if isinstance(cond, All | AnyOf):
        return set().union(*(rules_of(i) for i in cond.items))
    if isinstance(cond, Not):
        return rules_of(cond.item)
    return set()


def uses_score(cond: Cond) -> bool:
    if isinstance(cond, Score):
        return True
    if isinstance(cond, All | AnyOf):
        return any(uses_score(i) for i in cond.items)
    if isinstance(cond, Not):
        return uses_score(cond.item)
    return False


def check_types(cond: Cond, kinds: Mapping[str, Kind], where: str) -> list[str]:
    """Problems with operators or values for the features' kinds."""
    if isinstance(cond, All | AnyOf):
        return [p for i in cond.items for p in check_types(i, kinds, where)]
    if isinstance(cond, Not):
        return check_types(cond.item, kinds, where)
    if isinstance(cond, Test):
        return _check_test(cond.feature, cond.op, [cond.value], kinds, where)
    if isinstance(cond, Between):
        return _check_test(cond.feature, ">=", [cond.low, cond.high], kinds, where)
    return []


def _check_test(
    feature: str, op: str, values: list[Any], kinds: Mapping[str, Kind], where: str
) -> list[str]:
    kind = kinds.get(feature)
    if kind is None:
        return []
    if kind is Kind.BOOLEAN:
        ok = op in ("=", "<>") and all(isinstance(v, bool) for v in values)
        return [] if ok else [f"{where}: {feature!r} is a boolean; use it as `is: true|false`"]
    if kind is Kind.DATE:
        ok = all(isinstance(v, date) for v in values)
        return [] if ok else [f"{where}: {feature!r} is a date; compare it with a YYYY-MM-DD date"]
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return [] if ok else [f"{where}: {feature!r} is a {kind.value}; compare it with a number"]


# -- compilation ------------------------------------------------------------------------------


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return repr(float(value))


def to_sql(cond: Cond, column: Callable[[str], str], fired: Callable[[str], str]) -> str:
    """A SQL boolean expression (never NULL) for DuckDB or PostgreSQL."""
    if isinstance(cond, Always):
        return "TRUE"
    if isinstance(cond, Test):
        return f"coalesce({column(cond.feature)} {cond.op} {_literal(cond.value)}, FALSE)"
    if isinstance(cond, Between):
        col = column(cond.feature)
        return f"coalesce({col} BETWEEN {_literal(cond.low)} AND {_literal(cond.high)}, FALSE)"
    if isinstance(cond, All | AnyOf):
        joiner = " AND " if isinstance(cond, All) else " OR "
        return "(" + joiner.join(to_sql(i, column, fired) for i in cond.items) + ")"
    if isinstance(cond, Not):
        return f"(NOT {to_sql(cond.item, column, fired)})"
    if isinstance(cond, Fired):
        return "(" + " OR ".join(fired(r) for r in cond.rules) + ")"
    return f"(score {cond.op} {cond.value!r})"


def holds(cond: Cond, row: Mapping[str, Any], fired: set[str], score: float = 0.0) -> bool:
    """Evaluate a condition for one person in Python (the explanation and the test oracle)."""
    if isinstance(cond, Always):
        return True
    if isinstance(cond, Test):
        value = row.get(cond.feature)
        return value is not None and _PY[cond.op](value, cond.value)
    if isinstance(cond, Between):
        value = row.get(cond.feature)
        return value is not None and bool(cond.low <= value <= cond.high)
    if isinstance(cond, All):
        return all(holds(i, row, fired, score) for i in cond.items)
    if isinstance(cond, AnyOf):
        return any(holds(i, row, fired, score) for i in cond.items)
    if isinstance(cond, Not):
        return not holds(cond.item, row, fired, score)
    if isinstance(cond, Fired):
        return bool(fired & set(cond.rules))
    return _PY[cond.op](score, cond.value)


def describe(cond: Cond) -> str:
    """The condition as a sentence fragment, for explanations and reports."""
    if isinstance(cond, Always):
        return "always"
    if isinstance(cond, Test):
        if cond.value is True and cond.op == "=":
            return cond.feature
        if cond.value is False and cond.op == "=":
            return f"not {cond.feature}"
        value = cond.value.isoformat() if isinstance(cond.value, date) else cond.value
        return f"{cond.feature} {cond.op} {value}"
    if isinstance(cond, Between):
        return f"{cond.feature} between {cond.low} and {cond.high}"
    if isinstance(cond, All | AnyOf):
        joiner = " and " if isinstance(cond, All) else " or "
        return "(" + joiner.join(describe(i) for i in cond.items) + ")"
    if isinstance(cond, Not):
        return f"not {describe(cond.item)}"
    if isinstance(cond, Fired):
        return "rule " + " or ".join(cond.rules) + " fired"
    return f"score {cond.op} {cond.value:g}"
