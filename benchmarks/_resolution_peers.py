"""Peers for the entity-resolution benchmark: how a typical user would dedupe the same records.

Every peer takes the person-bearing records of a synthetic world as one Arrow table (see
``RECORD_COLUMNS``; all strings, nullable) and returns ``unique_id → cluster id``. The harness
that runs our model beside them scores every clustering with
``immigrationos.resolution.evaluate``.

- ``generic_splink``: Splink 5 on DuckDB, set up from the Splink docs with stock comparisons,
  simple blocking, u by random sampling, m by EM, connected components at p ≥ 0.95.
- ``recordlinkage_classic``: the ``recordlinkage`` package's classic pipeline (blocking +
  sorted neighbourhood, Jaro-Winkler and exact comparisons, a pair matches when most of its
  features agree — the unsupervised ECM classifier is available but misbehaves here, see the
  function), then connected components with SciPy. Pandas-based, in memory: ~100k records.

Neither peer gets anything our model does not: the same columns, no truth, no tuning on it.
``tax_addresses`` is left out of the records because its agreement forbids identity resolution.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import recordlinkage
import splink.comparison_library as cl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.internals.blocking_rule_creator import BlockingRuleCreator

from immigrationos.resolution.evaluate import Truth
from immigrationos.resolution.records import RAW_COLUMNS

__all__ = [
    "RECORD_COLUMNS",
    "SOURCES",
    "generic_splink",
    "recordlinkage_classic",
    "world_records",
]

#: The person attributes the world's files carry: RAW_COLUMNS up to the ITIN (no national id,
#: other ids or address in any synthetic source that identity resolution may read).
RECORD_COLUMNS = tuple(RAW_COLUMNS[: RAW_COLUMNS.index("itin") + 1])

# Per source: file, key column, and the source column behind each record column that it has
# (columns it lacks are null). Names and birth date are common to all and added below.
SOURCES: dict[str, tuple[str, str, dict[str, str]]] = {
    "arrivals": (
        "arrivals.csv",
        "admission_no",
        {"sex": "sex", "nationality": "nationality", "passport_no": "passport_no",
         "passport_country": "passport_country"},
    ),
    "visas": (
        "visas.jsonl",
        "foil_no",
        {"sex": "sex", "nationality": "nationality", "passport_no": "passport_no"},
    ),
    "benefits": ("benefits.parquet", "receipt_no", {"a_number": "a_number"}),
    "court": ("court.jsonl", "case_no", {"a_number": "a_number", "nationality": "nationality"}),
    "encounters": (
        "encounters.csv",
        "encounter_no",
        {"sex": "sex", "nationality": "nationality", "a_number": "a_number", "fin": "fin"},
    ),
    "convictions": ("convictions.csv", "disposition_id", {}),
    "citizenship_evidence": ("citizenship_evidence.csv", "certificate_no", {}),
    "departures": (
        "departures.jsonl",
        "event_id",
        {"sex": "sex", "nationality": "citizenship", "passport_no": "document_no",
         "passport_country": "document_country"},
    ),
}  # fmt: skip

_COMMON = ("given_name", "family_name", "birth_date")
_PLACEHOLDERS = ("", "XXX", "NA", "UNKNOWN", "1900-01-01")


def world_records(world_dir: Path) -> tuple[pa.Table, Truth]:
    """The person-bearing records of a synthetic world and their truth (with name culture).

    ``unique_id`` is ``source:record_key``, as in the truth. Placeholder values (``XXX``,
    ``NA``, ``UNKNOWN``, ``1900-01-01``, blanks) become null; all values are strings.
    """
    with duckdb.connect() as con:
        selects = [_source_sql(world_dir / "sources", name) for name in SOURCES]
        records = con.sql(" UNION ALL ".join(selects)).to_arrow_table()
        truth = _truth(con, world_dir / "truth")
    return records, truth


def _source_sql(folder: Path, source: str) -> str:
    """SELECT of one source file in the ``RECORD_COLUMNS`` layout."""
    file, key, mapped = SOURCES[source]
    needed = {key, *_COMMON, *mapped.values()}
    columns = {"source_id": f"'{source}'", "record_key": f'"{key}"'}
    for name in RECORD_COLUMNS[3:]:
        origin = name if name in _COMMON else mapped.get(name)
        columns[name] = _clean(origin)
    columns["unique_id"] = f"'{source}:' || \"{key}\""
    body = ", ".join(f"{columns[name]} AS {name}" for name in RECORD_COLUMNS)
    return f"SELECT {body} FROM {_reader(folder / file, sorted(needed))}"


def _clean(column: str | None) -> str:
    """SQL for a column as text with placeholders nulled (NULL for a column the source lacks)."""
    if column is None:
        return "CAST(NULL AS VARCHAR)"
    text = f'trim(CAST("{column}" AS VARCHAR))'
    placeholders = ", ".join(f"'{p}'" for p in _PLACEHOLDERS)
    return f"CASE WHEN {text} IN ({placeholders}) THEN NULL ELSE {text} END"


def _reader(path: Path, columns: list[str]) -> str:
    """DuckDB table function reading ``columns`` of a source file, all as text where possible."""
    if path.suffix == ".csv":
        return f"read_csv({_quote(path)}, all_varchar = true, header = true)"
    if path.suffix == ".jsonl":
        # Declaring the columns skips the nested court proceedings altogether.
        struct = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
        return f"read_json({_quote(path)}, format = 'newline_delimited', columns = {{{struct}}})"
    return f"read_parquet({_quote(path)})"


def _quote(path: Path) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _truth(con: duckdb.DuckDBPyConnection, folder: Path) -> Truth:
    """Truth of the person-bearing sources, keyed ``source:record_key``, with name culture."""
    sources = ", ".join(f"'{s}'" for s in SOURCES)
    table = con.sql(
        f"""
        SELECT r.source || ':' || r.record_key AS key, r.person_id, p.name_culture
        FROM read_parquet({_quote(folder / "records.parquet")}) r
        JOIN read_parquet({_quote(folder / "persons.parquet")}) p USING (person_id)
        WHERE r.source IN ({sources})
        """
    ).to_arrow_table()
    return Truth.from_columns(
        table.column("key").to_pylist(),
        table.column("person_id").to_pylist(),
        table.column("name_culture").to_pylist(),
        origin=str(folder),
    )


# --- Splink ---------------------------------------------------------------------------------


def _splink_settings() -> SettingsCreator:
    """Stock comparisons and blocking, as in the Splink docs' deduplication examples."""
    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("family_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.ExactMatch("nationality"),
            cl.ExactMatch("a_number"),
            cl.ExactMatch("passport_no"),
            cl.ExactMatch("fin"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "birth_date"),
            block_on("family_name", "birth_date"),
            block_on("a_number"),
            block_on("passport_no"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def _train(linker: Linker) -> None:
    """λ from deterministic rules, u by random sampling, m by EM on two blocking rules."""
    deterministic: list[str | BlockingRuleCreator] = [
        block_on("given_name", "family_name", "birth_date"),
        block_on("a_number"),
        block_on("passport_no"),
    ]
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in (block_on("given_name", "family_name"), block_on("birth_date")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)


def generic_splink(records: pa.Table, workers: int = 2) -> dict[str, str]:
    """Cluster ``records`` with a generic Splink 5 DuckDB model (threshold p ≥ 0.95).

    ``workers`` is DuckDB's thread count. Splink's own logging is limited to errors.
    """
    with duckdb.connect() as con:
        con.execute(f"SET threads = {int(workers)}; SET enable_progress_bar = false")
        linker = Linker(
            DuckDBAPI(con).register(records), _splink_settings(), log_level=logging.ERROR
        )
        _train(linker)
        predictions = linker.inference.predict(threshold_match_probability=0.9)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95)
        table = clusters.as_pyarrow_table()
    ids, cluster_ids = table["unique_id"].to_pylist(), table["cluster_id"].to_pylist()
    return {str(k): str(v) for k, v in zip(ids, cluster_ids, strict=True)}


# --- recordlinkage --------------------------------------------------------------------------

Classifier = Literal["threshold", "ecm"]
_EXACT = ("birth_date", "sex", "nationality", "a_number", "passport_no", "fin")


def _candidate_pairs(frame: pd.DataFrame) -> pd.MultiIndex:
    """Pairs blocked on birth date, plus a sorted neighbourhood on family name within sex."""
    indexer = recordlinkage.Index()
    indexer.block("birth_date")
    indexer.sortedneighbourhood("family_name", window=3, block_on="sex")
    pairs: pd.MultiIndex = indexer.index(frame)
    return pairs


def _features(frame: pd.DataFrame, pairs: pd.MultiIndex) -> pd.DataFrame:
    """Binary agreement features: Jaro-Winkler ≥ 0.85 on names, exact on the rest."""
    compare = recordlinkage.Compare()
    for name in ("given_name", "family_name"):
        compare.string(name, name, method="jarowinkler", threshold=0.85, label=name)
    for name in _EXACT:
        compare.exact(name, name, label=name)
    features: pd.DataFrame = compare.compute(pairs, frame)
    return features


def _classify(features: pd.DataFrame, classifier: Classifier) -> pd.MultiIndex:
    """Matching pairs: more than half the features agree, or as the ECM classifier says."""
    if classifier == "ecm":
        matches: pd.MultiIndex = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
        return matches
    agreeing = features.sum(axis=1)
    return features.index[agreeing > features.shape[1] / 2]


def _components(count: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``count`` nodes joined by the edges given."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return labels


def recordlinkage_classic(
    records: pa.Table, classifier: Classifier = "threshold"
) -> dict[str, str]:
    """Cluster ``records`` with the ``recordlinkage`` classic pipeline (for ~100k records).

    Index: block on birth date, plus a sorted neighbourhood (window 3) on family name within
    records of the same sex. Compare: Jaro-Winkler ≥ 0.85 on given and family name,
    exact on birth date, sex, nationality, A-number, passport and FIN (missing = disagree).
    Cluster: connected components of the matching pairs (SciPy).

    Classify: by default the tutorials' rule, a pair matches when more than half of its eight
    binary features agree (≥ 5). ``classifier="ecm"`` uses the unsupervised
    ``ECMClassifier`` instead, which misbehaves on these records: EM settles on "same birth
    date" as the match class (m = 1.0 for birth date, u = 1.0 for sex, whose agreement the
    sex-blocked neighbourhood makes constant), so it links every pair of the birth-date block
    and chains unrelated people (pairwise precision 0.41 on a 30k-person world).
    """
    frame = records.select(["unique_id", *_COMMON, *_EXACT[1:]]).to_pandas()
    frame.index = pd.RangeIndex(len(frame))
    pairs = _candidate_pairs(frame)
    matches = _classify(_features(frame, pairs), classifier)
    left = matches.get_level_values(0).to_numpy(dtype=np.int64)
    right = matches.get_level_values(1).to_numpy(dtype=np.int64)
    labels = _components(len(frame), left, right)
    return {uid: f"c{label}" for uid, label in zip(frame["unique_id"], labels, strict=True)}
