"""Plots of a search's progress, drawn from its candidates.jsonl rows (``nas.records.load_records``).

``write_search_plots(records, metric, out_dir)`` writes, in one call:

- ``reward_per_iteration.png``: mean and max reward of each search iteration's candidates (each
  candidate a grey dot). Strategies without iterations (random, evolution, TPE: every candidate is
  in iteration 0) get the reward of each candidate in evaluation order instead.
- ``best_so_far.png``: the best task metric (``metrics[metric]``; the reward when the candidates
  have no such metric) after each evaluation, lowest for loss and perplexity; failed evaluations
  are marked on the x axis.
- ``pareto_num_parameters.{csv,png}`` (and ``pareto_latency_ms`` when latency was measured):
  ``write_pareto``, metric vs cost with the Pareto front marked.

The series each figure draws come from ``reward_per_iteration`` and ``best_so_far``, pure functions
of the records, so they can be checked (and reused) without reading pixels.

Redraw a finished search's plots: ``python -m nas.plots outputs/runs/<date>/<time>/candidates.jsonl accuracy``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.pareto import maximised, pareto_table
from nas.records import CandidateRecord, as_rows, load_records
from nas.settings import _COST_LABELS, COSTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGSIZE = (7.5, 4.8)  # inches; at DPI: 900 x 576 pixels, the size of the Pareto plot
DPI = 120
REWARD_PER_ITERATION = "reward_per_iteration.png"
BEST_SO_FAR = "best_so_far.png"
_FAILED_COLOR = "tab:red"
Records = Sequence[CandidateRecord | Mapping[str, Any]]  # what the runner holds, or rows of any candidates.jsonl


# --- the series -------------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (bool, str, Mapping)):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _ok(record: Mapping[str, Any]) -> bool:
    """A candidate that trained and has a finite reward (the runner writes failed ones with reward null)."""
    return record.get("status", "ok") == "ok" and _number(record.get("reward")) is not None


def _in_order(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """By evaluation index (file order for rows without one)."""
    keyed = [(r.get("index") if isinstance(r.get("index"), int) else position, position, r) for position, r in enumerate(records)]
    return [r for _, _, r in sorted(keyed, key=lambda t: (t[0], t[1]))]


@dataclass
class IterationSeries:
    """Rewards grouped by search iteration (failed candidates are counted, not averaged)."""

    iterations: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)  # nan where every candidate of the iteration failed
    max: list[float] = field(default_factory=list)
    ok: list[int] = field(default_factory=list)  # candidates with a reward, per iteration
    failed: list[int] = field(default_factory=list)
    rewards: list[list[float]] = field(default_factory=list)  # each iteration's ok rewards, in evaluation order

    @property
    def total_failed(self) -> int:
        return sum(self.failed)

    @property
    def total(self) -> int:
        return sum(self.ok) + sum(self.failed)


def reward_per_iteration(records: Records) -> IterationSeries:
    """Mean and max reward of the ok candidates of each iteration (records without one count as iteration 0)."""
    records = as_rows(records)
    groups: dict[int, tuple[list[float], list[int]]] = {}
    for record in _in_order(records):
        iteration = record.get("iteration")
        rewards, failed = groups.setdefault(int(iteration) if isinstance(iteration, (int, float)) else 0, ([], [0]))
        if _ok(record):
            rewards.append(float(record["reward"]))
        else:
            failed[0] += 1
    series = IterationSeries()
    for iteration in sorted(groups):
        rewards, failed = groups[iteration]
        series.iterations.append(iteration)
        series.mean.append(math.fsum(rewards) / len(rewards) if rewards else math.nan)
        series.max.append(max(rewards) if rewards else math.nan)
        series.ok.append(len(rewards))
        series.failed.append(failed[0])
        series.rewards.append(rewards)
    return series


@dataclass
class BestSoFar:
    """The best value after each evaluation. ``key`` is the metric plotted: the task metric, or "reward"."""

    key: str
    maximise: bool
    evaluations: list[int] = field(default_factory=list)  # 1, 2, ..., N: the x axis
    indices: list[Any] = field(default_factory=list)  # the candidates' ``index``
    values: list[float] = field(default_factory=list)  # each evaluation's value, nan when it failed
    best: list[float] = field(default_factory=list)  # running best, nan until the first success
    failed: list[int] = field(default_factory=list)  # evaluation numbers of the failed candidates
    stopped_early: list[int] = field(default_factory=list)  # evaluation numbers of candidates trained fewer steps (fidelity hurdles)

    @property
    def best_evaluation(self) -> int | None:
        """The evaluation number that reached the final best (the first to reach it)."""
        finite = [(v, e) for v, e in zip(self.values, self.evaluations) if not math.isnan(v)]
        if not finite:
            return None
        target = self.best[-1]
        return next(e for v, e in finite if v == target)


def best_so_far(records: Records, metric: str, higher_is_better: bool | None = None) -> BestSoFar:
    """Running best of ``metrics[metric]`` (lowest for loss/perplexity unless ``higher_is_better``) over the evaluations.

    When no ok candidate has ``metric`` (an objective without metrics, say) the reward is used, and
    maximised. Failed candidates, and ok ones without the value, leave the best unchanged.
    """
    records = as_rows(records)
    rows = _in_order(records)
    ok_rows = [r for r in rows if _ok(r)]
    has_metric = bool(ok_rows) and all(_number((r.get("metrics") or {}).get(metric)) is not None for r in ok_rows)
    key = metric if has_metric or not ok_rows else "reward"
    maximise = True if key == "reward" else maximised(metric, higher_is_better)
    steps = [s for r in ok_rows if (s := _number(r.get("steps"))) is not None]
    full_steps = max(steps) if steps else None
    series = BestSoFar(key, maximise)
    best = math.nan
    for number, record in enumerate(rows, start=1):
        series.evaluations.append(number)
        series.indices.append(record.get("index", number - 1))
        value = None
        if _ok(record):
            value = _number(record.get("reward")) if key == "reward" else _number((record.get("metrics") or {}).get(key))
            step = _number(record.get("steps"))
            if full_steps is not None and step is not None and step < full_steps:
                series.stopped_early.append(number)
        else:
            series.failed.append(number)
        if value is not None and (math.isnan(best) or (value > best if maximise else value < best)):
            best = value
        series.values.append(math.nan if value is None else value)
        series.best.append(best)
    return series


def reward_label(records: Records, metric: str) -> str:
    """What the reward is, read off the records: the metric itself, -ln(perplexity), -metric, and whether a cost penalty is in it.

    ``metric_reward`` (the task's reward before any cost penalty) is compared with ``metrics[metric]``
    and with ``reward``; with no relation found the label is plain "reward".
    """
    records = as_rows(records)
    ok_rows = [r for r in records if _ok(r)]
    if not ok_rows:
        return "reward"
    pairs, penalised = [], False
    for r in ok_rows:
        reward = float(r["reward"])
        metric_reward = _number(r.get("metric_reward"))
        if metric_reward is None:
            metric_reward = reward
        penalised |= not math.isclose(metric_reward, reward, rel_tol=1e-9, abs_tol=1e-12)
        pairs.append((metric_reward, _number((r.get("metrics") or {}).get(metric))))

    def reward_is(f) -> bool:
        return all(v is not None and math.isclose(m, f(v), rel_tol=1e-6, abs_tol=1e-9) for m, v in pairs)

    what = None
    if reward_is(lambda v: v):
        what = metric
    elif metric == "perplexity" and all(v is not None and v > 0 for _, v in pairs) and reward_is(lambda v: -math.log(v)):
        what = "−ln(perplexity)"
    elif reward_is(lambda v: -v):
        what = f"−{metric}"
    if what is None:
        return "reward (cost penalty included)" if penalised else "reward"
    return f"reward = {what}" + (" − cost penalty" if penalised else "")


def moving_window(n: int) -> int:
    """Candidates per point of the moving mean in the one-iteration view: about an eighth of them, at least 3 (1: none drawn)."""
    return max(3, n // 8) if n >= 6 else 1


def moving_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each ``window`` consecutive values (len(values) - window + 1 of them)."""
    return [math.fsum(values[i - window:i]) / window for i in range(window, len(values) + 1)]


# --- the figures ------------------------------------------------------------------------------

def _figure() -> tuple[Figure, Any]:
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state, safe headless

    fig = Figure(figsize=FIGSIZE, layout="constrained")
    return fig, fig.subplots()


def _mark_failed(ax, xs: Sequence[float], label: str) -> None:
    """Red crosses on the x axis (just above it, in axes coordinates, so they never move the y limits)."""
    if not xs:
        return
    transform = ax.get_xaxis_transform()  # x in data, y in axes coordinates
    ax.scatter(xs, [0.02] * len(xs), marker="x", s=36, color=_FAILED_COLOR, linewidths=1.5, transform=transform, clip_on=False,
               zorder=5, label=label)


def _plain_log_yaxis(ax) -> None:
    """Log scale labelled 150, 200, 500 rather than 10^2: minor ticks labelled at 2 and 5 only, so labels never collide."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}" if _mantissa(y) in (2, 5) else ""))


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.35")
    ax.set_yticks([])


def _failed_note(failed: int, total: int, how: str) -> str:
    if failed == total:
        return f"all {total} candidates failed" if total > 1 else "the only candidate failed"
    return f"{failed} of {total} candidates failed ({how})" if failed else f"{total} candidate{'s' * (total > 1)}, none failed"


def reward_per_iteration_figure(records: Records, metric: str | None = None) -> Figure:
    """Mean and max reward per iteration; per candidate when all the candidates are in one iteration."""
    records = as_rows(records)
    from matplotlib.ticker import FixedLocator, MaxNLocator

    series = reward_per_iteration(records)
    ylabel = reward_label(records, metric) if metric else "reward"
    fig, ax = _figure()
    ax.set_ylabel(f"{ylabel}\n(higher is better)")
    note = _failed_note(series.total_failed, series.total, "× on the x axis, left out of the rewards")
    if series.total == 0:
        _no_data(ax, "no candidates")
        ax.set_title("reward per iteration")
        return fig
    if len(series.iterations) == 1:  # random search, evolution, TPE or a PPO search shorter than one update
        rows = _in_order(records)
        xs = list(range(1, len(rows) + 1))
        ok = [(x, float(r["reward"])) for x, r in zip(xs, rows) if _ok(r)]
        if ok:
            ax.scatter([x for x, _ in ok], [y for _, y in ok], s=16, color="0.55", zorder=2, label="each candidate")
            window = moving_window(len(ok))
            if window > 1:
                moving = moving_mean([y for _, y in ok], window)
                ax.plot([x for x, _ in ok][window - 1:], moving, color="tab:blue", linewidth=1.6, zorder=3,
                        label=f"mean of the last {window} candidates")
            mean = series.mean[0]
            which = f"the {len(ok)} successful" if series.total_failed else f"all {len(ok)}"
            ax.axhline(mean, color="tab:green", linestyle="--", linewidth=1, label=f"mean of {which}: {mean:.4g}")
        else:
            _no_data(ax, f"no successful candidate: all {series.total} failed")
        _mark_failed(ax, [x for x, r in zip(xs, rows) if not _ok(r)], f"failed ({series.total_failed})")
        ax.set_xlim(0.5, len(rows) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("evaluation (distinct candidates, in order)")
        title = f"reward of each candidate (all in search iteration {series.iterations[0]})"
        ax.set_title(f"{title}\n{note}", fontsize=10)
    else:
        iterations = series.iterations
        if all(math.isnan(m) for m in series.mean):
            _no_data(ax, f"no successful candidate: all {series.total} failed")
        labelled = False
        for it, rewards in zip(iterations, series.rewards):
            if rewards:
                ax.scatter([it] * len(rewards), rewards, s=12, color="0.6", alpha=0.7, zorder=2,
                           label=None if labelled else "each candidate")
                labelled = True
        if not all(math.isnan(m) for m in series.mean):  # a gap where an iteration has no successful candidate
            ax.plot(iterations, series.max, color="tab:orange", marker="^", markersize=6, linewidth=1.5, label="max", zorder=4)
            ax.plot(iterations, series.mean, color="tab:blue", marker="o", markersize=5, linewidth=1.5, label="mean", zorder=4)
        _mark_failed(ax, [it for it, f in zip(iterations, series.failed) if f], f"iteration with failures ({series.total_failed} in all)")
        for it, failed in zip(iterations, series.failed):
            if failed:
                ax.annotate(f"{failed}", (it, 0.02), xycoords=ax.get_xaxis_transform(), xytext=(5, 2), textcoords="offset points",
                            fontsize=7, color=_FAILED_COLOR)
        if len(iterations) <= 15:  # each iteration labelled with its candidate count
            ax.xaxis.set_major_locator(FixedLocator(iterations))
            ax.set_xticklabels([f"{it}\n({ok + failed})" for it, ok, failed in zip(iterations, series.ok, series.failed)])
            ax.set_xlabel("search iteration (candidates in it)")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("search iteration")
        span = iterations[-1] - iterations[0]
        ax.set_xlim(iterations[0] - 0.04 * span - 0.3, iterations[-1] + 0.04 * span + 0.3)
        ax.set_title(f"reward of each iteration's candidates ({len(iterations)} iterations)\n{note}", fontsize=10)
    ax.margins(y=0.1)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    return fig


def best_so_far_figure(records: Records, metric: str, higher_is_better: bool | None = None) -> Figure:
    """The running best of the metric against the number of evaluations; each candidate a dot, failures on the x axis."""
    records = as_rows(records)
    from matplotlib.ticker import MaxNLocator

    series = best_so_far(records, metric, higher_is_better)
    direction = "higher" if series.maximise else "lower"
    fig, ax = _figure()
    ylabel = reward_label(records, metric) if series.key == "reward" else series.key
    ax.set_ylabel(f"{ylabel} ({direction} is better)")
    ax.set_xlabel("evaluations (distinct candidates, in order)")
    n = len(series.evaluations)
    note = _failed_note(len(series.failed), n, "× on the x axis")
    if n == 0:
        _no_data(ax, "no candidates")
        ax.set_title(f"best {series.key} so far")
        return fig
    xs = [e for e, v in zip(series.evaluations, series.values) if not math.isnan(v)]
    if xs:
        early = set(series.stopped_early)
        full = [(e, v) for e, v in zip(series.evaluations, series.values) if not math.isnan(v) and e not in early]
        partial = [(e, v) for e, v in zip(series.evaluations, series.values) if not math.isnan(v) and e in early]
        if full:
            ax.scatter([e for e, _ in full], [v for _, v in full], s=16, color="0.6", zorder=2, label="each candidate")
        if partial:
            ax.scatter([e for e, _ in partial], [v for _, v in partial], s=16, facecolor="none", edgecolor="0.45", zorder=2,
                       label=f"stopped at a fidelity hurdle ({len(partial)})")
        first = xs[0]  # the curve starts at the first success
        curve = [(e, b) for e, b in zip(series.evaluations, series.best) if e >= first]
        ax.step([e for e, _ in curve], [b for _, b in curve], where="post", color="tab:blue", linewidth=1.8, zorder=3,
                label=f"best so far ({'max' if series.maximise else 'min'})")
        at = series.best_evaluation
        best = series.best[-1]
        ax.scatter([at], [best], s=50, color="tab:blue", edgecolor="black", linewidth=0.6, zorder=4)
        index = series.indices[at - 1]
        # Label on the side away from the curve (above a maximum, below a minimum), inside the axes at either end.
        ha, dx = ("right", -6) if at > 0.85 * n and n > 1 else ("left", 6) if at < 0.15 * n and n > 1 else ("center", 0)
        ax.annotate(f"#{index}: {best:.4g}", (at, best), textcoords="offset points", xytext=(dx, 8 if series.maximise else -8),
                    ha=ha, va="bottom" if series.maximise else "top", fontsize=8, color="tab:blue", zorder=6,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        values = [v for v in series.values if not math.isnan(v)]
        if series.key == "perplexity" and min(values) > 0 and max(values) / min(values) >= 10:  # untrained vs trained models
            _plain_log_yaxis(ax)
        title = f"{'highest' if series.maximise else 'lowest'} {series.key} so far: {best:.4g} (candidate #{index}, evaluation {at} of {n})"
    else:
        _no_data(ax, f"no successful candidate: all {n} failed")
        title = f"best {series.key} so far"
    _mark_failed(ax, series.failed, f"failed ({len(series.failed)})")
    ax.set_xlim(0.5, n + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.margins(y=0.12)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{title}\n{note}", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    return fig


def write_pareto(records: Records, metric_key: str, cost_key: str, out_dir: str | Path,
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

    maximise = maximised(metric_key, higher_is_better)
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


def write_search_plots(records: Records, metric: str, out_dir: str | Path, higher_is_better: bool | None = None,
                       pareto_costs: Sequence[str] | None = None) -> list[Path]:
    """Write reward_per_iteration.png, best_so_far.png and the Pareto plots (with their CSVs) into ``out_dir``.

    ``records`` are candidates.jsonl's rows (``nas.records.load_records``), ``metric`` the task
    metric (``config.task.metric``). ``pareto_costs`` defaults to num_parameters, plus latency_ms
    when a candidate has it; each gives ``pareto_<cost>.{csv,png}`` (none when no candidate has both
    numbers). Returns the paths written; an empty list when there are no records.
    """
    records = as_rows(records)
    if not records:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in ((REWARD_PER_ITERATION, reward_per_iteration_figure(records, metric)),
                      (BEST_SO_FAR, best_so_far_figure(records, metric, higher_is_better))):
        fig.savefig(out_dir / name, dpi=DPI)
        paths.append(out_dir / name)
    if pareto_costs is None:
        pareto_costs = [c for c in COSTS if c == "num_parameters" or any(_number(r.get(c)) is not None for r in records)]
    for cost in pareto_costs:
        paths += write_pareto(records, metric, cost, out_dir, higher_is_better, name=f"pareto_{cost}")
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nas.plots", description="Redraw a search's plots from its candidates.jsonl.")
    parser.add_argument("candidates", type=Path, help="a search's candidates.jsonl")
    parser.add_argument("metric", help="the task metric (task.metric: accuracy, perplexity, chrf...)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: plots/ beside candidates.jsonl)")
    args = parser.parse_args(argv)
    for path in write_search_plots(load_records(args.candidates), args.metric, args.out or args.candidates.parent / "plots"):
        print(path)


if __name__ == "__main__":
    main()
