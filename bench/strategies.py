"""Which strategy finds a top architecture in the fewest trainings? Every strategy, many seeds, one report.

Two landscapes:
- ``table``: the shipped tabular benchmark (bench/tabular/*.csv: every architecture of the default
  BERT space on Rotten Tomatoes, really trained; see bench/tabular/build_table.py). A lookup stands
  in for training, so 20+ seeds of every strategy take seconds to minutes.
- ``live``: a small BERT space (48 architectures) trained for real (the default trainer) through the
  same objective the runner uses. Training is deterministic per (seed, architecture), so each
  distinct architecture is trained once and shared by every search that proposes it.

For each strategy and seed it records the best-so-far metric after each evaluation and the number
of evaluations needed to reach the top 1% of the table (a search that never gets there counts as
budget + 1, shown as ">budget"). Writes report.md, results.json and best_so_far.png.

    python bench/strategies.py                            # table, 20 seeds, budget 150 (~8 min on 2 cores)
    python bench/strategies.py --live --seeds 30          # the README's figures: + the live space (~5 min more)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.search import run_loop  # noqa: E402
from nas.space import Constraint, SearchSpace, architecture_key  # noqa: E402
from nas.strategies import make_strategy  # noqa: E402

TABLE = ROOT / "bench" / "tabular" / "bert_small_rotten_tomatoes.csv"
# name -> (strategy, settings beyond the shipped defaults in conf/)
VARIANTS = {
    "random": ("random", {}),
    "evolution": ("evolution", {}),
    "tpe": ("tpe", {}),
    "ppo": ("ppo", {}),
    "ppo-controller": ("ppo", {"env": "controller"}),
    "ppo-screening": ("ppo", {"env": "controller", "screening": 16}),
}


def shipped_defaults() -> dict[str, dict]:
    """The strategies' settings as `nas` ships them (conf/ppo/default.yaml, the config schema's defaults)."""
    from omegaconf import OmegaConf

    from nas.config import CONF_DIR
    from nas.strategies import EvolutionConfig, PPOConfig, TPEConfig

    ppo = OmegaConf.merge(OmegaConf.structured(PPOConfig), {k: v for k, v in OmegaConf.load(CONF_DIR / "ppo" / "default.yaml").items() if k != "defaults"})
    ppo = OmegaConf.to_container(ppo)
    ppo["iterations"] = None  # the evaluation budget ends a benchmark search
    return {"ppo": ppo, "evolution": vars(EvolutionConfig()), "tpe": vars(TPEConfig())}


def load_table(path: Path) -> tuple[SearchSpace, dict[tuple, float], list[str]]:
    rows = [r for r in csv.DictReader(path.open())]
    dims = [k for k in rows[0] if k not in {"num_parameters", "accuracy", "macro_f1", "train_seconds", "eval_seconds", "status", "error"} and "@" not in k]

    def parse(v: str):
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v

    choices = {d: sorted({parse(r[d]) for r in rows}, key=lambda v: (isinstance(v, str), v)) for d in dims}
    table = {tuple(parse(r[d]) for d in dims): float(r["accuracy"]) for r in rows if r["status"] == "ok"}
    # The table holds exactly the architectures that satisfy the space's constraints.
    space = SearchSpace.from_dict(choices, [Constraint("in the table", lambda a: tuple(a[d] for d in dims) in table)], name=path.stem)
    return space, table, dims


def evals_to_reach(curve: list[float], threshold: float, budget: int) -> int:
    return next((i + 1 for i, v in enumerate(curve) if v >= threshold - 1e-12), budget + 1)


def run_variant(space: SearchSpace, objective, variant: str, seeds: list[int], budget: int, defaults: dict, overrides: dict | None = None) -> list[dict]:
    kind, settings = VARIANTS[variant]
    out = []
    for seed in seeds:
        config = {**defaults.get(kind, {}), **settings, **((overrides or {}) if kind == "ppo" else {})}
        strategy = make_strategy(kind, space, seed=seed, **({kind: config} if kind in defaults else {}))
        start = time.perf_counter()
        result = run_loop(space, strategy, objective, budget)
        out.append({"seed": seed, "curve": result.best_so_far(), "evaluations": len(result.history), "seconds": time.perf_counter() - start,
                    "best": result.best_value})
    return out


def summarise(runs: list[dict], threshold: float, budget: int) -> dict:
    hits = [evals_to_reach(r["curve"], threshold, budget) for r in runs]
    q1, med, q3 = np.percentile(hits, [25, 50, 75])
    finals = [r["best"] for r in runs]
    return {"evals_to_top1_median": float(med), "evals_to_top1_q1": float(q1), "evals_to_top1_q3": float(q3),
            "reached": sum(h <= budget for h in hits), "runs": len(runs), "evals_to_top1": hits,
            "final_best_median": float(np.median(finals)), "seconds_median": float(np.median([r["seconds"] for r in runs]))}


def padded(curve: list[float], budget: int) -> list[float]:
    """A search that ended early (space exhausted, policy converged) keeps its best for the rest of the budget."""
    return curve + [curve[-1]] * (budget - len(curve))


def plot(results: dict[str, list[dict]], budget: int, threshold: float, title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    x = np.arange(1, budget + 1)
    for name, runs in results.items():
        curves = np.array([padded(r["curve"], budget) for r in runs])
        q1, med, q3 = np.nanpercentile(curves, [25, 50, 75], axis=0)
        ax.plot(x, med, label=name)
        ax.fill_between(x, q1, q3, alpha=0.15)
    ax.axhline(threshold, color="k", ls=":", lw=1, label="top 1%")
    ax.set_xscale("log")
    ax.set_xlabel("evaluations (trained architectures)")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report_rows(summary: dict[str, dict], budget: int) -> list[str]:
    lines = ["| strategy | evals to top 1%: median [q1, q3] | reached within budget | final best (median) | seconds per search |", "|---|---|---|---|---|"]
    for name, s in summary.items():
        fmt = lambda v: f">{budget}" if v > budget else f"{v:.0f}"  # noqa: E731
        lines.append(f"| {name} | {fmt(s['evals_to_top1_median'])} [{fmt(s['evals_to_top1_q1'])}, {fmt(s['evals_to_top1_q3'])}] | "
                     f"{s['reached']}/{s['runs']} | {s['final_best_median']:.4f} | {s['seconds_median']:.2f} |")
    return lines


def live_landscape(args):
    """A small BERT space trained for real through the runner's objective (fixed data seed: one landscape)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nas.config import CONF_DIR, register_configs, to_typed
    from nas.runner import CandidateObjective, build_search_space
    from nas.tasks import make_task

    register_configs()
    GlobalHydra.instance().clear()
    # The default trainer (fewer steps leave every model predicting the majority class), a smaller space.
    overrides = ["trainer.num_threads=1", "search_space.max_params=null", "search_space.initial=null",
                 "search_space.dimensions.hidden_size=[32,64]", "search_space.dimensions.intermediate_size=[64,128]",
                 "search_space.dimensions.hidden_act=[gelu,relu]", "search_space.dimensions.hidden_dropout_prob=[0.1]"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = to_typed(compose(config_name="config", overrides=overrides))
    task = make_task(config.task)
    candidate = CandidateObjective(task, config)
    space = build_search_space(config, task, candidate.fixed)
    trained: dict[str, float] = {}

    def objective(arch):
        key = architecture_key(arch)
        if key not in trained:
            outcome = candidate(arch)
            if outcome.status != "ok":
                raise RuntimeError(outcome.error)
            trained[key] = outcome.value
        return trained[key]

    return space, objective, overrides, trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--live", action="store_true", help="also search a small space that trains every candidate")
    parser.add_argument("--live-budget", type=int, default=24)
    parser.add_argument("--live-variants", nargs="+", default=["random", "evolution", "tpe", "ppo"], choices=list(VARIANTS))
    parser.add_argument("--ppo", nargs="*", default=[], metavar="KEY=VALUE", help="PPO settings for every ppo variant, e.g. population_size=4")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "strategies")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)  # the controller's networks are tiny: one thread is faster, and leaves a core free
    seeds = list(range(args.seeds))
    defaults = shipped_defaults()
    ppo_overrides = {}
    for item in args.ppo:
        key, value = item.split("=", 1)
        ppo_overrides[key] = json.loads(value) if value[:1] in "-0123456789.[{tfn" else value

    space, table, dims = load_table(args.table)
    values = sorted(table.values(), reverse=True)
    top = max(1, math.ceil(0.01 * len(values)))
    threshold = values[top - 1]

    def lookup(arch):
        return table[tuple(arch[d] for d in dims)]

    report = [f"# Strategies compared ({time.strftime('%Y-%m-%d %H:%M')})", "",
              f"## Table: {args.table.name}", "",
              f"{len(table)} architectures, accuracy {values[-1]:.3f} to {values[0]:.3f}; top 1% = the best {top} (accuracy >= {threshold:.3f}). "
              f"{args.seeds} seeds per strategy, budget {args.budget} evaluations.", ""]
    results, summary = {}, {}
    for name in args.variants:
        results[name] = run_variant(space, lookup, name, seeds, args.budget, defaults, ppo_overrides)
        summary[name] = summarise(results[name], threshold, args.budget)
        print(f"table {name}: median evals to top 1% {summary[name]['evals_to_top1_median']}, reached {summary[name]['reached']}/{args.seeds}", flush=True)
    plot(results, args.budget, threshold, f"{args.table.stem}: median and quartiles over {args.seeds} seeds", args.out / "best_so_far.png")
    report += report_rows(summary, args.budget)
    rnd = summary.get("random", {}).get("evals_to_top1_median")
    if rnd:
        report += ["", "PPO variants vs random search (median evaluations to top 1%; the bar is <= 0.5): " + ", ".join(
            f"{n} {summary[n]['evals_to_top1_median'] / rnd:.2f}" for n in summary if n.startswith("ppo"))]
    report += ["", "![best so far](best_so_far.png)", ""]
    output = {"table": {"file": args.table.name, "architectures": len(table), "threshold": threshold, "budget": args.budget, "summary": summary}}

    if args.live:
        start = time.perf_counter()
        space_live, objective, overrides, trained = live_landscape(args)
        live_results, live_summary = {}, {}
        for name in args.live_variants:
            live_results[name] = run_variant(space_live, objective, name, seeds, args.live_budget, defaults, ppo_overrides)
            print(f"live {name}: median best {np.median([r['best'] for r in live_results[name]]):.4f}", flush=True)
        live_sorted = sorted(trained.values(), reverse=True)
        best_seen = live_sorted[max(1, math.ceil(0.01 * len(live_sorted))) - 1]  # top 1% of the architectures trained
        for name, runs in live_results.items():
            live_summary[name] = summarise(runs, best_seen, args.live_budget)
        plot(live_results, args.live_budget, best_seen, f"live small BERT space: median and quartiles over {args.seeds} seeds", args.out / "live_best_so_far.png")
        report += ["## Live: every candidate trained", "", f"{space_live.size} architectures ({' '.join(overrides)}); budget {args.live_budget}, "
                   f"{args.seeds} seeds; top 1% = of the {len(trained)} distinct architectures the searches trained (accuracy >= {best_seen:.3f}). "
                   f"Training them took {time.perf_counter() - start:.0f} s.", ""]
        report += report_rows(live_summary, args.live_budget)
        report += ["", "![live best so far](live_best_so_far.png)", ""]
        output["live"] = {"budget": args.live_budget, "threshold": best_seen, "summary": live_summary}

    (args.out / "report.md").write_text("\n".join(report) + "\n")
    (args.out / "results.json").write_text(json.dumps(output, indent=1))
    print("\n".join(report))
    print(f"wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
