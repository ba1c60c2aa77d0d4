"""Multi-objective search: trade the task metric against a cost, and the Pareto front of a search.

The reward stays one number (the strategies maximise a scalar); the cost enters it as an additive
penalty in log space, so it works for rewards of either sign (accuracy in [0, 1], -log perplexity
below 0, chrF in [0, 100]). The Pareto front is computed on the task metric itself, not on the
penalised reward, so it shows the trade-off whatever weight the search used.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.settings import _COST_LABELS, COSTS, MODES, ObjectiveConfig, OverBudget  # noqa: F401 (re-exported)
from nas.tasks import higher_is_better as task_metric_higher_is_better

if TYPE_CHECKING:
    import pandas as pd

# Costs are minimised; a task metric's direction is its task's (TaskSpec.metrics); the rest are maximised.
LOWER_IS_BETTER = frozenset({"loss", "latency_ms", "num_parameters"})





def measure_latency(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor], repeats: int = 5, warmup: int = 1) -> float:
    """Median milliseconds of one no-grad, eval-mode forward pass of ``model`` on ``inputs`` (moved to its device).

    The weights do not change the compute, so an untrained model measures the same as a trained one:
    measure before training to reject over-budget candidates early. The time depends on the number
    of torch threads and on what else runs on the machine, so latency rewards are not reproducible
    the way metrics are; the median of several runs damps the noise.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"measure_latency needs repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = next(model.parameters()).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    modes = {m: m.training for m in model.modules()}  # restore exactly, even a mixed train/eval model
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)  # CUDA runs asynchronously
    times = []
    model.eval()
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                sync(device)
                start = time.perf_counter()
                model(**batch)
                sync(device)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
    finally:
        for module, training in modes.items():
            module.training = training
    return statistics.median(times)


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


def _maximise(metric_key: str, higher_is_better: bool | None) -> bool:
    if higher_is_better is not None:
        return higher_is_better
    if metric_key in LOWER_IS_BETTER:
        return False
    return task_metric_higher_is_better(metric_key) in (True, None)  # None: no task reports it


def pareto_table(records: Sequence[Mapping[str, Any]], metric_key: str, cost_key: str,
                 higher_is_better: bool | None = None) -> pd.DataFrame:
    """One row per ok candidate with both numbers: index, <metric_key>, <cost_key>, on_front, reward, then the
    architecture's fields; sorted by cost (then best metric first).

    Records are the runner's candidates.jsonl rows; keys are looked up at the top level, then in
    ``metrics``. ``higher_is_better`` defaults to False for loss and perplexity, True otherwise.
    Failed candidates and those missing the metric or the cost are left out.
    """
    import pandas as pd

    maximise = _maximise(metric_key, higher_is_better)
    rows = []
    for record in records:
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


def write_pareto(records: Sequence[Mapping[str, Any]], metric_key: str, cost_key: str, out_dir: str | Path,
                 higher_is_better: bool | None = None, name: str = "pareto") -> list[Path]:
    """Write ``<name>.csv`` (pareto_table) and ``<name>.png`` (metric vs cost, the front marked) into ``out_dir``.

    Returns the paths written; nothing (an empty list) when no ok candidate has both numbers.
    """
    table = pareto_table(records, metric_key, cost_key, higher_is_better)
    if table.empty:
        return []
    import pandas as pd
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state, safe headless
    from matplotlib.ticker import EngFormatter, FuncFormatter

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_dir / f"{name}.csv", out_dir / f"{name}.png"
    table.to_csv(csv_path, index=False)

    maximise = _maximise(metric_key, higher_is_better)
    front = table[table["on_front"]]  # sorted by cost: the metric improves along it
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.scatter(table[cost_key], table[metric_key], s=22, color="0.65", label=f"candidates ({len(table)})", zorder=2)
    # Best metric reachable at each cost: flat until the next front point.
    ax.step(front[cost_key], front[metric_key], where="post", color="tab:red", linewidth=1.2, zorder=3)
    ax.scatter(front[cost_key], front[metric_key], s=40, color="tab:red", edgecolor="black", linewidth=0.5,
               label=f"Pareto front ({len(front)})", zorder=4)
    for (cost, metric), tied in front.groupby([cost_key, metric_key], sort=False)["index"]:  # equal points share one label
        label = ",".join(f"#{int(i)}" for i in tied if pd.notna(i))
        ax.annotate(label, (cost, metric), textcoords="offset points", xytext=(4, 4), fontsize=7, color="tab:red")
    costs = table[cost_key]
    if cost_key == "num_parameters" or (costs.min() > 0 and costs.max() / costs.min() >= 10):
        ax.set_xscale("log")
        # 40k, 1.2M, 0.5 rather than 4x10^4; minor ticks labelled at 2 and 5 only, so labels never collide.
        plain = EngFormatter(sep="") if cost_key == "num_parameters" else FuncFormatter(lambda x, _: f"{x:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, pos: plain(x, pos) if _mantissa(x) in (2, 5) else ""))
    ax.margins(x=0.06, y=0.08)
    ax.set_xlabel(f"{_COST_LABELS.get(cost_key, cost_key)} (lower is better)")
    ax.set_ylabel(f"{metric_key} ({'higher' if maximise else 'lower'} is better)")
    ax.set_title(f"{metric_key} vs {_COST_LABELS.get(cost_key, cost_key)}: {len(front)} of {len(table)} candidates on the Pareto front")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.savefig(png_path, dpi=120)
    return [csv_path, png_path]


def _mantissa(x: float) -> int:
    return round(x / 10 ** math.floor(math.log10(x))) if x > 0 else 0


def load_records(path: str | Path, drop_torn_last: bool = False) -> list[dict[str, Any]]:
    """The rows of a search's candidates.jsonl, e.g. to redraw its front afterwards.

    ``drop_torn_last``: a last line that is not JSON (cut by a kill mid-write) is left out rather than an error.
    """
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if drop_torn_last and number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not a JSON record ({exc})") from exc
    return records
