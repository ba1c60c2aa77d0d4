"""Does weight sharing rank architectures better than today's 100-step standalone training, at equal compute?

Ground truth: ``bench/tabular/bert_small_rotten_tomatoes_1000.csv``, 60 architectures of the default space spread
evenly over the ranks of the 100-step table, each trained standalone for 1,000 steps (10x a candidate's training)
and scored on 1,000 validation reviews (``python bench/tabular/build_table.py --name bert_small_rotten_tomatoes_1000
--sample 60 trainer.max_steps=1000``, about 12 min on one core).

Compared with it (Kendall tau and Spearman rho over those 60):
(a) the 100-step standalone accuracies (``bench/tabular/bert_small_rotten_tomatoes.csv``: what a default search sees);
(b) weight-sharing accuracies: one super-network (``nas/supernet.py``) trained with the sandwich rule (the largest
    and smallest architectures by parameter count and ``--random`` random ones per step) for as many subnet steps as
    a default search trains candidates (44 candidates x 100 steps = 4,400 subnet steps of batch 32), then every
    architecture scored with the inherited weights on the same 1,000 validation reviews.

Also timed in the same run: the super-network's training, and scoring every valid architecture of the space
(candidates scored per CPU-minute), against the 100-step table's own train + eval seconds per candidate.

    .venv/bin/python bench/weight_sharing.py [--subnet-steps 4400] [--random 2] [--seed 0] [--out outputs/bench/weight_sharing]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "tabular"))

TABLE_100 = ROOT / "bench" / "tabular" / "bert_small_rotten_tomatoes.csv"
TABLE_1000 = ROOT / "bench" / "tabular" / "bert_small_rotten_tomatoes_1000.csv"
NOT_DIMENSIONS = ("num_parameters", "accuracy", "macro_f1", "train_seconds", "eval_seconds", "status", "error")


def read_table(path: Path) -> dict[str, dict]:
    from landscapes import _parse

    rows = [r for r in csv.DictReader(path.open()) if r["status"] == "ok"]
    dims = [k for k in rows[0] if k not in NOT_DIMENSIONS and "@" not in k]
    checkpoints = [k for k in rows[0] if k.startswith("accuracy@")]
    return {json.dumps({d: _parse(r[d]) for d in dims}, sort_keys=True):
            {**{k: float(r[k]) for k in ("accuracy", "train_seconds", "eval_seconds", "num_parameters")},
             # early stopping: the best validation accuracy at any evaluated step (accuracy@<step> columns and the last)
             "best_accuracy": max(float(r[k]) for k in [*checkpoints, "accuracy"] if r[k] != "")}
            for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subnet-steps", type=int, default=4400, help="total subnet training steps (default: a default search's)")
    parser.add_argument("--random", type=int, default=2, help="random subnets per step, beside the largest and the smallest")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", type=Path, default=TABLE_1000, help="the ground-truth table")
    parser.add_argument("--rule", choices=("sandwich", "uniform"), default="sandwich",
                        help="subnets per step: the largest, the smallest and --random random ones, or 2 + --random random ones")
    parser.add_argument("--truth-column", choices=("accuracy", "best_accuracy"), default="accuracy",
                        help="the ground truth: the accuracy after the last step, or the best at any evaluated step (early stopping)")
    parser.add_argument("--supernet", type=Path, help="a search's supernet.pt to score with, instead of training one (default settings)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "weight_sharing")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    from scipy.stats import kendalltau, spearmanr

    from build_table import compose
    from nas.models import parameter_count
    from nas.runner import CandidateObjective, build_search_space
    from nas.supernet import SuperNetwork, extremes, sandwich, score_subnets, train_supernet, uniform
    from nas.tasks import make_task
    from nas.train import evaluate

    config = compose(["task.val_size=1000", "progress=false"])
    torch.set_num_threads(config.trainer.num_threads or torch.get_num_threads())
    task = make_task(config.task)
    objective = CandidateObjective(task, config)
    space = build_search_space(config, task, objective.fixed)
    truth, standalone = read_table(args.truth), read_table(TABLE_100)
    per_step = 2 + args.random
    steps = args.subnet_steps // per_step

    started = time.perf_counter()
    supernet = SuperNetwork(space, space_family(config), task.name, objective.fixed, seed=args.seed)
    if args.supernet:
        saved = torch.load(args.supernet, map_location="cpu", weights_only=True)
        supernet.model.load_state_dict(saved["model"])
        losses, steps, per_step = saved["losses"], saved["settings"]["supernet_steps"], 2 + saved["settings"]["random_subnets"]
    else:
        ends = extremes(space, lambda a: parameter_count(objective.hf_config(a), task.name))
        rng = np.random.default_rng(args.seed)
        batches = task.train_batches(config.trainer.batch_size, torch.Generator().manual_seed(args.seed))
        if args.rule == "sandwich":
            sample = lambda step: sandwich(space, rng, ends, args.random)  # noqa: E731
        else:  # uniform: every subnet of a step drawn at random, so the largest is trained no more than any other
            sample = lambda step: uniform(space, rng, per_step)  # noqa: E731
        losses = train_supernet(supernet, batches, steps, args.learning_rate, sample, seed=args.seed)
    train_seconds = time.perf_counter() - started

    valid = [space.decode(e) for e in space.all_encodings() if space.is_valid_encoding(e)]
    started = time.perf_counter()
    scores = score_subnets(supernet, valid, lambda net: evaluate(net, task, config.trainer.eval_batch_size))
    shared = {json.dumps(arch, sort_keys=True): metrics["accuracy"] for arch, metrics in zip(valid, scores)}
    score_seconds = time.perf_counter() - started

    keys = sorted(truth)
    gt = [truth[k][args.truth_column] for k in keys]
    rows = {"(a) 100-step standalone": [standalone[k]["accuracy"] for k in keys], "(b) weight sharing": [shared[k] for k in keys],
            "(c) minus the parameter count (no training)": [-truth[k]["num_parameters"] for k in keys]}
    fidelity = {name: {"kendall_tau": float(kendalltau(v, gt).statistic), "spearman_rho": float(spearmanr(v, gt).statistic)}
                for name, v in rows.items()}
    all_keys = sorted(shared)
    standalone_seconds = float(np.mean([standalone[k]["train_seconds"] + standalone[k]["eval_seconds"] for k in all_keys if k in standalone]))
    per_minute_shared = len(valid) / (score_seconds / 60)
    result = {
        "architectures_scored": len(valid), "ground_truth": len(keys), "supernet_steps": steps, "subnets_per_step": per_step,
        "supernet_train_seconds": train_seconds, "score_seconds": score_seconds, "first_loss": float(np.mean(losses[:20])),
        "last_loss": float(np.mean(losses[-20:])), "fidelity": fidelity,
        "tau_all_405_vs_100_step": float(kendalltau([shared[k] for k in all_keys if k in standalone],
                                                    [standalone[k]["accuracy"] for k in all_keys if k in standalone]).statistic),
        "candidates_per_minute_shared": per_minute_shared, "candidates_per_minute_standalone": 60 / standalone_seconds,
        "ws_accuracy_range": [min(shared.values()), max(shared.values())], "truth_accuracy_range": [min(gt), max(gt)],
    }
    report = [
        f"# Weight sharing against 100-step standalone training ({time.strftime('%Y-%m-%d %H:%M')})", "",
        f"`python bench/weight_sharing.py {' '.join(sys.argv[1:])}`: super-network "
        f"{'loaded from ' + str(args.supernet) + ', ' if args.supernet else ''}trained {steps} steps x {per_step} subnets "
        f"({steps * per_step} subnet steps of batch {config.trainer.batch_size}){'' if args.supernet else f' in {train_seconds:.0f} s'}; mean subnet loss "
        f"{result['first_loss']:.3f} (first 20 steps) -> {result['last_loss']:.3f} (last 20).", "",
        f"Ranking fidelity over the {len(keys)} ground-truth architectures of {args.truth.name} ({args.truth_column}"
        f"{': the best validation accuracy at any evaluated step' if args.truth_column == 'best_accuracy' else ' after the last step'}):", "",
        "| score | Kendall tau | Spearman rho |", "|---|---|---|",
        *[f"| {name} | {f['kendall_tau']:.3f} | {f['spearman_rho']:.3f} |" for name, f in fidelity.items()], "",
        f"Weight-sharing accuracies span {result['ws_accuracy_range'][0]:.3f}-{result['ws_accuracy_range'][1]:.3f} "
        f"(ground truth {min(gt):.3f}-{max(gt):.3f}); Kendall tau against the 100-step table over all {len(valid)} architectures: "
        f"{result['tau_all_405_vs_100_step']:.3f}.", "",
        f"Throughput: {len(valid)} architectures scored in {score_seconds:.1f} s = {per_minute_shared:.0f} per minute with shared "
        f"weights, against {60 / standalone_seconds:.1f} per minute trained standalone (100 steps + evaluation, the table's mean "
        f"{standalone_seconds:.2f} s): {per_minute_shared / (60 / standalone_seconds):.0f}x (the super-network's "
        f"{train_seconds:.0f} s of training not counted; with it, all {len(valid)} cost {train_seconds + score_seconds:.0f} s).",
    ]
    (args.out / "report.md").write_text("\n".join(report) + "\n")
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    print("\n".join(report))


def space_family(config) -> str:
    return config.search_space.family


if __name__ == "__main__":
    main()
