"""The person-matching model: Splink settings, training, prediction and its parameters.

Splink 5 does the heavy lifting (EM training, u estimation by random sampling, blocked
prediction in DuckDB or Spark). The trained model is a Splink settings document plus our
thresholds and the blocking analysis, stored as one JSON document (``ModelDoc``) with a
content-derived version; every person index records the model version that produced it.
:class:`Parameters` reads the trained m and u probabilities back so that single pairs can be
scored and explained without a database (the incremental linker and the review screen).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from immigrationos.core.frozen import quick_init
from immigrationos.core.ids import content_id
from immigrationos.resolution.comparisons import (
    COMPARISONS,
    TRAITS,
    Columns,
    Comparison,
    Dialect,
    Eq,
    Lefts,
    Mask,
    comparison_dicts,
)

Adjustment = npt.NDArray[np.float64] | float
"""A term-frequency adjustment per pair, or one for all."""

#: Blocking rules for prediction, chosen from the blocking analysis in docs/resolution.md:
#: each catches matches the others miss (identifiers alone; names with a noisy birth date;
#: a birth date with one noisy name; names in swapped order; sound-alike spellings).
BLOCKING_RULES: tuple[tuple[str, str], ...] = (
    ("A-number", "l.a_number = r.a_number"),
    ("passport number", "l.passport_no = r.passport_no"),
    ("FIN", "l.fin = r.fin"),
    ("ITIN", "l.itin = r.itin"),
    ("national id", "l.national_id = r.national_id"),
    ("birth date + first given name", "l.dob = r.dob AND l.given_first = r.given_first"),
    ("birth date + first surname", "l.dob = r.dob AND l.family_first = r.family_first"),
    (
        "first given name + first surname + birth year",
        "l.given_first = r.given_first AND l.family_first = r.family_first "
        "AND l.dob_year = r.dob_year",
    ),
    ("birth date + names swapped", "l.dob = r.dob AND l.given_first = r.family_first"),
    (
        "sound-alike names + birth year",
        "l.given_phonetic = r.given_phonetic AND l.family_first_phonetic = r.family_first_phonetic "
        "AND l.dob_year = r.dob_year",
    ),
)
#: The comparisons that cost the most to find (string distances, name symbols, phonetic
#: keys): :meth:`Parameters.bounds` takes them at their best instead.
BOUNDED = ("given_name", "family_name")
#: Rules whose pairs EM trains on (each leaves the comparisons it blocks on untrained).
#: Birth date is trained only on identifier blocks: in a names block, namesakes are many and
#: EM would learn that true matches often disagree on birth dates (it did: -1.4 instead of
#: about -6 for 'different'), which merges namesakes.
EM_RULES = (
    "l.dob = r.dob",
    "l.passport_no = r.passport_no",
    "l.a_number = r.a_number",
)
#: Deterministic rules for estimating the prior (probability two random records match).
DETERMINISTIC_RULES = (
    "l.a_number = r.a_number",
    "l.passport_no = r.passport_no AND l.dob = r.dob",
    "l.given = r.given AND l.family = r.family AND l.dob = r.dob",
)
DEFAULT_LINK_WEIGHT = 6.0
"""Pairs at or above this weight link automatically (probability about 0.985), when the groups
they would join do not disagree on what a person has one of (clustering's trait check);
chosen on synthetic worlds, see docs/resolution.md."""
DEFAULT_REVIEW_WEIGHT = -2.0
"""Pairs from here (probability about 0.2) up to the link weight wait for a human decision."""


def splink_settings(dialect: Dialect = "duckdb") -> dict[str, Any]:
    """Untrained Splink settings for the person model in ``dialect``."""
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "comparisons": comparison_dicts(dialect),
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": sql} for _, sql in BLOCKING_RULES
        ],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "additional_columns_to_retain": [],
        "probability_two_random_records_match": 1e-5,
    }


def quiet_splink() -> None:
    """Keep Splink's progress logging out of the CLI's output."""
    logging.getLogger("splink").setLevel(logging.ERROR)


@dataclass
class ModelDoc:
    """A trained model as stored: Splink settings with m/u, thresholds, and how it was made."""

    splink: dict[str, Any]
    link_weight: float = DEFAULT_LINK_WEIGHT
    review_weight: float = DEFAULT_REVIEW_WEIGHT
    training: dict[str, Any] = field(default_factory=dict)
    blocking_analysis: list[dict[str, Any]] = field(default_factory=list)

    @cached_property
    def version(self) -> str:
        """Content-derived: the same parameters and thresholds give the same version."""
        core = {
            "splink": {k: v for k, v in self.splink.items() if k != "linker_uid"},
            "link": self.link_weight,
            "review": self.review_weight,
        }
        return content_id("pm", core, length=16)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "splink": self.splink,
            "link_weight": self.link_weight,
            "review_weight": self.review_weight,
            "training": self.training,
            "blocking_analysis": self.blocking_analysis,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelDoc:
        return cls(
            splink=dict(data["splink"]),
            link_weight=float(data.get("link_weight", DEFAULT_LINK_WEIGHT)),
            review_weight=float(data.get("review_weight", DEFAULT_REVIEW_WEIGHT)),
            training=dict(data.get("training", {})),
            blocking_analysis=list(data.get("blocking_analysis", [])),
        )

    def for_records(self, records: int) -> ModelDoc:
        """This model with its prior rescaled to an input of ``records`` records.

        The prior (the probability that two random records match) falls as the input grows:
        each person has a few records, so true pairs grow like N while all pairs grow like N².
        A prior estimated on the training sample therefore overstates every match weight on a
        larger index (namesakes start linking) and understates it on a smaller one. The
        trained m and u are unchanged; the run records the prior it used.
        """
        trained_on = int(self.training.get("sampled_records") or 0)
        if not trained_on or records <= 0:
            return self
        prior = float(self.splink["probability_two_random_records_match"])
        scaled = min(0.5, prior * (trained_on - 1) / max(records - 1, 1))
        splink = {**self.splink, "probability_two_random_records_match": scaled}
        doc = ModelDoc(splink, self.link_weight, self.review_weight, dict(self.training),
                       self.blocking_analysis)  # fmt: skip
        doc.__dict__["version"] = self.version
        return doc

    def settings_for(self, dialect: Dialect) -> dict[str, Any]:
        """The trained settings re-expressed in ``dialect`` (same m and u, same levels)."""
        if dialect == "duckdb":
            return self.splink
        target = splink_settings(dialect)
        target["probability_two_random_records_match"] = self.splink[
            "probability_two_random_records_match"
        ]
        for theirs, ours in zip(self.splink["comparisons"], target["comparisons"], strict=True):
            for a, b in zip(theirs["comparison_levels"], ours["comparison_levels"], strict=True):
                for key in ("m_probability", "u_probability"):
                    if key in a:
                        b[key] = a[key]
        return target


# -- Python scoring -------------------------------------------------------------------------


@dataclass(frozen=True)
class Contribution:
    """One comparison's part in a pair's match weight."""

    comparison: str
    level: str
    level_index: int
    weight: float
    tf_adjustment: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self._json)

    @cached_property
    def _json(self) -> dict[str, Any]:
        return {
            "comparison": self.comparison,
            "level": self.level,
            "weight": round(self.weight, 3),
            "tf_adjustment": round(self.tf_adjustment, 3),
        }


@quick_init
@dataclass(frozen=True)
class Score:
    match_weight: float
    contributions: tuple[Contribution, ...]

    @property
    def probability(self) -> float:
        return probability(self.match_weight)


def probability(weight: float) -> float:
    """Match probability from a match weight (log2 of the odds)."""
    if weight > 60:
        return 1.0
    odds = 2.0**weight
    return odds / (1.0 + odds)


@dataclass(frozen=True)
class PairScores:
    """One record scored against many (:meth:`Parameters.score_many`): each pair's weight,
    and the levels and adjustments behind it, to explain any one pair on demand."""

    weights: npt.NDArray[np.float64]
    levels: npt.NDArray[np.intp]
    """Each pair's level per comparison (one row per comparison)."""
    adjustments: dict[int, npt.NDArray[np.float64]]
    """Comparison → each pair's term-frequency adjustment (comparisons that have any)."""
    params: Parameters

    def score(self, pair: int) -> Score:
        """Pair number ``pair`` as :meth:`Parameters.score` gives it (the same weight)."""
        parts = []
        levels = self.levels[:, pair].tolist()
        params = self.params
        for i, n in enumerate(levels):
            a = float(self.adjustments[i][pair]) if i in self.adjustments else 0.0
            parts.append(params.contribution(i, n, a))
        return Score(float(self.weights[pair]), tuple(parts))


@dataclass(frozen=True)
class EachScore:
    """Pairs scored one by one, read like :class:`PairScores`."""

    scores: list[Score]

    @property
    def weights(self) -> npt.NDArray[np.float64]:
        return np.array([s.match_weight for s in self.scores], dtype=np.float64)

    def score(self, pair: int) -> Score:
        return self.scores[pair]


#: Contributions with a term-frequency adjustment that :meth:`Parameters.contribution` keeps
#: (then it starts again): about as many as a million records' distinct names.
ADJUSTED_KEPT = 1 << 18


class Parameters:
    """Trained m and u per comparison level, for scoring pairs in Python: one pair at a time
    (:meth:`score`), or one record against many as arrays (:meth:`score_many`)."""

    def __init__(self, doc: ModelDoc) -> None:
        settings = doc.splink
        self.prior = float(settings["probability_two_random_records_match"])
        self.prior_weight = math.log2(self.prior / (1 - self.prior))
        self.weights: list[list[float]] = []
        self.u_values: list[list[float]] = []
        for comparison, stored in zip(COMPARISONS, settings["comparisons"], strict=True):
            levels = [lvl for lvl in stored["comparison_levels"]]
            self.weights.append([_level_weight(lvl) for lvl in levels])
            self.u_values.append([float(lvl.get("u_probability") or 1.0) for lvl in levels])
            if len(levels) != len(comparison.levels):
                raise ValueError(f"model comparison {comparison.name} does not fit the code")
        self._plain = {
            (i, n): Contribution(c.name, level.label, n, self.weights[i][n])
            for i, c in enumerate(COMPARISONS)
            for n, level in enumerate(c.levels)
        }
        self._adjusted: dict[tuple[int, int, float], Contribution] = {}
        self._width = max(len(c.levels) for c in COMPARISONS)
        self._weight_table = np.zeros((len(COMPARISONS), self._width))
        for i, weights in enumerate(self.weights):
            self._weight_table[i, : len(weights)] = weights

    def different_weight(self, comparison: str) -> float:
        """The weight of ``comparison``'s last level ('different': no earlier level held)."""
        i = next(n for n, c in enumerate(COMPARISONS) if c.name == comparison)
        return self.weights[i][-1]

    def traits(self) -> list[tuple[str, str, float]]:
        """(comparison, feature column, weight of its 'different' level) of each of
        :data:`TRAITS` whose disagreement weighs against a match (untrained ones weigh
        nothing and are left out): what clustering and incremental linking check whole
        persons on."""
        weighed = [(name, column, self.different_weight(name)) for name, column in TRAITS]
        return [t for t in weighed if t[2] < 0]

    def contribution(self, i: int, level: int, adjustment: float = 0.0) -> Contribution:
        """Comparison ``i`` at ``level``, with a term-frequency adjustment. The ones without
        are made once (a few dozen, shared by every explanation); those with one are kept
        too, up to :data:`ADJUSTED_KEPT`: an adjustment is a name's frequency, and the
        common names that most pairs share come back again and again (each explanation's
        JSON, :meth:`Contribution.to_json`, is then made once)."""
        if adjustment == 0.0:
            return self._plain[i, level]
        key = (i, level, adjustment)
        found = self._adjusted.get(key)
        if found is None:
            if len(self._adjusted) >= ADJUSTED_KEPT:
                self._adjusted.clear()
            c = COMPARISONS[i]
            found = self._adjusted[key] = Contribution(
                c.name, c.levels[level].label, level, self.weights[i][level], adjustment
            )
        return found

    def score(
        self, l: Mapping[str, Any], r: Mapping[str, Any], tf: Mapping[str, Mapping[str, float]]
    ) -> Score:
        """Score a pair of feature rows; ``tf`` maps a column to value frequencies."""
        total = self.prior_weight
        parts = []
        for i, comparison in enumerate(COMPARISONS):
            parts.append(self._contribution(i, comparison, l, r, tf))
            total += parts[-1].weight + parts[-1].tf_adjustment
        return Score(total, tuple(parts))

    def score_many(
        self, l: Mapping[str, Any], r: Columns, tf: Mapping[str, Mapping[str, float]]
    ) -> PairScores:
        """:meth:`score` of ``l`` against every row of ``r`` at once, with the same weights
        (each comparison's weight plus adjustment added to the prior in the same order, so
        equal to the last bit). Every comparison's level masks are stacked, so that finding
        the levels and summing the weights are a few array operations for all of them."""
        seen: dict[int, Mask] = {}
        masks = [m for c in COMPARISONS for m in c.level_masks(l, r, self._width, seen)]

        def adjustment(i: int, k: int, column: str, same: bool) -> Adjustment:
            return self._adjustment(i, k, column, same, l, r, tf)

        return self._scores(masks, len(r), adjustment)

    def score_pairs(
        self, l: Lefts, r: Columns, tf: Mapping[str, Mapping[str, float]]
    ) -> PairScores:
        """:meth:`score` of many pairs whose left rows differ (several records, each against
        its own candidates: ``l.of`` says which), all at once, equal to the last bit."""
        seen: dict[int, Mask] = {}
        masks = [m for c in COMPARISONS for m in c.pair_masks(l, r, self._width, seen)]

        def adjustment(i: int, k: int, column: str, same: bool) -> Adjustment:
            return self._pair_adjustment(i, k, column, same, l, r, tf)

        return self._scores(masks, len(r), adjustment)

    def bounds(
        self, l: Lefts, r: Columns, tf: Mapping[str, Mapping[str, float]]
    ) -> npt.NDArray[np.float64]:
        """The highest weight each pair of :meth:`score_pairs` could reach, whatever its names:
        every comparison but those of :data:`BOUNDED` found as :meth:`score_pairs` finds it
        (equality tests of numbers, dates and codes), each of those at its best level for the
        pair's left record (the exact level with the record's own term-frequency adjustment,
        or the best other level, whichever weighs more). A pair's weight is never above its
        bound: it differs only in the names, and they weigh at most their best."""
        seen: dict[int, Mask] = {}
        total = np.full(len(r), self.prior_weight)
        names = np.zeros(len(l.rows))
        for i, comparison in enumerate(COMPARISONS):
            if comparison.name in BOUNDED:
                names += self._best(i, l, tf)
                continue
            total += comparison.pair_weights(l, r, self.weights[i], seen)
        return total + names[l.of]

    def _best(
        self, i: int, l: Lefts, tf: Mapping[str, Mapping[str, float]]
    ) -> npt.NDArray[np.float64]:
        """Comparison ``i``'s highest weight for each left record of ``l``: its best level
        without term frequencies, or a term-frequency level with the record's own value's
        adjustment (equal values on both sides: what :meth:`_pair_adjustment` gives). A
        term-frequency level on anything but equal values would weigh by the other side's
        value too, which this cannot bound: it is refused."""
        levels = COMPARISONS[i].levels
        plain = max(w for w, level in zip(self.weights[i], levels, strict=True) if not level.tf)
        best = np.full(len(l.rows), plain)
        for k, level in enumerate(levels):
            if level.tf:
                if level.expr != Eq(level.tf):
                    raise ValueError(
                        f"{COMPARISONS[i].name}: level {level.label!r} adjusts for term "
                        f"frequency on other than equal {level.tf} values; it has no bound"
                    )
                u = math.log2(self.u_values[i][k])
                mine = self._own_frequencies(l, level.tf, tf)
                adjusted = [self.weights[i][k] + (u - math.log2(f) if f > 0 else 0.0) for f in mine]
                np.maximum(best, adjusted, out=best)
        return best

    @staticmethod
    def _own_frequencies(
        l: Lefts, column: str, tf: Mapping[str, Mapping[str, float]]
    ) -> list[float]:
        """Each left record's own value's frequency in ``column`` (0 for none or unknown)."""
        freq = tf.get(column, {})
        return l.each(("tf", column), lambda row: freq.get(row.get(column) or "", 0.0))

    def _scores(
        self,
        masks: list[npt.NDArray[np.bool_]],
        n: int,
        adjustment: Callable[[int, int, str, bool], Adjustment],
    ) -> PairScores:
        count = len(COMPARISONS)
        stacked = np.array(masks).reshape(count, self._width, n)
        levels = self._width - np.logical_or.accumulate(stacked, axis=1).sum(axis=1)
        parts = np.empty((count + 1, n))
        parts[0] = self.prior_weight
        parts[1:] = self._weight_table[np.arange(count)[:, None], levels]
        adjustments: dict[int, npt.NDArray[np.float64]] = {}
        for i, comparison in enumerate(COMPARISONS):
            for k, spec in enumerate(comparison.levels):
                if spec.tf:
                    adj = adjustment(i, k, spec.tf, spec.expr == Eq(spec.tf))
                    at = levels[i] == k
                    parts[i + 1] = np.where(at, self.weights[i][k] + adj, parts[i + 1])
                    adjustments[i] = np.where(at, adj, adjustments.get(i, 0.0))
        total = np.add.accumulate(parts, axis=0)[-1]
        return PairScores(total, levels, adjustments, self)

    def _adjustment(
        self,
        i: int,
        k: int,
        column: str,
        same: bool,
        l: Mapping[str, Any],
        r: Columns,
        tf: Mapping[str, Mapping[str, float]],
    ) -> Adjustment:
        """The term-frequency adjustment of level ``k`` of comparison ``i`` for each pair (as
        :meth:`_contribution`); one number when ``same`` (both sides hold the same value)."""
        freq = tf.get(column, {})
        mine = freq.get(l.get(column) or "", 0.0)
        u = math.log2(self.u_values[i][k])
        if same:
            return u - math.log2(mine) if mine > 0 else 0.0

        def adjust(values: list[str]) -> npt.NDArray[np.float64]:
            both = (max(mine, freq.get(v, 0.0)) for v in values)
            return np.array([u - math.log2(f) if f > 0 else 0.0 for f in both])

        return r.scored_text(column, adjust)

    def _pair_adjustment(
        self,
        i: int,
        k: int,
        column: str,
        same: bool,
        l: Lefts,
        r: Columns,
        tf: Mapping[str, Mapping[str, float]],
    ) -> Adjustment:
        """:meth:`_adjustment` of each pair of :meth:`score_pairs`."""
        freq = tf.get(column, {})
        u = math.log2(self.u_values[i][k])
        mine = self._own_frequencies(l, column, tf)
        if same:
            own = [u - math.log2(f) if f > 0 else 0.0 for f in mine]
            return np.array(own, dtype=np.float64)[l.of]
        codes, values = r.text_codes(column)
        combos, inverse = np.unique(l.of * len(values) + codes, return_inverse=True)
        rows, numbers = np.divmod(combos, len(values))
        pairs = zip(rows.tolist(), numbers.tolist(), strict=True)
        both = (max(mine[i], freq.get(values[n], 0.0)) for i, n in pairs)
        adjusted = np.array([u - math.log2(f) if f > 0 else 0.0 for f in both], dtype=np.float64)
        return adjusted[inverse.reshape(-1)]

    def explain(self, weights: Mapping[str, float | None], tf: Mapping[str, float | None]) -> Score:
        """A scored pair's explanation from Splink's per-comparison weights (``mw_*``).

        Splink 5 reports each comparison's weight but not its level; the level is the one
        whose trained weight it equals (the first, if two levels weigh the same).
        """
        total = self.prior_weight
        parts = []
        for i, comparison in enumerate(COMPARISONS):
            w = float(weights.get(comparison.name) or 0.0)
            adj = float(tf.get(comparison.name) or 0.0)
            level = next(
                (j for j, lw in enumerate(self.weights[i]) if abs(lw - w) < 1e-6),
                len(comparison.levels) - 1,
            )
            label = comparison.levels[level].label
            parts.append(Contribution(comparison.name, label, level, w, adj))
            total += w + adj
        return Score(total, tuple(parts))

    def _contribution(
        self,
        i: int,
        comparison: Comparison,
        l: Mapping[str, Any],
        r: Mapping[str, Any],
        tf: Mapping[str, Mapping[str, float]],
    ) -> Contribution:
        level = comparison.level_of(l, r)
        spec = comparison.levels[level]
        adjustment = 0.0
        if spec.tf:
            freq = tf.get(spec.tf, {})
            f = max(freq.get(l.get(spec.tf) or "", 0.0), freq.get(r.get(spec.tf) or "", 0.0))
            if f > 0:
                adjustment = math.log2(self.u_values[i][level]) - math.log2(f)
        return self.contribution(i, level, adjustment)


def _level_weight(level: Mapping[str, Any]) -> float:
    if level.get("is_null_level"):
        return 0.0
    m, u = level.get("m_probability"), level.get("u_probability")
    if not m or not u:
        return 0.0
    return math.log2(float(m) / float(u))


def expand(params: Parameters, stored: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A stored explanation's per-comparison weights with their level labels (for display)."""
    weights = stored.get("weights") or {}
    tf = stored.get("tf") or {}
    score = params.explain(weights, tf)
    return [
        c.to_json() for c in score.contributions if c.comparison in weights or c.comparison in tf
    ]


def term_frequencies(
    features: pa.Table, columns: Sequence[str] = ("given", "family")
) -> dict[str, dict[str, float]]:
    """Relative frequency of each value of the term-frequency columns."""
    out: dict[str, dict[str, float]] = {}
    for column in columns:
        values = features.column(column).drop_null()
        total = len(values)
        counts = values.value_counts()
        out[column] = (
            {str(v["values"]): int(v["counts"]) / total for v in counts.to_pylist()}
            if total
            else {}
        )
    return out
