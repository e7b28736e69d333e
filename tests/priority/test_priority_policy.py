"""The policy language and its validator: what a policy may and may not say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from immigrationos.priority.catalogue import FEATURES
from immigrationos.priority.policy import (
    PolicyInvalid,
    load_policy,
    parse_policy,
    shipped_permissions,
    shipped_policies,
)

BASE = {
    "policy": "test-policy",
    "version": "1.0.0",
    "title": "Test",
    "owner": "Tests",
    "effective": {"from": "2025-01-01"},
    "source_document": {"title": "T", "issued_by": "T", "issued_on": "2025-01-01",
                        "citation": "T"},
    "approval": {"approved_by": "T", "approved_on": "2025-01-01", "record": "T"},
    "summary": "A test policy.",
    "rules": [{"id": "felon", "kind": "aggravating", "weight": 5, "when": "felony",
               "label": "Felony"}],
    "tiers": [{"id": "top", "label": "Top", "when": {"fired": ["felon"]}},
              {"id": "none", "label": "None", "when": "always", "lead": False}],
}  # fmt: skip


def _text(**changes: object) -> str:
    return yaml.safe_dump(BASE | changes, sort_keys=False)


def _problems(**changes: object) -> list[str]:
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(_text(**changes))
    return err.value.problems


def _rule(when: object, kind: str = "aggravating", rid: str = "r1") -> dict[str, object]:
    return {"id": rid, "kind": kind, "weight": 2, "when": when, "label": rid}


@pytest.mark.parametrize("path", shipped_policies(), ids=lambda p: p.stem)
def test_every_shipped_policy_is_valid_and_cites_its_source(path: Path) -> None:
    policy = load_policy(path)
    assert policy.spec.source_document.citation and policy.spec.approval.record
    assert policy.tiers[-1].lead is False
    assert all(
        not FEATURES[f].collected for w in policy.warnings for f in FEATURES if f"'{f}'" in w
    )


def test_three_frameworks_are_shipped() -> None:
    names = {load_policy(p).name for p in shipped_policies()}
    assert names == {"dhs-2014-priorities", "dhs-2021-guidelines", "dhs-2025-enforcement"}


@pytest.mark.parametrize(
    ("feature", "words"),
    [("religion", "religion"), ("gang_membership", "associations"),
     ("nationality", "immigration fact"), ("social_media", "speech"), ("ethnicity", "race")],
)  # fmt: skip
def test_a_prohibited_attribute_is_refused_with_the_reason(feature: str, words: str) -> None:
    problems = _problems(rules=[*BASE["rules"], _rule(feature)])  # type: ignore[list-item]
    assert any(feature in p and "prohibited" in p and words in p for p in problems)
    assert any("DEVELOPERS.md" in p for p in problems)


def test_an_unknown_feature_is_refused_with_a_suggestion() -> None:
    problems = _problems(rules=[*BASE["rules"], _rule("felonny")])  # type: ignore[list-item]
    assert problems == ["rule r1: unknown feature 'felonny'; see docs/prioritization.md "
                        "(did you mean felony?)"]  # fmt: skip


@pytest.mark.parametrize(("feature", "source"), [("tax_address_on_file", "tax_addresses"),
                                                 ("visa_class", "visas")])  # fmt: skip
def test_a_feature_whose_source_may_not_serve_prioritization_is_refused(
    feature: str, source: str
) -> None:
    problems = _problems(rules=[*BASE["rules"], _rule(feature)])  # type: ignore[list-item]
    assert len(problems) == 1
    assert f"feature {feature!r} is fed by source {source!r}" in problems[0]
    assert "does not permit enforcement-prioritization" in problems[0]


def test_the_agreements_in_force_decide_not_the_files() -> None:
    permitted = shipped_permissions() | {"departures": frozenset({"departure-verification"})}
    rule = _rule({"feature": "overstay_days", ">": 0})
    with pytest.raises(PolicyInvalid, match=r"overstay_days.*departures"):
        parse_policy(_text(rules=[*BASE["rules"], rule]), permitted)  # type: ignore[list-item]
    assert parse_policy(_text(rules=[*BASE["rules"], rule]))  # type: ignore[list-item]


def test_a_protective_feature_may_only_mitigate() -> None:
    problems = _problems(rules=[*BASE["rules"], _rule("victim_or_witness")])  # type: ignore[list-item]
    assert any("8 U.S.C. 1367" in p for p in problems)
    ok = _rule("victim_or_witness", kind="mitigating")
    assert parse_policy(_text(rules=[*BASE["rules"], ok]))  # type: ignore[list-item]


def test_a_feature_may_not_both_mitigate_and_aggravate() -> None:
    rules = [
        *BASE["rules"],
        _rule({"feature": "age_years", ">=": 65}, "mitigating", "old"),
        _rule({"feature": "age_years", "<": 30}, "aggravating", "young"),
    ]  # type: ignore[list-item]
    assert any(
        "'age_years' is used to mitigate and to aggravate" in p for p in _problems(rules=rules)
    )


def test_tiers_must_end_with_everyone_else_and_not_be_placed_by_mitigation() -> None:
    tiers = [
        {"id": "top", "label": "Top", "when": {"fired": ["felon", "old"]}},
        {"id": "rest", "label": "Rest", "when": "felony"},
    ]
    rules = [*BASE["rules"], _rule({"feature": "age_years", ">=": 65}, "mitigating", "old")]  # type: ignore[list-item]
    problems = _problems(tiers=tiers, rules=rules)
    assert any("mitigating rule may lower the score, not place a tier" in p for p in problems)
    assert any("last tier must be `when: always`" in p for p in problems)


@pytest.mark.parametrize(
    ("when", "message"),
    [({"feature": "felony", ">=": 3}, "is a boolean"),
     ({"feature": "last_entry_date", ">=": 3}, "is a date"),
     ({"feature": "max_sentence_days", ">=": "long"}, "compare it with a number"),
     ({"feature": "felony", "~": True}, "unknown operator"),
     ({"score": {">=": 3}}, "may only be used in tiers")],
)  # fmt: skip
def test_conditions_are_type_checked(when: object, message: str) -> None:
    problems = _problems(rules=[*BASE["rules"], _rule(when)])  # type: ignore[list-item]
    assert any(message in p for p in problems)


def test_structural_errors_are_listed_not_raised_one_by_one() -> None:
    problems = _problems(version="one", rules=[{"id": "X", "kind": "odd"}])
    assert any(p.startswith("version") for p in problems)
    assert any(p.startswith("rules.0") for p in problems)
