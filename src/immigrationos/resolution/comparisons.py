"""The comparisons of the person model, declared once and compiled two ways.

Each comparison is an ordered list of levels; each level's condition is a small expression
(:class:`Expr`) that compiles to SQL for a Splink dialect (DuckDB by default, Spark to scale
out) and evaluates in Python on two feature rows. Splink trains and predicts with the SQL;
the incremental linker (:mod:`immigrationos.resolution.incremental`) scores with the Python
form, so a fresh encounter is scored by exactly the model that built the index (a test checks
both agree on sampled pairs).

A tiny expression language is written here because Splink's level creators produce SQL only;
nothing maintained gives one definition both a SQL and a Python evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rapidfuzz.distance import JaroWinkler, Levenshtein

Dialect = Literal["duckdb", "spark"]
Row = Mapping[str, Any]


class Expr:
    """A condition on a pair of feature rows (left ``l``, right ``r``)."""

    def sql(self, dialect: Dialect) -> str:
        raise NotImplementedError

    def test(self, l: Row, r: Row) -> bool:
        raise NotImplementedError


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and not value)


@dataclass(frozen=True)
class Missing(Expr):
    """Either side lacks the value (null or empty list)."""

    col: str
    is_list: bool = False

    def sql(self, dialect: Dialect) -> str:
        c = self.col
        parts = [f"{c}_l IS NULL", f"{c}_r IS NULL"]
        if self.is_list:
            size = "len" if dialect == "duckdb" else "size"
            parts += [f"{size}({c}_l) = 0", f"{size}({c}_r) = 0"]
        return "(" + " OR ".join(parts) + ")"

    def test(self, l: Row, r: Row) -> bool:
        return _empty(l.get(self.col)) or _empty(r.get(self.col))


@dataclass(frozen=True)
class Eq(Expr):
    """``l.col = r.other`` (``other`` defaults to ``col``); false when either is missing."""

    col: str
    other: str | None = None

    def sql(self, dialect: Dialect) -> str:
        return f"{self.col}_l = {self.other or self.col}_r"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.other or self.col)
        return a is not None and b is not None and a == b


@dataclass(frozen=True)
class Overlap(Expr):
    """The two lists share an element."""

    col: str

    def sql(self, dialect: Dialect) -> str:
        fn = "list_has_any" if dialect == "duckdb" else "arrays_overlap"
        return f"{fn}({self.col}_l, {self.col}_r)"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col) or (), r.get(self.col) or ()
        return bool(set(a) & set(b))


@dataclass(frozen=True)
class Swapped(Expr):
    """Given and family names exchanged: each side's first given name is among the other's
    surnames and its first surname among the other's given names."""

    def sql(self, dialect: Dialect) -> str:
        fn = "list_contains" if dialect == "duckdb" else "array_contains"

        def one(a: str, b: str) -> str:
            return (
                f"(coalesce({fn}(family_tokens_{b}, given_first_{a}), false) AND "
                f"coalesce({fn}(given_tokens_{b}, family_first_{a}), false))"
            )

        return f"({one('l', 'r')} OR {one('r', 'l')})"

    def test(self, l: Row, r: Row) -> bool:
        def one(a: Row, b: Row) -> bool:
            g, f = a.get("given_first"), a.get("family_first")
            return (
                g is not None
                and f is not None
                and g in (b.get("family_tokens") or ())
                and f in (b.get("given_tokens") or ())
            )

        return one(l, r) or one(r, l)


@dataclass(frozen=True)
class JaroWinklerAtLeast(Expr):
    """Jaro-Winkler similarity of the two values at least ``threshold``."""

    col: str
    threshold: float

    def sql(self, dialect: Dialect) -> str:
        fn = "jaro_winkler_similarity" if dialect == "duckdb" else "jaro_winkler"
        return f"{fn}({self.col}_l, {self.col}_r) >= {self.threshold}"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.col)
        if a is None or b is None:
            return False
        return bool(JaroWinkler.similarity(a, b) >= self.threshold)


