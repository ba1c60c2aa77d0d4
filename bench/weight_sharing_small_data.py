"""Small labelled data with weight sharing: the super-network pre-trained once on unlabelled text, against trained from
scratch, at equal compute (issue 17).

200 labelled review snippets (``task.train_size=200``), validation 500. For each seed:

- **pre-trained**: the masked-LM super-network trained ``--pretrain-steps`` sandwich steps (batch 64) on the 10,000
  shipped review snippets without labels, its body moved into the classification super-network, then
  ``--steps`` sandwich steps on the labelled 200 (``nas.weight_sharing.pretrain_supernet``, what
  ``evaluation=weight_sharing trainer=pretrain_finetune`` runs);
- **from scratch**: the classification super-network alone, ``--steps`` + 2 x ``--pretrain-steps`` sandwich steps
  (batch 32): as many training examples through the super-network as the pre-trained one saw in both stages.

Then the same ``--architectures`` random valid architectures are scored with inherited weights by both super-networks
(validation accuracy), and the report gives the best, median and mean accuracy, the share above the majority class,
and each super-network's wall seconds.

    .venv/bin/python bench/weight_sharing_small_data.py [--seeds 0 1 2] [--steps 300] [--pretrain-steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "tabular"))


def seed_rows(seed: int, args: argparse.Namespace) -> list[dict]:
    """Both super-networks of one seed, each scored on the same random architectures."""
    import torch
    from build_table import compose

    from nas.candidate import CandidateObjective
    from nas.models import parameter_count
    from nas.pretrain import PretrainingCorpus, read_corpus
    from nas.runner import build_search_space
    from nas.strategies.base import sample_valid
    from nas.supernet import SuperNetwork, extremes, sandwich, score_subnets, train_supernet
    from nas.tasks import make_task
    from nas.train import evaluate
    from nas.weight_sharing import pretrain_supernet

    rows = []
    config = compose(["trainer=pretrain_finetune", f"trainer.pretrain.steps={args.pretrain_steps}", f"task.train_size={args.train_size}",
                      "task.val_size=500", f"seed={seed}", f"evaluation.supernet_steps={args.steps}", "cache_dir=null"])
    texts = read_corpus(config.trainer.pretrain, config.task.name)
    task = make_task(config.task, tokenizer_texts=texts)
    corpus = PretrainingCorpus(texts, task.preprocessor, task.config_fields()["max_position_embeddings"], config.trainer.pretrain)
    objective = CandidateObjective(task, config)
    space = build_search_space(config, task, objective.fixed)
    rng = np.random.default_rng(1000 + seed)
    architectures = [space.decode(sample_valid(space, rng)) for _ in range(args.architectures)]
    ends = extremes(space, lambda a: parameter_count(objective.hf_config(a), task.name), seed=seed)
    labels = task.splits["validation"]["labels"] if hasattr(task, "splits") else None
    majority = float(np.bincount(np.asarray(labels)).max() / len(labels)) if labels is not None else float("nan")
    e = config.evaluation

    def labelled(supernet, steps):
        sample_rng = np.random.default_rng(seed)
        batches = task.train_batches(config.trainer.batch_size, torch.Generator().manual_seed(seed))
        return train_supernet(supernet, batches, steps, e.learning_rate, lambda step: sandwich(space, sample_rng, ends, e.random_subnets),
                              seed=seed)

    for variant in ("pre-trained", "from scratch"):
        started = time.perf_counter()
        supernet = SuperNetwork(space, config.search_space.family, task.name, objective.fixed, seed=seed)
        if variant == "pre-trained":
            pretrain_supernet(supernet, corpus, config, ends)
            labelled(supernet, args.steps)
        else:
            labelled(supernet, args.steps + 2 * args.pretrain_steps)
        train_seconds = time.perf_counter() - started
        scores = [m["accuracy"] for m in score_subnets(supernet, architectures, lambda net: evaluate(net, task, config.trainer.eval_batch_size))]
        row = {"seed": seed, "variant": variant, "train_seconds": train_seconds, "best": max(scores), "median": float(np.median(scores)),
               "mean": float(np.mean(scores)), "above_majority": float(np.mean(np.array(scores) > majority + 1e-9)), "majority": majority}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300, help="sandwich steps on the labelled data")
    parser.add_argument("--pretrain-steps", type=int, default=200, help="sandwich steps of masked-LM pre-training (batch 64)")
    parser.add_argument("--architectures", type=int, default=100, help="random valid architectures scored by both")
    parser.add_argument("--train-size", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "weight_sharing_small_data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rows = [row for seed in args.seeds for row in seed_rows(seed, args)]
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    lines = [f"# Small labelled data, weight sharing: pre-trained once vs from scratch ({time.strftime('%Y-%m-%d %H:%M')})", "",
             (f"`python bench/weight_sharing_small_data.py {' '.join(sys.argv[1:])}`: {args.train_size} labelled snippets, validation 500; "
              f"pre-trained: {args.pretrain_steps} masked-LM sandwich steps (batch 64) then {args.steps} labelled ones (batch 32); from "
              f"scratch: {args.steps + 2 * args.pretrain_steps} labelled ones. The same {args.architectures} random architectures scored "
              "with inherited weights (validation accuracy)."), "",
             "| seed | super-network | train s | best | median | mean | share above the majority class |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['variant']} | {r['train_seconds']:.0f} | {r['best']:.3f} | {r['median']:.3f} | {r['mean']:.3f} | "
              f"{r['above_majority']:.2f} (majority {r['majority']:.3f}) |" for r in rows]
    for variant in ("pre-trained", "from scratch"):
        mine = [r for r in rows if r["variant"] == variant]
        lines.append(f"\n{variant}: median over seeds of the median subnet accuracy {np.median([r['median'] for r in mine]):.3f}, "
                     f"of the best {np.median([r['best'] for r in mine]):.3f}, train {np.median([r['train_seconds'] for r in mine]):.0f} s.")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
