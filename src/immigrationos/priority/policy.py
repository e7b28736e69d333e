"""Priority policies as versioned YAML: parsed, then validated against the catalogue and the law.

A policy names its owner, the dates it is in effect, the document it implements and the record
of its approval; its rules are aggravating or mitigating factors with weights, and its tiers
are read top to bottom, the first that holds placing the person. A person's score is the sum of
the aggravating weights that fired minus the sum of the mitigating ones.

Validation refuses, each with a message naming the feature and the reason:

- a prohibited attribute (DEVELOPERS.md) or a feature the catalogue does not have;
- a feature fed by a source whose agreement in force does not permit
  ``enforcement-prioritization``;
- a protective feature (8 U.S.C. 1367) used anywhere but a mitigating rule;
- a feature used both to mitigate and to aggravate or place in a tier, which would let a
  mitigating fact raise a score or a tier.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from immigrationos.core.errors import ValidationFailed
from immigrationos.priority import conditions as c
from immigrationos.priority.catalogue import FEATURES, prohibited_reason

PURPOSE = "enforcement-prioritization"
POLICY_DIR = Path(__file__).parent / "policies"


class PolicyInvalid(ValidationFailed):
    """A policy that cannot be adopted or run; ``problems`` lists every reason."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"policy {name} is invalid:\n- " + "\n- ".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceDocument(_Strict):
    title: str
    issued_by: str
    issued_on: date
    citation: str
    url: str | None = None


class ApprovalRecord(_Strict):
    approved_by: str
    approved_on: date
    record: str


class Effective(_Strict):
    start: date = Field(alias="from")
    until: date | None = None


class Omission(_Strict):
    criterion: str
    reason: str


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["aggravating", "mitigating"]
    label: str
    when: Any
    weight: float = Field(gt=0)
    cites: str | None = None


class TierSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    label: str
    when: Any
    lead: bool = True
    """Persons in this tier are leads an officer may look at (a lead is never an action)."""


class PolicySpec(_Strict):
    policy: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str
    owner: str
    effective: Effective
    source_document: SourceDocument
    approval: ApprovalRecord
    summary: str
    omitted: list[Omission] = []
    rules: list[RuleSpec]
    tiers: list[TierSpec]

    @field_validator("rules", "tiers")
    @classmethod
    def _unique(cls, items: list[Any]) -> list[Any]:
        ids = [i.id for i in items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"ids must be unique: {dupes}")
        return items


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    label: str
    weight: float
    cites: str | None
    cond: c.Cond

    @property
    def signed_weight(self) -> float:
        return self.weight if self.kind == "aggravating" else -self.weight

    @cached_property
    def features(self) -> set[str]:
        return c.features_of(self.cond)


@dataclass(frozen=True)
class Tier:
    id: str
    label: str
    lead: bool
    rank: int
    cond: c.Cond


@dataclass(frozen=True)
class Policy:
    """A parsed, validated policy, ready to run."""

    spec: PolicySpec
    text: str
    rules: list[Rule]
    tiers: list[Tier]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.policy

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def key(self) -> str:
        """``name@version``: the id a policy version is stored and cited under."""
        return f"{self.spec.policy}@{self.spec.version}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @cached_property
    def features(self) -> list[str]:
        used = set().union(
            *(r.features for r in self.rules), *(c.features_of(t.cond) for t in self.tiers)
        )
        return sorted(used)

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)

    def tier(self, tier_id: str) -> Tier:
        return next(t for t in self.tiers if t.id == tier_id)


def parse_policy(text: str, permitted: Mapping[str, frozenset[str]] | None = None) -> Policy:
    """Parse and validate a policy's YAML text.

    ``permitted`` maps each registered source to the purposes its agreement in force permits;
    without it (no store at hand) the shipped source definitions stand in.
    """
    raw = yaml.safe_load(text)
    name = str(raw.get("policy", "?")) if isinstance(raw, dict) else "?"
    if not isinstance(raw, dict):
        raise PolicyInvalid(name, ["a policy file is a YAML mapping"])
    try:
        spec = PolicySpec.model_validate(raw)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise PolicyInvalid(f"{name}@{raw.get('version', '?')}", problems) from None
    return _build(spec, text, permitted if permitted is not None else shipped_permissions())


def _build(spec: PolicySpec, text: str, permitted: Mapping[str, frozenset[str]]) -> Policy:
    problems: list[str] = []
    rules, tiers = [], []
    for r in spec.rules:
        try:
            rules.append(
                Rule(r.id, r.kind, r.label, r.weight, r.cites, c.parse(r.when, f"rule {r.id}"))
            )
        except c.ConditionError as err:
            problems.append(str(err))
    for rank, t in enumerate(spec.tiers, start=1):
        try:
            tiers.append(Tier(t.id, t.label, t.lead, rank, c.parse(t.when, f"tier {t.id}")))
        except c.ConditionError as err:
            problems.append(str(err))
    if not problems:
        problems = _problems(spec, rules, tiers, permitted)
    if problems:
        raise PolicyInvalid(f"{spec.policy}@{spec.version}", problems)
    return Policy(spec, text, rules, tiers, _warnings(rules, tiers))


