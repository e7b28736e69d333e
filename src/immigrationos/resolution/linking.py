"""Running the model on Splink: training, blocked prediction and the blocking analysis.

The backend is chosen by configuration (``IMMOS_RESOLUTION_BACKEND``): DuckDB in-process by
default, Spark (``pyspark``, ``local[N]`` or a cluster master URL) to scale out. Both run the
same settings (:meth:`ModelDoc.settings_for` re-expresses the SQL per dialect), so their
results agree on the same input (a test checks it).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from immigrationos.core.errors import ValidationFailed
from immigrationos.resolution.comparisons import COMPARISONS, Dialect
from immigrationos.resolution.model import (
    BLOCKING_RULES,
    DETERMINISTIC_RULES,
    EM_RULES,
    ModelDoc,
    quiet_splink,
    splink_settings,
)


@dataclass
class Backend:
    """A Splink database API and its SQL dialect."""

    dialect: Dialect
    api: Any
    spark: Any = None

    def register(self, table: pa.Table, name: str) -> Any:
        if self.dialect == "spark":
            # From Arrow directly (pyspark >= 4): the Arrow types carry over (int32 stays an
            # integer, list<string> an array of strings even when empty or all null), where a
            # detour through pandas infers double, void and array<void>.
            frame = self.spark.createDataFrame(table)
            return self.api.register(frame)
        return self.api.register(table)


def duckdb_backend(threads: int | None = None) -> Backend:
    from splink import DuckDBAPI

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return Backend("duckdb", DuckDBAPI(connection=con))


def spark_backend(master: str = "local[2]") -> Backend:
    """A Spark session set up as Splink needs it (similarity UDF jar, checkpoint dir)."""
    from pyspark.sql import SparkSession
    from splink import SparkAPI
    from splink.backends.spark import similarity_jar_location

    spark = (
        SparkSession.builder.master(master)
        .appName("immigrationos-resolution")
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="immos-spark-"))
    return Backend("spark", SparkAPI(spark_session=spark, num_partitions_on_repartition=8), spark)


def backend_for(name: str, spark_master: str = "local[2]") -> Backend:
    if name == "spark":
        return spark_backend(spark_master)
    return duckdb_backend()


def _sample(features: pa.Table, max_records: int) -> pa.Table:
    """A deterministic sample (by hash of the record id) of at most ``max_records`` rows."""
    if features.num_rows <= max_records:
        return features
    con = duckdb.connect()
    con.register("f", features)
    keep = max_records / features.num_rows
    return con.execute(
        "SELECT * FROM f WHERE (hash(unique_id) % 1000000) / 1000000.0 < ? ORDER BY unique_id",
        [keep],
    ).to_arrow_table()


def train(
    features: pa.Table,
    labels: Iterable[tuple[str, str, float]] = (),
    *,
    max_records: int = 300_000,
    seed: int = 7,
) -> ModelDoc:
    """Train the model on ``features`` (DuckDB): prior, u by random sampling, m by EM.

    ``labels`` are reviewed pairs ``(unique_id_l, unique_id_r, score)`` with score 1 for a
    match and 0 for a non-match. With enough of both kinds, m is re-estimated from the
    labelled pairs after EM (Splink's ``estimate_m_from_pairwise_labels``); otherwise labels
    act as must-link / cannot-link constraints in clustering only.
    """
    from splink import Linker

    quiet_splink()
    started = time.perf_counter()
    sample = _sample(features, max_records)
    backend = duckdb_backend()
    linker = Linker(
        backend.register(sample, "records"), splink_settings("duckdb"), log_level=logging.ERROR
    )
    linker.training.estimate_probability_two_random_records_match(
        list(DETERMINISTIC_RULES), recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=U_PAIRS, seed=seed)
    skipped = {}
    for rule in EM_RULES:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True, max_pairs=2e6
            )
        except ValueError as exc:  # Splink refuses an m that reached 0 on tiny inputs
            skipped[rule] = str(exc)[:200]
    if len(skipped) == len(EM_RULES):
        raise ValidationFailed(
            f"EM could not train on {sample.num_rows} records ({'; '.join(skipped.values())}); "
            "resolve with the shipped model instead, or train on more records"
        )
    label_rows = [
        {"unique_id_l": a, "unique_id_r": b, "clerical_match_score": s} for a, b, s in labels
    ]
    used_labels = _train_from_labels(linker, backend, label_rows)
    doc = ModelDoc(splink=linker.misc.save_model_to_json(overwrite=True))
    floor_m(doc.splink)
    matches_out = u_without_matches(doc.splink)
    untrained = neutralise_untrained(doc.splink)
    once = counted_once(doc.splink)
    doc.training = {
        "untrained_levels": untrained,
        "u_without_matches": matches_out,
        "counted_once": once,
        "records": features.num_rows,
        "sampled_records": sample.num_rows,
        "em_rules": list(EM_RULES),
        "em_rules_skipped": skipped,
        "deterministic_rules": list(DETERMINISTIC_RULES),
        "labels": len(label_rows),
        "labels_used_for_m": used_labels,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return doc


_MIN_LABELS = 200


#: No single disagreement may veto a match outright: m is floored so that a 'different'
#: level weighs at most about -9 (a sex or FIN entry error must not split a person whose
#: names, birth date and A-number agree).
M_FLOOR = 0.002


def floor_m(settings: dict[str, Any]) -> None:
    """Floor every trained m probability at :data:`M_FLOOR`."""
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            m = level.get("m_probability")
            if m is not None and not level.get("is_null_level"):
                level["m_probability"] = max(float(m), M_FLOOR)


#: Random pairs sampled to estimate u.
U_PAIRS = 2e6
#: The most weight taking the matches out of u may add to a level (bits).
MAX_GAIN_BITS = 3.0


def u_without_matches(settings: dict[str, Any], pairs: float = U_PAIRS) -> dict[str, float]:
    """Take the matching pairs out of each level's u; returns the levels changed by more than
    1 %, with the weight each gained (bits).

    u comes from random pairs, which Splink treats as all non-matching. On a training sample
    where each person has about three records, a random pair matches with probability
    ``lam`` (the prior, about 5e-5 on 60k records): for the rarest levels that is as many
    pairs as the non-matches themselves. The exact birth date's u came out 1.0e-4 on the
    shipped model's sample, where the benchmark's million records (whose random pairs are
    almost all non-matches) show 4.8e-5: exact birth dates, A-numbers and passports weighed
    about a bit less than they should, beside the levels that are not diluted (one side's
    birth date a 1 January placeholder, the same year). The expected matches are taken out:
    ``u = (u - lam * m) / (1 - lam)``, at least one pair in the sample (``1 / pairs``).

    On a small input most of a rare level's random pairs are matches (on 1,300 records,
    all but one in thirty of those sharing a birth date), and what is left hangs on the
    prior's own estimate (its rules' recall is assumed, 0.8): a level gains at most
    :data:`MAX_GAIN_BITS` (the shipped model's largest gain is 2.1)."""
    lam = float(settings["probability_two_random_records_match"])
    changed: dict[str, float] = {}
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            if level.get("is_null_level") or m is None or u is None:
                continue
            floor = max(1 / pairs, float(u) / 2**MAX_GAIN_BITS)
            kept = min(max((float(u) - lam * float(m)) / (1 - lam), floor), 1.0)
            level["u_probability"] = kept
            if kept < 0.99 * float(u):
                name = f"{comparison['output_column_name']}: {level['label_for_charts']}"
                changed[name] = round(math.log2(float(u) / kept), 2)
    return changed


def counted_once(settings: dict[str, Any]) -> list[str]:
    """Levels that see an event another comparison already weighs (``Level.counted_in``)
    weigh nothing: m is set to u. Names swapped is one event that both name comparisons
    see; counted twice, it weighed more than exact given and family names together
    (18.7 against 14.4) and linked namesakes written in swapped order."""
    names = []
    for comparison, stored in zip(COMPARISONS, settings["comparisons"], strict=True):
        for level, entry in zip(comparison.levels, stored["comparison_levels"], strict=True):
            if level.counted_in and entry.get("u_probability") is not None:
                entry["m_probability"] = entry["u_probability"]
                names.append(f"{comparison.name}: {level.label} (in {level.counted_in})")
    return names


def neutralise_untrained(settings: dict[str, Any]) -> list[str]:
    """Levels EM could not train: m from the floor when u is known, else a weight of zero.

    A level no random pair reached (u unknown) must not count for or against a match; it is
    listed in the model's training record so that the gap is visible (train on data that
    has the field to fill it).
    """
    names = []
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if m is None and u is not None:
                # Seen among random pairs but never among the pairs EM took as matches:
                # evidence against a match, as strong as the floor allows.
                level["m_probability"] = M_FLOOR
            elif u is None:
                level["m_probability"] = level["u_probability"] = 1e-3
                names.append(f"{comparison['output_column_name']}: {level['label_for_charts']}")
    return names


def _train_from_labels(linker: Any, backend: Backend, rows: list[dict[str, Any]]) -> bool:
    positives = sum(1 for r in rows if r["clerical_match_score"] >= 0.5)
    if positives < _MIN_LABELS or len(rows) - positives < _MIN_LABELS:
        return False
    for row in rows:
        row["source_dataset_l"] = row["source_dataset_r"] = "records"
    labels = backend.api.register(pa.Table.from_pylist(rows), source_dataset_name="labels")
    linker.training.estimate_m_from_pairwise_labels(labels)
    return True


def predict(features: pa.Table, doc: ModelDoc, backend: Backend, min_weight: float) -> pa.Table:
    """Scored pairs at or above ``min_weight``: ids, match weight and each comparison's weight."""
    from splink import Linker

    quiet_splink()
    settings = dict(doc.settings_for(backend.dialect))
    settings["retain_intermediate_calculation_columns"] = True
    linker = Linker(backend.register(features, "records"), settings, log_level=logging.ERROR)
    frame = linker.inference.predict(threshold_match_weight=min_weight, warning_mode="never")
    if backend.dialect == "spark":
        sdf = frame.as_spark_dataframe()
        cols = _kept(sdf.columns)
        table = pa.Table.from_pandas(sdf.select(*cols).toPandas(), preserve_index=False)
    else:
        names = [c.name.strip('"') for c in frame.columns]
        rel = backend.api.duckdb_con.sql(
            f"SELECT {', '.join(_kept(names))} FROM {frame.physical_name}"
        )
        table = rel.to_arrow_table()
    frame.drop_table_from_database_and_remove_from_cache()
    return table


def _kept(columns: list[str]) -> list[str]:
    """Pair ids, the match weight, and each comparison's weight and TF adjustment (``mw_*``).

    Splink 5 reports no comparison levels here; :meth:`Parameters.explain` recovers them.
    """
    keep = ["unique_id_l", "unique_id_r", "match_weight"]
    return keep + [c for c in columns if c.startswith("mw_")]


def blocking_analysis(
    features: pa.Table, truth: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Pairs each prediction rule generates (marginal and cumulative) and, with a truth
    (record id → entity id), the share of true matching pairs each rule and all rules find."""
    con = duckdb.connect()
    con.register("f", features)
    out: list[dict[str, Any]] = []
    seen_conditions: list[str] = []
    true_pairs = _true_pairs(con, truth) if truth else 0
    for label, sql in BLOCKING_RULES:
        where = f"l.unique_id < r.unique_id AND ({sql})"
        exclude = " AND ".join(f"NOT coalesce(({s}), false)" for s in seen_conditions)
        marginal_where = f"{where} AND {exclude}" if exclude else where
        pairs = _count(con, f"SELECT count(*) FROM f l JOIN f r ON {sql} WHERE {marginal_where}")
        row: dict[str, Any] = {"rule": label, "sql": sql, "marginal_pairs": pairs}
        seen_conditions.append(sql)
        if truth:
            found_by_any = " OR ".join(f"coalesce(({s}), false)" for s in seen_conditions)
            row["true_pairs_found"] = _count(
                con,
                "SELECT count(*) FROM tp JOIN f l ON l.unique_id = tp.a "
                f"JOIN f r ON r.unique_id = tp.b WHERE {found_by_any}",
            )
        out.append(row)
    total = 0
    for row in out:
        total += row["marginal_pairs"]
        row["cumulative_pairs"] = total
        if truth:
            row["cumulative_recall"] = (
                round(row["true_pairs_found"] / true_pairs, 5) if true_pairs else 1.0
            )
    if truth:
        for row in out:
            row["true_pairs"] = true_pairs
    return out


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    found = con.execute(sql).fetchone()
    return int(found[0]) if found else 0


def _true_pairs(con: duckdb.DuckDBPyConnection, truth: dict[str, str]) -> int:
    con.register("t", pa.table({"uid": list(truth), "entity": list(truth.values())}))
    con.execute(
        "CREATE TEMP TABLE tp AS SELECT a.uid AS a, b.uid AS b FROM t a JOIN t b "
        "ON a.entity = b.entity AND a.uid < b.uid "
        "WHERE a.uid IN (SELECT unique_id FROM f) AND b.uid IN (SELECT unique_id FROM f)"
    )
    return _count(con, "SELECT count(*) FROM tp")
