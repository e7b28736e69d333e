"""Run a policy over a feature table in one vectorised SQL statement (DuckDB).

:func:`plan` compiles a policy to SQL that can be read before it runs: one boolean per rule,
the score, the tier (first that holds), the rules that fired, and the evidence behind each
fired rule (the records of every feature its condition names). :func:`score_one` and
:func:`evidence_one` evaluate the same policy for one person in plain Python (an explanation
asks about one person, where starting DuckDB would cost more than the answer); tests hold
the two forms equal, and the benchmark uses the row-by-row form as its peer.

The evidence is one JSON object per person, keyed by fired rule (in the policy's order), each
holding its features' records (``{t, id, src, d}``) as the feature table lists them. It is
built by joining the JSON text of whole evidence lists rather than by tagging every record
with its rule: at a million persons that is the difference between one pass over the text
and several over nested lists (see ``docs/benchmarks.md``). :func:`evidence_items` turns it
back into the flat list of records, each naming its rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from immigrationos.priority import conditions as c
from immigrationos.priority.policy import Policy


def _col(feature: str) -> str:
    return f'f."{feature}"'


def _fired(rule_id: str) -> str:
    return f'"r_{rule_id}"'


def plan(policy: Policy, available: set[str] | None = None, also: Sequence[str] = ()) -> str:
    """The SQL scoring every row of the table ``f`` under ``policy``, in the table's order.

    ``available`` names the feature columns the table has evidence for (``ev_<name>``);
    ``also`` adds output columns, SQL over ``f`` (the features, ``tier`` and ``lead``).
    """
    have = available if available is not None else set(policy.features)
    rules = ",\n    ".join(
        f"{c.to_sql(r.cond, _col, _fired)} AS {_fired(r.id)}" for r in policy.rules
    )
    score = (
        " + ".join(
            f"CASE WHEN {_fired(r.id)} THEN {r.signed_weight!r} ELSE 0 END" for r in policy.rules
        )
        or "0"
    )
    tier = " ".join(f"WHEN {c.to_sql(t.cond, _col, _fired)} THEN '{t.id}'" for t in policy.tiers)
    rank = " ".join(f"WHEN '{t.id}' THEN {t.rank}" for t in policy.tiers)
    leads = ", ".join(f"'{t.id}'" for t in policy.tiers if t.lead) or "NULL"
    fired = ", ".join(f"""CASE WHEN {_fired(r.id)} THEN '"{r.id}"' END""" for r in policy.rules)
    evidence = ", ".join(_evidence(r, have) for r in policy.rules)
    extra = "".join(f",\n  {expression}" for expression in also)
    return f"""
WITH r AS (SELECT f.*,
    {rules}
  FROM f),
s AS (SELECT r.*, CAST({score} AS DOUBLE) AS score FROM r),
t AS (SELECT f.*, CASE {tier} END AS tier FROM s f),
l AS (SELECT f.*, f.tier IN ({leads}) AS lead FROM t f)
SELECT person_id, tier, CASE tier {rank} END AS tier_rank, lead, score,
  '[' || concat_ws(',', {fired or "NULL"}) || ']' AS rules,
  '{{' || concat_ws(',', {evidence or "NULL"}) || '}}' AS evidence{extra}
FROM l f
"""


def _evidence(rule: Any, have: set[str]) -> str:
    """``"rule": [records]`` when the rule fired (NULL otherwise, which concat_ws skips)."""
    parts = [f'f."ev_{name}"' for name in sorted(rule.features) if name in have]
    if not parts:
        records = "'[]'"
    elif len(parts) == 1:
        records = f"coalesce(to_json({parts[0]})::VARCHAR, '[]')"
    else:
        joined = ", ".join(f"coalesce({p}, [])" for p in parts)
        records = f"to_json(list_concat({joined}))::VARCHAR"
    return f"""CASE WHEN {_fired(rule.id)} THEN '"{rule.id}":' || {records} END"""


def evaluate(policy: Policy, features: pa.Table, also: Sequence[str] = ()) -> pa.Table:
    """Score every person of ``features``: person_id, tier, tier_rank, lead, score, rules,
    evidence (rules and evidence as JSON text), and the ``also`` columns."""
    with stream(policy, features, also) as batches:
        return batches.read_all()


@contextlib.contextmanager
def stream(
    policy: Policy,
    features: pa.Table,
    also: Sequence[str] = (),
    threads: int | None = None,
    batch_rows: int = 122_880,
) -> Iterator[pa.RecordBatchReader]:
    """:func:`evaluate`'s rows as they are computed, ``batch_rows`` at a time, in the
    features' order; ``threads`` caps DuckDB's threads (default: one per core). The reader
    is valid while the context is open."""
    have = {n[3:] for n in features.column_names if n.startswith("ev_")}
    con = duckdb.connect(config={"threads": threads} if threads else {})
    try:
        con.register("f", features)
        yield con.sql(plan(policy, have, also)).to_arrow_reader(batch_rows)
    finally:
        con.close()


def evidence_items(evidence: str | Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """A stored evidence object as the flat list of records, each naming the rule it backs."""
    by_rule = orjson.loads(evidence) if isinstance(evidence, str) else evidence
    return [{**record, "rule": rule} for rule, records in by_rule.items() for record in records]


def score_one(policy: Policy, row: Mapping[str, Any]) -> tuple[str, float, list[str]]:
    """Tier, score and fired rules of one person, in Python (the explanation's own check)."""
    fired = [r.id for r in policy.rules if c.holds(r.cond, row, set())]
    score = float(sum(policy.rule(r).signed_weight for r in fired))
    tier = next(t.id for t in policy.tiers if c.holds(t.cond, row, set(fired), score))
    return tier, score, fired


def evidence_one(policy: Policy, row: Mapping[str, Any], fired: Sequence[str]) -> dict[str, Any]:
    """The evidence of one person's fired rules, in Python, as :func:`plan` builds it in SQL
    (parsed): per fired rule in the policy's order, the records of its features' evidence
    columns that ``row`` has (``ev_<name>``), in feature-name order, dates as ISO text."""
    out: dict[str, list[Any]] = {}
    chosen = set(fired)
    for rule in (r for r in policy.rules if r.id in chosen):
        names = sorted(rule.features)
        out[rule.id] = [e for n in names if f"ev_{n}" in row for e in row[f"ev_{n}"] or ()]
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(out))
    return parsed