@dataclass(frozen=True)
class EditsAtMost(Expr):
    """Levenshtein distance of the two values at most ``edits``."""

    col: str
    edits: int

    def sql(self, dialect: Dialect) -> str:
        return f"levenshtein({self.col}_l, {self.col}_r) <= {self.edits}"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.col)
        return a is not None and b is not None and Levenshtein.distance(a, b) <= self.edits


@dataclass(frozen=True)
class YearsApart(Expr):
    """The integer columns differ by exactly ``years``."""

    col: str
    years: int

    def sql(self, dialect: Dialect) -> str:
        return f"abs({self.col}_l - {self.col}_r) = {self.years}"

    def test(self, l: Row, r: Row) -> bool:
        a, b = l.get(self.col), r.get(self.col)
        return a is not None and b is not None and abs(a - b) == self.years


@dataclass(frozen=True)
class Flag(Expr):
    """A boolean column is true on the left side, on either side, or on neither."""

    col: str
    side: Literal["left", "either", "neither"]

    def sql(self, dialect: Dialect) -> str:
        c = self.col
        if self.side == "left":
            return f"coalesce({c}_l, false)"
        if self.side == "either":
            return f"(coalesce({c}_l, false) OR coalesce({c}_r, false))"
        return f"NOT (coalesce({c}_l, false) OR coalesce({c}_r, false))"

    def test(self, l: Row, r: Row) -> bool:
        a, b = bool(l.get(self.col)), bool(r.get(self.col))
        if self.side == "left":
            return a
        return (a or b) if self.side == "either" else not (a or b)


@dataclass(frozen=True)
class All(Expr):
    parts: tuple[Expr, ...]

    def sql(self, dialect: Dialect) -> str:
        return "(" + " AND ".join(p.sql(dialect) for p in self.parts) + ")"

    def test(self, l: Row, r: Row) -> bool:
        return all(p.test(l, r) for p in self.parts)


@dataclass(frozen=True)
class AnyOf(Expr):
    parts: tuple[Expr, ...]

    def sql(self, dialect: Dialect) -> str:
        return "(" + " OR ".join(p.sql(dialect) for p in self.parts) + ")"

    def test(self, l: Row, r: Row) -> bool:
        return any(p.test(l, r) for p in self.parts)


@dataclass(frozen=True)
class Level:
    """One level of a comparison; ``tf`` names the column for term-frequency adjustment."""

    label: str
    expr: Expr | None
    """None for the final 'everything else' level."""
    is_null: bool = False
    tf: str | None = None


@dataclass(frozen=True)
class Comparison:
    name: str
    description: str
    levels: tuple[Level, ...]

    def level_of(self, l: Row, r: Row) -> int:
        """The index of the first level whose condition holds (the last is 'else')."""
        for i, level in enumerate(self.levels):
            if level.expr is None or level.expr.test(l, r):
                return i
        return len(self.levels) - 1


def _null(col: str, label: str, is_list: bool = False) -> Level:
    return Level(label, Missing(col, is_list), is_null=True)


def _else(label: str = "different") -> Level:
    return Level(label, None)


def _identifier(name: str, col: str, description: str) -> Comparison:
    return Comparison(
        name,
        description,
        (_null(col, f"{name} missing"), Level("exact", Eq(col)), _else()),
    )


GIVEN = Comparison(
    "given_name",
    "Given name: exact, same first name or same letters, a transliteration or nickname variant "
    "(shared name symbol), a typo, swapped with the surname, then sound-alike only.",
    (
        _null("given_first", "given name missing"),
        Level("exact", Eq("given"), tf="given"),
        Level("same first name or spacing", AnyOf((Eq("given_first"), Eq("given_joined")))),
        Level("name variant (symbol)", Overlap("given_symbols")),
        Level("typo (Jaro-Winkler >= 0.9)", JaroWinklerAtLeast("given_first", 0.9)),
        Level("given and surname swapped", Swapped()),
        Level("sounds alike only (metaphone)", Eq("given_phonetic")),
        _else(),
    ),
)

