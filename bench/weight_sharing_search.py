"""End to end: weight-sharing searches (``evaluation=weight_sharing``) against today's default search, several seeds.

Each seed runs each mode's search for real through ``nas.runner.run_search`` (shipped Rotten Tomatoes task, default
space, PPO, a fresh sqlite store), one after the other on this machine: the default search, weight sharing scored
by the task's metric (``evaluation.score=metric``) and by minus the validation loss (its default). It reports:

- wall seconds of each search, and its compute in subnet training steps (batch 32): the default search trains
  44 candidates x 100 steps; the weight-sharing one trains the super-network (``supernet_steps`` x 4 subnets, the
  largest every step) and its ``top_k`` shortlist x 100 steps;
- the architecture each returns (best/), its accuracy as its search measured it (100 standalone steps, the search's
  seed), its accuracy and rank in the shipped 100-step table (all 405 architectures, data seed 0), and its 1,000-step
  ground truth (the mean of ``bert_small_rotten_tomatoes_1000.csv`` and ``..._seed1.csv``) when it is one of those 60;
- the fidelity of the weight-sharing scores the search produced: Kendall tau of its scores against the 100-step
  table and against the 1,000-step ground truth, over the architectures it scored;
- nas-final on each result, as a user runs it after a search (``trainer=final``: 1,000 steps on the whole training
  split, the search's seed): its validation and test accuracy, and each mode's test accuracy minus the default
  search's, paired by seed.

    .venv/bin/python bench/weight_sharing_search.py [--seeds 0 1 2] [--modes ...] [--no-final] [--out DIR] [override ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "tabular"))

TABLES = ROOT / "bench" / "tabular"


# mode -> its overrides: today's default search, and weight sharing scored by the task's metric or (its default) by minus
# the validation loss
MODES = {"standalone": [], "weight_sharing_metric": ["evaluation=weight_sharing", "evaluation.score=metric"],
         "weight_sharing": ["evaluation=weight_sharing"]}


def key(architecture: dict) -> str:
    return json.dumps(architecture, sort_keys=True)


def run(mode_overrides: list[str], seed: int, extra: list[str], workdir: Path, final_overrides: list[str] | None) -> dict:
    """One search as the nas command runs it (its folder with .hydra/config.yaml), then, unless ``final_overrides``
    is None, nas-final on its result as a user would run it (``trainer=final``: 1,000 steps, the search's seed)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from nas.config import CONF_DIR, FinalConfig, register_configs, to_typed
    from nas.final import run_final
    from nas.folders import RunDirectory
    from nas.runner import run_search

    def composed(name: str, overrides: list[str]):
        register_configs()
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name=name, overrides=overrides)

    run_dir = workdir / "run"
    raw = composed("config", [*mode_overrides, f"seed={seed}", "progress=false", f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
                              f"cache_dir={workdir.parent / 'cache'}", *extra])
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(raw, run_dir / ".hydra" / "config.yaml")
    config = to_typed(raw)
    started = time.perf_counter()
    result = run_search(config, run_dir)
    wall = time.perf_counter() - started
    folder = RunDirectory(run_dir)
    best = result.best
    final = {}
    if best and final_overrides is not None:
        started = time.perf_counter()
        metrics = run_final(to_typed(composed("final", [f"search={run_dir}", "trainer.progress_bar=false", *final_overrides]), FinalConfig),
                            workdir / "final").metrics
        final = {"final_val_accuracy": metrics["val_accuracy"], "final_test_accuracy": metrics.get("test_accuracy"),
                 "final_seconds": time.perf_counter() - started}
    return {"wall_seconds": wall, "architecture": best.architecture if best else None,
            "accuracy": best.info["metrics"]["accuracy"] if best else None, "candidates": len(folder.read_records()),
            "scores": [(r.architecture, r.reward) for r in folder.read_scores() if r.ok], **final,
            "subnet_steps": (config.evaluation.supernet_steps * (2 + config.evaluation.random_subnets)
                             + config.evaluation.top_k * config.trainer.max_steps) if config.evaluation.shares_weights
            else len(folder.read_records()) * config.trainer.max_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "weight_sharing_search")
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES))
    parser.add_argument("--no-final", action="store_true", help="skip nas-final on each search's result")
    parser.add_argument("--final", nargs="*", default=[], help="overrides for nas-final (default: its own, trainer=final)")
    parser.add_argument("overrides", nargs="*", help="applied to every search (e.g. trainer.num_threads=2)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from scipy.stats import kendalltau
    from weight_sharing import read_table

    table = read_table(TABLES / "bert_small_rotten_tomatoes.csv")
    truth_runs = [read_table(TABLES / f) for f in ("bert_small_rotten_tomatoes_1000.csv", "bert_small_rotten_tomatoes_1000_seed1.csv")]
    truth = {k: float(np.mean([t[k]["accuracy"] for t in truth_runs])) for k in truth_runs[0]}
    ranked = sorted(table, key=lambda k: -table[k]["accuracy"])
    rank = {k: i + 1 for i, k in enumerate(ranked)}

    modes = {m: MODES[m] for m in args.modes}
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-ws-bench-") as tmp:
        for seed in args.seeds:
            for mode, overrides in modes.items():
                out = run(overrides, seed, args.overrides, Path(tmp) / f"{mode}-{seed}", None if args.no_final else args.final)
                k = key(out["architecture"]) if out["architecture"] else None
                row = {"seed": seed, "mode": mode, "wall_seconds": out["wall_seconds"], "subnet_steps": out["subnet_steps"],
                       "architecture": out["architecture"], "search_accuracy": out["accuracy"],
                       "table_accuracy": table[k]["accuracy"] if k in table else None, "table_rank": rank.get(k),
                       "truth_1000": truth.get(k), "scored": len(out["scores"]),
                       **{f: out.get(f) for f in ("final_val_accuracy", "final_test_accuracy", "final_seconds")}}
                if out["scores"]:
                    scored = {key(a): v for a, v in out["scores"]}
                    both = [s for s in scored if s in table]
                    row["tau_vs_100_step"] = float(kendalltau([scored[s] for s in both], [table[s]["accuracy"] for s in both]).statistic)
                    gt = [s for s in scored if s in truth]
                    row["tau_vs_truth"] = float(kendalltau([scored[s] for s in gt], [truth[s] for s in gt]).statistic) if len(gt) >= 5 else None
                    row["truth_overlap"] = len(gt)
                rows.append(row)
                print(json.dumps(row), flush=True)
                (args.out / "results.json").write_text(json.dumps(rows, indent=1))  # after each search: nothing measured is lost

    def med(mode, field):
        values = [r[field] for r in rows if r["mode"] == mode and r[field] is not None]
        return (f"{np.median(values):.4g} [{min(values):.4g}, {max(values):.4g}]" if values else "-"), len(values)

    lines = [f"# Weight-sharing search against the default search ({time.strftime('%Y-%m-%d %H:%M')})", "",
             (f"`python bench/weight_sharing_search.py {' '.join(sys.argv[1:])}`: seeds {args.seeds}, both searches with "
              "their defaults on the shipped task. Figures: median [min, max] over the seeds."), "",
             "| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for field, label in [("wall_seconds", "wall seconds"), ("subnet_steps", "subnet training steps"),
                         ("search_accuracy", "result's accuracy, as its search measured it"),
                         ("table_accuracy", "result's accuracy in the 100-step table"), ("table_rank", "result's rank in the 100-step table (of 405)"),
                         ("truth_1000", "result's 1,000-step ground truth (when among the 60)"),
                         ("final_val_accuracy", "nas-final on the result: validation accuracy (1,000 steps, whole training split)"),
                         ("final_test_accuracy", "nas-final on the result: test accuracy"), ("final_seconds", "nas-final seconds")]:
        cells = [med(m, field) for m in modes]
        lines.append(f"| {label} | " + " | ".join(f"{c} (n={n})" for c, n in cells) + " |")
    lines += paired(rows, list(modes))
    ws = [r for r in rows if r["mode"] != "standalone"]
    lines += ["", "Fidelity of each weight-sharing search's own scores (Kendall tau over the architectures it scored):", "",
              "| seed | mode | scored | tau vs 100-step table | tau vs 1,000-step truth (overlap) |", "|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['mode']} | {r['scored']} | {r['tau_vs_100_step']:.3f} | "
              f"{'-' if r['tau_vs_truth'] is None else format(r['tau_vs_truth'], '.3f')} ({r['truth_overlap']}) |" for r in ws]
    lines += ["", "Per search:", "",
              "| seed | mode | wall s | architecture | search acc | table acc (rank) | 1,000-step | nas-final val / test |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['mode']} | {r['wall_seconds']:.0f} | {r['architecture']} | {r['search_accuracy']} | "
              f"{r['table_accuracy']} ({r['table_rank']}) | {r['truth_1000'] if r['truth_1000'] is not None else '-'} | "
              f"{r.get('final_val_accuracy') or '-'} / {r.get('final_test_accuracy') or '-'} |" for r in rows]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def paired(rows: list[dict], modes: list[str]) -> list[str]:
    """Each weight-sharing mode against the default search on the seeds both ran: nas-final's test accuracy and the
    wall time, paired by seed (Wilcoxon signed-rank), since a seed's data order and initialisations are shared."""
    from scipy.stats import wilcoxon

    by = {(r["mode"], r["seed"]): r for r in rows}
    out = ["", "Paired by seed against the default search (median of the differences [min, max]; Wilcoxon signed-rank p):", "",
           "| mode | seeds | nas-final test accuracy, minus the default's | p | wall time / the default's |", "|---|---|---|---|---|"]
    for mode in modes:
        seeds = sorted(s for m, s in by if m == mode and ("standalone", s) in by) if mode != "standalone" else []
        diffs = [by[mode, s]["final_test_accuracy"] - by["standalone", s]["final_test_accuracy"] for s in seeds
                 if by[mode, s].get("final_test_accuracy") is not None and by["standalone", s].get("final_test_accuracy") is not None]
        ratios = [by[mode, s]["wall_seconds"] / by["standalone", s]["wall_seconds"] for s in seeds]
        if diffs:
            p = wilcoxon(diffs).pvalue if any(diffs) else 1.0
            out.append(f"| {mode} | {len(diffs)} | {np.median(diffs):+.4f} [{min(diffs):+.4f}, {max(diffs):+.4f}] | {p:.3g} | "
                       f"{np.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}] |")
    return out


if __name__ == "__main__":
    main()
