"""Run a policy over a feature table in one vectorised SQL statement (DuckDB).

:func:`plan` compiles a policy to SQL that can be read before it runs: one boolean per rule,
the score, the tier (first that holds), the rules that fired, and the evidence behind each
fired rule (the records of every feature its condition names). :func:`score_one` evaluates
the same policy for one person in plain Python; tests hold the two equal, and the benchmark
uses the row-by-row form as its peer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from immigrationos.priority import conditions as c
from immigrationos.priority.policy import Policy


def _col(feature: str) -> str:
    return f'f."{feature}"'


def _fired(rule_id: str) -> str:
    return f'"r_{rule_id}"'


def plan(policy: Policy, available: set[str] | None = None) -> str:
    """The SQL scoring every row of the table ``f`` under ``policy``.

    ``available`` names the feature columns the table has evidence for (``ev_<name>``).
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
    fired = ", ".join(f"CASE WHEN {_fired(r.id)} THEN '{r.id}' END" for r in policy.rules)
    evidence = ", ".join(_evidence(r, have) for r in policy.rules) or "[]"
    return f"""
WITH r AS (SELECT f.*,
    {rules}
  FROM f),
s AS (SELECT r.*, CAST({score} AS DOUBLE) AS score FROM r),
t AS (SELECT f.*, CASE {tier} END AS tier FROM s f)
SELECT person_id, tier, CASE tier {rank} END AS tier_rank, tier IN ({leads}) AS lead, score,
  to_json(list_filter([{fired}], lambda x: x IS NOT NULL))::VARCHAR AS rules,
  to_json(list_concat({evidence}))::VARCHAR AS evidence
FROM t f
ORDER BY person_id
"""


def _evidence(rule: Any, have: set[str]) -> str:
    parts = [f'coalesce(f."ev_{name}", [])' for name in sorted(rule.features) if name in have]
    if not parts:
        return "[]"
    joined = parts[0] if len(parts) == 1 else f"list_concat({', '.join(parts)})"
    tagged = f"list_transform({joined}, lambda e: struct_insert(e, rule := '{rule.id}'))"
    return f"CASE WHEN {_fired(rule.id)} THEN {tagged} ELSE [] END"


def evaluate(policy: Policy, features: pa.Table) -> pa.Table:
    """Score every person of ``features``: person_id, tier, tier_rank, lead, score, rules,
    evidence (rules and evidence as JSON text)."""
    have = {n[3:] for n in features.column_names if n.startswith("ev_")}
    con = duckdb.connect()
    try:
        con.register("f", features)
        return con.sql(plan(policy, have)).to_arrow_table()
    finally:
        con.close()


def score_one(policy: Policy, row: Mapping[str, Any]) -> tuple[str, float, list[str]]:
    """Tier, score and fired rules of one person, in Python (the explanation's own check)."""
    fired = [r.id for r in policy.rules if c.holds(r.cond, row, set())]
    score = float(sum(policy.rule(r).signed_weight for r in fired))
    tier = next(t.id for t in policy.tiers if c.holds(t.cond, row, set(fired), score))
    return tier, score, fired