FAMILY = Comparison(
    "family_name",
    "Surname: exact, one of two surnames shared, a transliteration variant, a typo, swapped "
    "with the given name, then sound-alike only.",
    (
        _null("family", "surname missing"),
        Level("exact", Eq("family"), tf="family"),
        Level("a surname shared (double surnames)", Overlap("family_tokens")),
        Level("surname variant (symbol)", Overlap("family_symbols")),
        Level("typo (Jaro-Winkler >= 0.9)", JaroWinklerAtLeast("family", 0.9)),
        Level("given and surname swapped", Swapped()),
        Level("sounds alike only (metaphone)", Overlap("family_phonetic")),
        _else(),
    ),
)

BIRTH_DATE = Comparison(
    "birth_date",
    "Birth date: exact, exact but 1 January (a common default, down-weighted), day and month "
    "swapped, one side defaulted to 1 January of the same year, one year apart.",
    (
        _null("dob", "birth date missing or placeholder"),
        Level("exact", All((Eq("dob"), Flag("dob_default", "neither")))),
        Level("exact, 1 January (default date)", Eq("dob")),
        Level("day and month swapped", Eq("dob", "dob_swap")),
        Level(
            "one side 1 January, same year (default date)",
            All((Eq("dob_year"), Flag("dob_default", "either"))),
        ),
        Level("same day, one year apart", All((Eq("dob_md"), YearsApart("dob_year", 1)))),
        _else(),
    ),
)

A_NUMBER = Comparison(
    "a_number",
    "A-number: exact, or one digit different (a typo).",
    (
        _null("a_number", "A-number missing"),
        Level("exact", Eq("a_number")),
        Level("one digit different", EditsAtMost("a_number", 1)),
        _else(),
    ),
)

PASSPORT = Comparison(
    "passport",
    "Passport number with issuing country: both equal, or the number alone.",
    (
        _null("passport_no", "passport number missing"),
        Level("number and issuing country", All((Eq("passport_no"), Eq("passport_country")))),
        Level("number only", Eq("passport_no")),
        _else(),
    ),
)

COMPARISONS: tuple[Comparison, ...] = (
    GIVEN,
    FAMILY,
    BIRTH_DATE,
    A_NUMBER,
    PASSPORT,
    _identifier("fin", "fin", "FIN (biometric identity number): exact."),
    _identifier("itin", "itin", "ITIN: exact."),
    _identifier("national_id", "national_id", "A generic national identity number: exact."),
    Comparison(
        "other_ids",
        "Any other identifier of the same kind and value.",
        (
            _null("other_ids", "no other identifiers", True),
            Level("shared", Overlap("other_ids")),
            _else(),
        ),
    ),
    _identifier("nationality", "nationality", "Nationality (an immigration fact): exact."),
    _identifier("sex", "sex", "Sex: exact."),
)


def comparison_dicts(dialect: Dialect) -> list[dict[str, Any]]:
    """The comparisons as Splink settings dictionaries for ``dialect``."""
    out = []
    for comparison in COMPARISONS:
        levels = []
        for level in comparison.levels:
            entry: dict[str, Any] = {
                "sql_condition": level.expr.sql(dialect) if level.expr else "ELSE",
                "label_for_charts": level.label,
            }
            if level.is_null:
                entry["is_null_level"] = True
            if level.tf:
                entry["tf_adjustment_column"] = level.tf
                entry["tf_adjustment_weight"] = 1.0
                entry["disable_tf_exact_match_detection"] = True
            levels.append(entry)
        out.append(
            {
                "output_column_name": comparison.name,
                "comparison_description": comparison.description,
                "comparison_levels": levels,
            }
        )
    return out
