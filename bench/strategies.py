"""Which strategy reaches a top architecture in the fewest trainings? Every landscape, many seeds, one report.

Landscapes (bench/landscapes.py, ``DEFAULT``): two real tables of the default BERT space (accuracy,
macro-F1), a real ViT table, NAS-Bench-Graph (Cora) and four synthetic landscapes (three more
synthetic ones and NAS-Bench-Graph Photo with ``--landscapes``). ``TUNED_ON`` there names
the three the PPO design was tuned on; the rest are held out.

For each landscape, variant and seed it records the number of evaluations to reach the landscape's
top 1% (never: budget + 1, shown as ">budget") and the final best. The report gives median and
quartiles, a two-sided Mann-Whitney U test of PPO against TPE, the issue's bars (with a bootstrap
interval of PPO's median minus TPE's), and the ablations:
- ``ppo-lr0``: the shipped PPO with learning rate 0 (its policy never learns);
- ``ppo-uniform``: the same search with the policy replaced by uniform sampling of modifications;
- ``ppo-model-free``: the shipped PPO without the model-based updates (model_iterations=0).

    python bench/strategies.py                      # 8 landscapes: 100 seeds, 30 for the ablations (~26 min on 2 cores)
    python bench/strategies.py --landscapes bert-accuracy --seeds 20 --variants tpe ppo
Needs the bench extra (``pip install -e '.[bench]'``: Optuna for TPE, nas-bench-graph for its tables).
Writes outputs/bench/strategies/report.md and results.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from landscapes import DEFAULT, LANDSCAPES, TUNED_ON, Landscape  # noqa: E402

from nas.search import run_loop  # noqa: E402
from nas.strategies import PPOConfig, PPOStrategy, make_strategy  # noqa: E402

# name -> (strategy, PPO settings beyond the shipped defaults)
VARIANTS = {
    "random": ("random", {}),
    "evolution": ("evolution", {}),
    "tpe": ("tpe", {}),
    "ppo": ("ppo", {}),
    "ppo-lr0": ("ppo", {"learning_rate": 0.0}),
    "ppo-uniform": ("ppo-uniform", {"model_iterations": 0}),
    "ppo-model-free": ("ppo", {"model_iterations": 0}),
}
SLOW = {"ppo-lr0", "ppo-uniform", "ppo-model-free"}  # the ablations: fewer seeds (--slow-seeds)


class UniformPolicyPPO(PPOStrategy):
    """The ablation: the same search, but every episode samples its modifications uniformly."""

    def _distribution(self, obs, mask):
        import torch

        from nas.ppo import MaskedCategorical

        return MaskedCategorical(torch.zeros(mask.shape), mask)


_landscapes: dict[str, Landscape] = {}


def landscape(name: str) -> Landscape:
    if name not in _landscapes:
        _landscapes[name] = LANDSCAPES[name]()
    return _landscapes[name]


def run_one(job: tuple[str, str, int, int, dict]) -> dict:
    """One search: (landscape, variant, seed, budget, PPO overrides) -> evaluations to the top 1%, final best."""
    import torch

    torch.set_num_threads(1)  # the controller's networks are tiny: one thread each, one process per core
    name, variant, seed, budget, overrides = job
    land = landscape(name)
    kind, settings = VARIANTS[variant]
    config = {"iterations": None, **settings, **(overrides if kind.startswith("ppo") else {})}
    if kind == "ppo-uniform":
        strategy = UniformPolicyPPO(land.space, PPOConfig(**config), seed=seed, initial=land.initial)
    else:
        strategy = make_strategy(kind, land.space, seed=seed, initial=land.initial, **({"ppo": config} if kind == "ppo" else {}))
    start = time.perf_counter()
    result = run_loop(land.space, strategy, land.lookup, budget)
    curve = result.best_so_far()
    threshold = land.threshold
    hit = next((i + 1 for i, v in enumerate(curve) if v >= threshold - 1e-12), budget + 1)
    return {"landscape": name, "variant": variant, "seed": seed, "evals_to_top1": hit, "best": result.best_value,
            "evaluations": len(result.history), "seconds": time.perf_counter() - start}


def summarise(runs: list[dict], budget: int) -> dict:
    hits = np.array([r["evals_to_top1"] for r in runs])
    q1, med, q3 = np.percentile(hits, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "reached": int((hits <= budget).sum()), "seeds": len(runs),
            "final_best_median": float(np.median([r["best"] for r in runs])), "seconds_median": float(np.median([r["seconds"] for r in runs])),
            "hits": hits.tolist()}


def mann_whitney(a: list[int], b: list[int]) -> float:
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def median_difference_interval(a: list[int], b: list[int], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A bootstrap 95% interval (percentile) of median(a) - median(b): how far apart two medians of this many seeds
    can be read (seeded, so a report rebuilt from its results is the same)."""
    from scipy.stats import bootstrap

    def difference(x, y, axis=-1):
        return np.median(x, axis=axis) - np.median(y, axis=axis)

    interval = bootstrap((a, b), difference, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    return float(interval.low), float(interval.high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landscapes", nargs="+", default=list(DEFAULT), choices=list(LANDSCAPES))
    parser.add_argument("--variants", nargs="+", default=["random", "tpe", "ppo", "ppo-lr0", "ppo-uniform", "ppo-model-free"], choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--slow-seeds", type=int, default=30, help=f"seeds for {', '.join(sorted(SLOW))}")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, first-seed + 1, ... (a fresh set of seeds)")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ppo", nargs="*", default=[], metavar="KEY=VALUE", help="PPO settings for every ppo variant (tuning only)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "strategies")
    parser.add_argument("--from-results", type=Path, help="rewrite the report from an earlier results.json instead of searching")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_results:
        saved = json.loads(args.from_results.read_text())
        runs, wall, command = saved["runs"], saved.get("wall_seconds", float("nan")), saved.get("command", "")
        args.landscapes = list(dict.fromkeys(r["landscape"] for r in runs))
        args.variants = list(dict.fromkeys(r["variant"] for r in runs))
        args.budget = saved["budget"]
        args.workers = saved.get("workers", args.workers)
        args.seeds = max(sum(r["landscape"] == args.landscapes[0] and r["variant"] == v for r in runs) for v in args.variants)
        args.slow_seeds = min(sum(r["landscape"] == args.landscapes[0] and r["variant"] == v for r in runs) for v in args.variants)
    else:
        runs, wall = search_all(args)
        command = " ".join(sys.argv[1:])
    write_report(args, runs, wall, command)


def search_all(args) -> tuple[list[dict], float]:
    overrides = {k: json.loads(v) if v[:1] in "-0123456789.[{tfn" else v for k, v in (item.split("=", 1) for item in args.ppo)}
    jobs = [(name, variant, seed, args.budget, overrides) for name in args.landscapes for variant in args.variants
            for seed in range(args.first_seed, args.first_seed + (args.slow_seeds if variant in SLOW else args.seeds))]
    started = time.perf_counter()
    runs: list[dict] = []
    context = multiprocessing.get_context("fork")
    with context.Pool(args.workers) as pool:
        for i, run in enumerate(pool.imap_unordered(run_one, jobs, chunksize=4)):
            runs.append(run)
            if (i + 1) % 200 == 0:
                print(f"{i + 1}/{len(jobs)} searches, {time.perf_counter() - started:.0f} s", flush=True)
    return runs, time.perf_counter() - started


def write_report(args, runs: list[dict], wall: float, command: str) -> None:

    summary: dict[str, dict] = {}
    for name in args.landscapes:
        summary[name] = {v: summarise(sorted((r for r in runs if r["landscape"] == name and r["variant"] == v), key=lambda r: r["seed"]), args.budget)
                         for v in args.variants}
    report = [f"# Strategies compared ({time.strftime('%Y-%m-%d %H:%M')})", "",
              f"`python bench/strategies.py {command}`: budget {args.budget} evaluations, {args.seeds} seeds "
              f"({args.slow_seeds} for {', '.join(sorted(SLOW))}), {args.workers} processes, {wall / 60:.1f} min. "
              "Evaluations to reach the landscape's top 1%: median [q1, q3]; a search that never does counts as budget + 1.",
              f"Tuned on: {', '.join(TUNED_ON)}; every other landscape is held out.", ""]
    fmt = lambda v: f">{args.budget}" if v > args.budget else f"{v:g}"  # noqa: E731
    bars = []
    for name, by_variant in summary.items():
        land = landscape(name)
        report += [f"## {name}{' (tuned on)' if name in TUNED_ON else ' (held out)'}", "",
                   f"{land.source}; {len(land.values)} architectures, top 1% = metric >= {land.threshold:.4g}"
                   + (f"; initial {land.initial}" if land.initial else ""), "",
                   "| variant | evals to top 1%: median [q1, q3] | reached | final best (median) | p vs TPE (Mann-Whitney) | s per search |",
                   "|---|---|---|---|---|---|"]
        for variant, s in by_variant.items():
            p = mann_whitney(s["hits"], by_variant["tpe"]["hits"]) if "tpe" in by_variant and variant != "tpe" else float("nan")
            report.append(f"| {variant} | {fmt(s['median'])} [{fmt(s['q1'])}, {fmt(s['q3'])}] | {s['reached']}/{s['seeds']} | "
                          f"{s['final_best_median']:.4g} | {p:.2g} | {s['seconds_median']:.2f} |")
        report.append("")
        if {"ppo", "tpe", "random"} <= set(by_variant):
            ppo, tpe, rnd = by_variant["ppo"], by_variant["tpe"], by_variant["random"]
            row = {"landscape": name, "tuned": name in TUNED_ON, "ppo": ppo["median"], "tpe": tpe["median"], "random": rnd["median"],
                   "median_vs_tpe": ppo["median"] <= tpe["median"], "half_random": ppo["median"] <= 0.5 * rnd["median"],
                   "q3_vs_tpe": ppo["q3"] <= tpe["q3"], "p_vs_tpe": mann_whitney(ppo["hits"], tpe["hits"]),
                   "median_diff_vs_tpe_95": median_difference_interval(ppo["hits"], tpe["hits"])}
            for ablation in ("ppo-lr0", "ppo-uniform", "ppo-model-free"):
                if ablation in by_variant:
                    row[f"{ablation}_ratio"] = by_variant[ablation]["median"] / ppo["median"]
            bars.append(row)
    if bars:
        names = [v for v in ("random", "tpe", "ppo", "ppo-lr0", "ppo-uniform", "ppo-model-free") if v in args.variants]
        report += ["## Overview: evaluations to the top 1%, median [q1, q3]", "",
                   "| landscape | " + " | ".join(names) + " | p (PPO vs TPE) |", "|---|" + "---|" * (len(names) + 1)]
        for r in bars:
            cells = [f"{fmt(summary[r['landscape']][v]['median'])} [{fmt(summary[r['landscape']][v]['q1'])}, {fmt(summary[r['landscape']][v]['q3'])}]"
                     for v in names]
            report.append(f"| {r['landscape']}{' (tuned)' if r['tuned'] else ''} | " + " | ".join(cells) + f" | {r['p_vs_tpe']:.2g} |")
        report += ["", "## The bars", "",
                   "PPO - TPE: a bootstrap 95% interval of the difference of the medians (evaluations); "
                   "one that contains 0 means these seeds cannot tell the two medians apart.", "",
                   "| landscape | PPO median <= TPE | <= half random | PPO q3 <= TPE q3 | p vs TPE | PPO - TPE (95%) "
                   "| lr0 / PPO | uniform / PPO | model-free / PPO |",
                   "|---|---|---|---|---|---|---|---|---|"]
        yes = lambda b: "yes" if b else "**no**"  # noqa: E731
        for r in bars:
            low, high = r["median_diff_vs_tpe_95"]
            report.append(f"| {r['landscape']}{' (tuned)' if r['tuned'] else ''} | {yes(r['median_vs_tpe'])} ({r['ppo']:g} vs {r['tpe']:g}) | "
                          f"{yes(r['half_random'])} ({r['random']:g}) | {yes(r['q3_vs_tpe'])} | {r['p_vs_tpe']:.2g} | [{low:.1f}, {high:.1f}] | "
                          f"{r.get('ppo-lr0_ratio', float('nan')):.2f} | {r.get('ppo-uniform_ratio', float('nan')):.2f} | {r.get('ppo-model-free_ratio', float('nan')):.2f} |")
        learning = sum(r.get("ppo-lr0_ratio", 0) >= 1.15 for r in bars)
        report += ["", f"All three bars met on {sum(r['median_vs_tpe'] and r['half_random'] and r['q3_vs_tpe'] for r in bars)}/{len(bars)} landscapes; "
                   f"the learning ablation (lr 0) is >= 15% worse in the median on {learning}/{len(bars)}."]
    (args.out / "report.md").write_text("\n".join(report) + "\n")
    (args.out / "results.json").write_text(json.dumps({"budget": args.budget, "workers": args.workers, "wall_seconds": wall, "command": command, "summary": summary,
                                                       "bars": bars, "runs": runs}, indent=1))
    print("\n".join(report))
    print(f"wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
