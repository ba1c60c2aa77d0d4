"""The Pareto front of a search: which candidates no other beats on both the task metric and a cost.

The front is computed on the task metric itself, not on the penalised reward (``objective.cost``), so it
shows the trade-off whatever weight the search used. Drawn by ``nas.plots.write_pareto``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nas.records import CandidateRecord, as_rows
from nas.tasks import higher_is_better as task_metric_higher_is_better

if TYPE_CHECKING:
    import pandas as pd

# Costs are minimised; a task metric's direction is its task's (TaskSpec.metrics); the rest are maximised.
LOWER_IS_BETTER = frozenset({"loss", "latency_ms", "num_parameters"})


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (metric to maximise, cost to minimise), whether no other point dominates it.

    q dominates p when q's metric >= p's and q's cost <= p's, strictly better in one; equal points
    are therefore all on the front. O(n log n): sort by cost, sweep with the best metric so far.
    """
    for metric, cost in points:
        if math.isnan(metric) or math.isnan(cost):
            raise ValueError(f"pareto_front: NaN in point ({metric}, {cost})")
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    on_front = [False] * len(points)
    best_cheaper = None  # best metric among strictly cheaper points
    i = 0
    while i < len(order):
        cost = points[order[i]][1]
        group_best = points[order[i]][0]  # the group of equal cost is sorted best metric first
        j = i
        while j < len(order) and points[order[j]][1] == cost:
            metric = points[order[j]][0]
            on_front[order[j]] = metric == group_best and (best_cheaper is None or metric > best_cheaper)
            j += 1
        best_cheaper = group_best if best_cheaper is None else max(best_cheaper, group_best)
        i = j
    return on_front


def _value(record: Mapping[str, Any], key: str) -> float | None:
    """A record's top-level number (reward, num_parameters, latency_ms) or one of its metrics."""
    value = record.get(key) if key in record else (record.get("metrics") or {}).get(key)
    if value is None or isinstance(value, (Mapping, str, bool)):
        return None
    if isinstance(value, int):
        return value  # parameter counts stay integers in the table
    value = float(value)
    return None if math.isnan(value) else value


def maximised(metric_key: str, higher_is_better: bool | None) -> bool:
    if higher_is_better is not None:
        return higher_is_better
    if metric_key in LOWER_IS_BETTER:
        return False
    return task_metric_higher_is_better(metric_key) in (True, None)  # None: no task reports it


def pareto_table(records: Sequence[CandidateRecord | Mapping[str, Any]], metric_key: str, cost_key: str,
                 higher_is_better: bool | None = None) -> pd.DataFrame:
    """One row per ok candidate with both numbers: index, <metric_key>, <cost_key>, on_front, reward, then the
    architecture's fields; sorted by cost (then best metric first).

    Records are CandidateRecords or candidates.jsonl rows; keys are looked up at the top level, then in
    ``metrics``. ``higher_is_better`` defaults to False for loss and perplexity, True otherwise.
    Failed candidates and those missing the metric or the cost are left out.
    """
    import pandas as pd

    maximise = maximised(metric_key, higher_is_better)
    rows = []
    for record in as_rows(records):
        metric, cost = _value(record, metric_key), _value(record, cost_key)
        if record.get("status", "ok") != "ok" or metric is None or cost is None:
            continue
        row = {"index": record.get("index"), metric_key: metric, cost_key: cost, "on_front": False}
        if "reward" not in row:
            row["reward"] = record.get("reward")
        for name, choice in (record.get("architecture") or {}).items():
            row[name if name not in row else f"architecture.{name}"] = choice
        rows.append(row)
    front = pareto_front([(r[metric_key] if maximise else -r[metric_key], r[cost_key]) for r in rows])
    for row, on in zip(rows, front):
        row["on_front"] = on
    columns = ["index", metric_key, cost_key, "on_front"] + (["reward"] if metric_key != "reward" and cost_key != "reward" else [])
    table = pd.DataFrame(rows, columns=list(dict.fromkeys(columns + [k for r in rows for k in r])))
    table = table.sort_values([cost_key, metric_key, "index"], ascending=[True, not maximise, True], kind="stable")
    return table.reset_index(drop=True)
