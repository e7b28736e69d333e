"""Name normalisation and name keys for matching.

What comes from maintained libraries:

- ASCII folding and tokenisation: ``rigour.text.ascii_text`` and ``rigour.names.tokenize_name``
  (OpenSanctions' name stack, MIT);
- cross-cultural name symbols: ``rigour.names.analyze_names`` tags each name part with the
  Wikidata name items it can stand for (``NAME:Q5837762`` is shared by Mohammed, Muhammad and
  Mohamed; ``NICK:BILL`` by William and Bill; Zhang and Chang share an item). Two records
  whose name parts share a symbol are spelling or transliteration variants of one name;
- phonetic keys: ``rigour.text.metaphone``.

What is written here, and why: the particle rule (dropping "de la", "al-", "bin", "dos" from
surname keys) and the "FNU" convention are specific to how U.S. immigration records write
names (the government's own placeholder for "first name unknown"); no library knows them.
Everything is cached per distinct token, so a million records cost a few hundred thousand
library calls at most.

Phonetic codes are deliberately a weak signal: Hassan and Hussein share every common code
(both ``HSN``) but no name symbol, so the model ranks spelling and symbols above phonetics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rigour.names import NamePartTag, NameTypeTag, analyze_names, tokenize_name
from rigour.text import ascii_text, metaphone

#: Surname particles and articles dropped from surname keys (kept in the display form).
PARTICLES = frozenset(
    [
        "de",
        "del",
        "della",
        "der",
        "di",
        "da",
        "das",
        "do",
        "dos",
        "du",
        "la",
        "las",
        "le",
        "los",
        "van",
        "von",
        "den",
        "ten",
        "ter",
        "al",
        "el",
        "ul",
        "bin",
        "ibn",
        "bint",
        "ben",
        "abu",
        "st",
    ]
)
#: Values that stand for "no name" (FNU/LNU: first/last name unknown).
NO_NAME = frozenset({"fnu", "lnu", "unknown", "na", "n a", "none", "xxx"})


@dataclass(frozen=True)
class NameKeys:
    """The keys one record's name contributes to matching (all lower-case ASCII)."""

    given: str | None
    """Whole given name(s), normalised ("jose luis")."""
    given_first: str | None
    """First given token ("jose")."""
    given_joined: str | None
    """Given tokens joined without spaces ("xiaoming" for "Xiao Ming" or "Xiao-Ming")."""
    family: str | None
    """Surname tokens without particles, space-joined ("garcia lopez", "cruz")."""
    family_tokens: tuple[str, ...]
    """Each surname token without particles; a double surname matches on either."""
    given_tokens: tuple[str, ...]
    given_symbols: tuple[str, ...]
    family_symbols: tuple[str, ...]
    given_phonetic: str | None
    family_phonetic: tuple[str, ...]


@lru_cache(maxsize=500_000)
def fold(text: str) -> str:
    """Lower-case ASCII, punctuation reduced to single spaces ("Jean-Pierre" → "jean pierre")."""
    return " ".join(tokenize_name(ascii_text(text).lower()))


def tokens(text: str | None) -> tuple[str, ...]:
    """The folded tokens of a name field; empty for absent or "unknown" values."""
    if not text:
        return ()
    folded = fold(text)
    if not folded or folded in NO_NAME:
        return ()
    return tuple(folded.split())


def _symbols(token: str, tag: str) -> tuple[str, ...]:
    return _symbols_of(f"{tag}:{token}")


@lru_cache(maxsize=500_000)
def _symbols_of(key: str) -> tuple[str, ...]:
    """Keyed by one string: a cache keyed by tuples is untracked by each garbage collection
    and tracked again by the next new key, then walked whole by the collector (see
    ``records._name_part``); one keyed by strings stays untracked."""
    tag, token = key.split(":", 1)
    part_tag = NamePartTag.GIVEN if tag == "given" else NamePartTag.FAMILY
    names = analyze_names(
        NameTypeTag.PER, [token], part_tags={part_tag: [token]}, consolidate=False, phonetics=False
    )
    found = {
        str(span.symbol)
        for name in names
        for span in name.spans
        if str(span.symbol).startswith(("[NAME:", "[NICK:"))
    }
    return tuple(sorted(s.strip("[]") for s in found))


def symbols(parts: tuple[str, ...], tag: str) -> tuple[str, ...]:
    """Name symbols of each token (``NAME:Q…``, ``NICK:…``), merged and sorted."""
    return tuple(sorted({s for p in parts for s in _symbols(p, tag)}))


@lru_cache(maxsize=500_000)
def phonetic(token: str) -> str:
    """The metaphone key of one token ("" when it has none)."""
    return metaphone(token) or ""


def surname_tokens(family: tuple[str, ...]) -> tuple[str, ...]:
    """Surname tokens without particles; a particle-only surname keeps its tokens."""
    kept = tuple(t for t in family if t not in PARTICLES)
    return kept or family


def keys(given: str | None, family: str | None, middle: str | None = None) -> NameKeys:
    """All matching keys of one record's name.

    The middle name is appended to the given tokens only for the whole-given key, so that
    "Jose Luis" (middle in the given field) and "Jose" + middle "Luis" compare alike.
    """
    g = tokens(given)
    f = surname_tokens(tokens(family))
    m = tokens(middle)
    whole = g + m
    return NameKeys(
        given=" ".join(whole) or None,
        given_first=g[0] if g else None,
        given_joined="".join(g) or None,
        family=" ".join(f) or None,
        family_tokens=f,
        given_tokens=g,
        given_symbols=symbols(g, "given"),
        family_symbols=symbols(f, "family"),
        given_phonetic=phonetic(g[0]) if g else None,
        family_phonetic=tuple(sorted({phonetic(t) for t in f} - {""})),
    )
