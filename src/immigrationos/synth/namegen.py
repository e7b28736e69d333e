"""Drawing true names and their culture-specific alternative forms.

Random draws are vectorised per culture; assembling the strings is a short Python loop per
person, which is cheap next to the per-record work and keeps each culture rule readable.
"""

from __future__ import annotations

import numpy as np

from immigrationos.synth.names import (
    Culture,
    article_variants,
    feminine,
    join_parts,
    spacing_variants,
    variant_groups,
)


def _pick(options: tuple[str, ...] | list[str], u: float) -> str | None:
    return options[int(u * len(options))] if options else None


def _given(culture: Culture, g1: str, g2: str | None) -> str:
    joiner = str(culture.rule("given_joiner", " "))
    parts = g1.split(" ")
    if g2 and g2 != g1:
        parts += g2.split(" ")
    return join_parts(parts, joiner) if joiner == "" else joiner.join([g1, g2] if g2 else [g1])


def _given_alts(culture: Culture, g1: str, given: str) -> tuple[str, ...]:
    rest = given[len(g1) :] if given.startswith(g1) else ""
    forms = [v + rest for v in variant_groups().get(g1, ())]
    if "given" in culture.rule("spacing_variants", []):
        forms += spacing_variants(given)
    return tuple(forms)


def _family_alts(culture: Culture, surnames: list[str], sex: str) -> tuple[str, ...]:
    head, tail = surnames[0], surnames[1:]
    forms = list(variant_groups().get(head, ())) + list(article_variants(head))
    if "family" in culture.rule("spacing_variants", []):
        forms += spacing_variants(head)
    return tuple(" ".join([_sex_form(culture, f, sex), *tail]) for f in forms)


def _sex_form(culture: Culture, surname: str, sex: str) -> str:
    return feminine(surname) if sex == "F" and culture.rule("feminine_surnames", False) else surname


def _ordered(culture: Culture, paternal: str, maternal: str) -> list[str]:
    if int(culture.rule("surnames_per_person", 1)) == 1:
        return [paternal]
    if culture.rule("surname_order", "paternal_first") == "maternal_first":
        return [maternal, paternal]
    return [paternal, maternal]


def _middle(culture: Culture, drawn: dict[str, list[str]], i: int, sex: str) -> str:
    kind = culture.rule("middle", "none")
    if kind == "pool":
        return drawn[f"mid{sex}"][i]
    if kind == "surname":
        return drawn["mother"][i]
    if kind == "given":
        return drawn[f"g2{sex}"][i]
    return ""


def _draws(rng: np.random.Generator, culture: Culture, n: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sex in "MF":
        out[f"g1{sex}"] = culture.given[sex].draw(rng, n)
        out[f"g2{sex}"] = culture.given[sex].draw(rng, n)
        if culture.middle:
            out[f"mid{sex}"] = culture.middle[sex].draw(rng, n)
    for key in ("paternal", "maternal", "mother"):
        out[key] = culture.surnames.draw(rng, n)
    return out


def draw_names(rng: np.random.Generator, culture: Culture, sexes: list[str]) -> dict[str, list]:
    """True name parts and alternative forms for persons of one culture."""
    n = len(sexes)
    drawn = _draws(rng, culture, n)
    u = rng.random((n, 6))
    out: dict[str, list] = {
        k: [] for k in ("given", "middle", "family", "nickname", "given_alt", "family_alt")
    }
    out["one_surname"] = []
    for i, raw_sex in enumerate(sexes):
        sex = raw_sex if raw_sex in "MF" else ("F" if u[i, 0] < 0.5 else "M")
        _one(culture, drawn, i, sex, u[i], out)
    return out


def _one(
    culture: Culture, drawn: dict[str, list[str]], i: int, sex: str, u: np.ndarray, out: dict
) -> None:
    g1 = drawn[f"g1{sex}"][i]
    g2 = drawn[f"g2{sex}"][i] if u[1] < float(culture.rule("compound_given_rate", 0)) else None
    given = _given(culture, g1, g2)
    surnames = _ordered(culture, drawn["paternal"][i], drawn["maternal"][i])
    surnames = [_sex_form(culture, s, sex) for s in surnames]
    middle = _middle(culture, drawn, i, sex) if u[2] < float(culture.rule("middle_rate", 0)) else ""
    if u[3] < float(culture.rule("single_name_rate", 0)):
        out["given"].append("")
        out["middle"].append("")
        out["family"].append(given)
        for k in ("nickname", "given_alt", "family_alt", "one_surname"):
            out[k].append(None)
        return
    out["given"].append(given)
    out["middle"].append(middle if middle != given else "")
    out["family"].append(" ".join(surnames))
    out["nickname"].append(_pick(culture.nicknames.get(g1, ()), u[4]))
    out["given_alt"].append(_pick(_given_alts(culture, g1, given), u[5]))
    paternal_first = _ordered(culture, "p", "m")[0] == "p"
    out["family_alt"].append(_pick(_family_alts(culture, surnames, sex), u[4]))
    if len(surnames) == 2:
        paternal = surnames[0] if paternal_first else surnames[1]
        other = surnames[1] if paternal_first else surnames[0]
        out["one_surname"].append(paternal if u[5] < 0.7 else other)
    else:
        out["one_surname"].append(None)
