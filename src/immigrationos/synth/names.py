"""Name cultures: loading the pools and drawing true names with their variant spellings.

The pools and the structural rules of each culture live in ``data/cultures.yaml``; this module
turns them into a person's true name plus the alternative forms other systems plausibly write
(nickname, transliteration, spacing, article spelling, a single surname), so that the noise
step only has to pick between precomputed forms.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

PLACEHOLDER_GIVEN = "FNU"  #: U.S. convention for a person with a single name


def _data(name: str) -> Any:
    text = resources.files("immigrationos.synth").joinpath("data", name).read_text("utf-8")
    return yaml.safe_load(text)


@lru_cache(maxsize=1)
def world_data() -> dict[str, Any]:
    """Parsed ``data/world.yaml``."""
    data: dict[str, Any] = _data("world.yaml")
    return data


@dataclass(frozen=True)
class Pool:
    """Names ordered by frequency with Zipf probabilities."""

    names: tuple[str, ...]
    p: np.ndarray

    @classmethod
    def of(cls, names: list[str], s: float) -> Pool:
        weights = 1.0 / np.arange(1, len(names) + 1) ** s
        return cls(tuple(str(n) for n in names), weights / weights.sum())

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        idx = rng.choice(len(self.names), size=n, p=self.p)
        return [self.names[i] for i in idx]


@dataclass(frozen=True)
class Culture:
    """One naming culture: pools plus the rules behind its variation patterns."""

    name: str
    given: dict[str, Pool]
    middle: dict[str, Pool] | None
    surnames: Pool
    spec: dict[str, Any]
    nicknames: dict[str, tuple[str, ...]]

    def rule(self, key: str, default: Any) -> Any:
        return self.spec.get(key, default)


@lru_cache(maxsize=1)
def cultures() -> dict[str, Culture]:
    """All cultures of ``data/cultures.yaml`` by name."""
    return {name: _culture(name, spec) for name, spec in _data("cultures.yaml")["cultures"].items()}


def _culture(name: str, spec: dict[str, Any]) -> Culture:
    zipf, szipf = float(spec.get("zipf", 1.0)), float(spec.get("surname_zipf", 1.0))
    given = {"M": Pool.of(spec["given_male"], zipf), "F": Pool.of(spec["given_female"], zipf)}
    middle = None
    if spec.get("middle") == "pool":
        middle = {"M": Pool.of(spec["middle_male"], 1.0), "F": Pool.of(spec["middle_female"], 1.0)}
    nick = {str(k): tuple(str(x) for x in v) for k, v in (spec.get("nicknames") or {}).items()}
    return Culture(name, given, middle, Pool.of(spec["surnames"], szipf), spec, nick)


@lru_cache(maxsize=1)
def variant_groups() -> dict[str, tuple[str, ...]]:
    """Name -> the other spellings in its transliteration group."""
    out: dict[str, tuple[str, ...]] = {}
    for group in _data("cultures.yaml")["variant_groups"]:
        members = [str(m) for m in group]
        for m in members:
            out[m] = tuple(x for x in members if x != m)
    return out


@lru_cache(maxsize=65536)
def deaccent(text: str) -> str:
    """The name without diacritics (what an ASCII-only system stores)."""
    decomposed = unicodedata.normalize("NFKD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def join_parts(parts: list[str], joiner: str) -> str:
    """Join name parts; joined (pinyin-style) names keep one capital letter."""
    if joiner == "":
        return parts[0] + "".join(p.lower() for p in parts[1:])
    return joiner.join(parts)


@lru_cache(maxsize=65536)
def spacing_variants(text: str) -> tuple[str, ...]:
    """Spaced, hyphenated and joined spellings of a multi-part name, except ``text`` itself."""
    parts = text.replace("-", " ").split()
    if len(parts) < 2:
        return ()
    forms = {join_parts(parts, " "), join_parts(parts, "-"), join_parts(parts, "")}
    return tuple(sorted(forms - {text}))


@lru_cache(maxsize=65536)
def article_variants(text: str) -> tuple[str, ...]:
    """Arabic surname particles written differently: al-/el-/Al /Al..., bin/ibn."""
    head, _, rest = text.partition(" ") if text.startswith(("bin ", "ibn ")) else ("", "", "")
    if head:
        return tuple(f"{p} {rest}" for p in ("bin", "ibn", "Bin", "Ibn") if f"{p} {rest}" != text)
    for article in ("al-", "el-"):
        if text.startswith(article):
            root = text[len(article) :]
            forms = {f"al-{root}", f"el-{root}", f"Al {root}", f"Al-{root}", f"Al{root.lower()}"}
            return tuple(sorted(forms - {text}))
    return ()


def feminine(surname: str) -> str:
    """Slavic feminine surname form (Ivanov -> Ivanova, Kowalski -> Kowalska)."""
    if surname.endswith(("ov", "ev", "in")):
        return surname + "a"
    if surname.endswith("ski"):
        return surname[:-1] + "a"
    if surname.endswith(("sky", "skiy")):
        return surname.rstrip("iy") + "aya"
    return surname