def _problems(
    spec: PolicySpec, rules: list[Rule], tiers: list[Tier], permitted: Mapping[str, frozenset[str]]
) -> list[str]:
    problems: list[str] = []
    if spec.effective.until and spec.effective.until < spec.effective.start:
        problems.append("effective.until is before effective.from")
    kinds = {n: f.kind for n, f in FEATURES.items()}
    named = [(r.features, f"rule {r.id}", r.cond) for r in rules] + [
        (c.features_of(t.cond), f"tier {t.id}", t.cond) for t in tiers
    ]
    for features, where, cond in named:
        problems += [p for f in sorted(features) for p in _feature_problems(f, where, permitted)]
        problems += c.check_types(cond, kinds, where)
    problems += _rule_problems(rules)
    problems += _tier_problems(rules, tiers)
    return problems


def _feature_problems(name: str, where: str, permitted: Mapping[str, frozenset[str]]) -> list[str]:
    reason = prohibited_reason(name)
    if reason:
        return [f"{where}: feature {name!r} is a prohibited attribute: {reason}"]
    feature = FEATURES.get(name)
    if feature is None:
        near = difflib.get_close_matches(name, FEATURES, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        return [f"{where}: unknown feature {name!r}; see docs/prioritization.md{hint}"]
    out = []
    for source in feature.sources:
        purposes = permitted.get(source)
        if purposes is not None and PURPOSE not in purposes:
            out.append(
                f"{where}: feature {name!r} is fed by source {source!r}, whose agreement does "
                f"not permit {PURPOSE} (it permits: {', '.join(sorted(purposes))})"
            )
    return out


def _rule_problems(rules: list[Rule]) -> list[str]:
    problems = []
    for r in rules:
        bad = [c.uses_score(r.cond) and "score", c.rules_of(r.cond) and "fired"]
        for what in filter(None, bad):
            problems.append(f"rule {r.id}: '{what}' may only be used in tiers")
        protective = sorted(f for f in r.features if f in FEATURES and FEATURES[f].protective)
        if protective and r.kind != "mitigating":
            problems.append(
                f"rule {r.id}: feature {protective[0]!r} serves protection only "
                "(8 U.S.C. 1367) and may appear only in a mitigating rule"
            )
    mitigating = {f for r in rules if r.kind == "mitigating" for f in r.features}
    aggravating = {f for r in rules if r.kind == "aggravating" for f in r.features}
    for f in sorted(mitigating & aggravating):
        problems.append(
            f"feature {f!r} is used to mitigate and to aggravate; a mitigating fact must "
            "never raise a score"
        )
    return problems


def _tier_problems(rules: list[Rule], tiers: list[Tier]) -> list[str]:
    problems = []
    ids = {r.id for r in rules}
    mitigating = {f for r in rules if r.kind == "mitigating" for f in r.features}
    mitigating_rules = {r.id for r in rules if r.kind == "mitigating"}
    for t in tiers:
        unknown = sorted(c.rules_of(t.cond) - ids)
        if unknown:
            problems.append(f"tier {t.id}: refers to unknown rules {unknown}")
        if c.rules_of(t.cond) & mitigating_rules:
            problems.append(f"tier {t.id}: a mitigating rule may lower the score, not place a tier")
        for f in sorted(c.features_of(t.cond)):
            if f in mitigating or (f in FEATURES and FEATURES[f].protective):
                problems.append(
                    f"tier {t.id}: feature {f!r} mitigates, so it may not place a person in a tier"
                )
    if not tiers or not isinstance(tiers[-1].cond, c.Always):
        problems.append("the last tier must be `when: always` (everyone is placed somewhere)")
    if tiers and tiers[-1].lead:
        problems.append(f"the last tier ({tiers[-1].id}) catches everyone left: set `lead: false`")
    return problems


def _warnings(rules: list[Rule], tiers: list[Tier]) -> list[str]:
    used = set().union(*(r.features for r in rules), *(c.features_of(t.cond) for t in tiers))
    return [
        f"feature {f!r} is named by the policy but carried by no source here: it never fires "
        "and an officer must weigh it in person"
        for f in sorted(used)
        if not FEATURES[f].collected
    ]


def shipped_permissions() -> dict[str, frozenset[str]]:
    """Each shipped source definition's permitted purposes (when no store is at hand)."""
    from immigrationos.sources.definition import shipped_definitions

    return {
        d.id: frozenset(str(p) for p in d.agreement.permitted_purposes)
        for d in shipped_definitions()
    }


def shipped_policies() -> list[Path]:
    """The example policies shipped with the project."""
    return sorted(POLICY_DIR.glob("*.yaml"))


def load_policy(path: Path, permitted: Mapping[str, frozenset[str]] | None = None) -> Policy:
    return parse_policy(path.read_text(encoding="utf-8"), permitted)
