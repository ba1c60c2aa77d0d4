"""Rebuild the tabular benchmark: every architecture of a real search space, trained and measured.

The default table is the default search (BERT encoders on Rotten Tomatoes sentiment, the default
trainer: 100 AdamW steps of batch 32 on 2,000 reviews) scored on all 1,000 validation reviews,
with each model also evaluated after 25 and 50 steps (the multi-fidelity columns). Every valid
architecture of ``search_space=bert_small`` (486 under its 300k-parameter budget) is one row.

    python bench/tabular/build_table.py                       # one process
    python bench/tabular/build_table.py --shard 0 --shards 2 & python bench/tabular/build_table.py --shard 1 --shards 2
    python bench/tabular/build_table.py --merge               # shards -> bench/tabular/<name>.csv
    python bench/tabular/build_table.py --name bert_small_rotten_tomatoes_1000 --sample 60 trainer.max_steps=1000
        # weight sharing's ground truth (bench/weight_sharing.py): 60 architectures spread evenly over the ranks of the
        # 100-step table's accuracy, each trained 1,000 steps

Shards append a row per architecture as they go and skip rows already there, so an interrupted
build continues. Rows depend only on (seed, architecture), with one torch thread per process.
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

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_OVERRIDES = ["task.val_size=1000", "trainer.num_threads=1", "progress=false"]
CHECKPOINTS = (25, 50)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nas.config import CONF_DIR, register_configs, to_typed

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_typed(hydra_compose(config_name="config", overrides=overrides))


def spread(sample: int, table: Path = HERE / "bert_small_rotten_tomatoes.csv") -> set[str]:
    """``sample`` architectures (JSON keys) at evenly spaced ranks of ``table``'s accuracy, best and worst included."""
    sys.path.insert(0, str(HERE.parent))
    from landscapes import _parse  # a CSV cell as the number it holds

    rows = sorted((r for r in csv.DictReader(table.open()) if r["status"] == "ok"), key=lambda r: float(r["accuracy"]))
    dims = [k for k in rows[0] if k not in ("num_parameters", "accuracy", "macro_f1", "train_seconds", "eval_seconds", "status", "error")
            and "@" not in k]
    picks = {round(i) for i in np.linspace(0, len(rows) - 1, sample)}
    return {json.dumps({d: _parse(rows[i][d]) for d in dims}, sort_keys=True) for i in picks}


def build(name: str, overrides: list[str], shard: int, shards: int, sample: int | None = None,
          checkpoints: tuple[int, ...] = CHECKPOINTS) -> None:
    import torch

    from nas.models import build_model, parameter_count
    from nas.runner import CandidateObjective, build_search_space, candidate_seed, seed_everything
    from nas.tasks import make_task
    from nas.train import train_and_evaluate

    config = compose(overrides)
    seed_everything(config.seed)
    task = make_task(config.task)
    objective = CandidateObjective(task, config)
    space = build_search_space(config, task, objective.fixed)
    encodings = [e for e in space.all_encodings() if space.is_valid_encoding(e)]
    if sample:
        chosen = spread(sample)
        encodings = [e for e in encodings if json.dumps(space.decode(e), sort_keys=True) in chosen]
    mine = encodings[shard::shards]
    out = HERE / f"{name}.shard{shard}.csv"
    done = set()
    if out.exists():
        done = {row["architecture"] for row in csv.DictReader(out.open())}
    fields = ["architecture", *space.names, "num_parameters", *[f"accuracy@{s}" for s in checkpoints],
              "accuracy", "macro_f1", "train_seconds", "eval_seconds", "status", "error"]
    new = not out.exists()
    print(f"{len(encodings)} valid architectures of {space.size}; shard {shard}/{shards}: {len(mine)}, {len(done)} done", flush=True)
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fields)
        if new:
            writer.writeheader()
        for i, encoding in enumerate(mine):
            arch = space.decode(encoding)
            key = json.dumps(arch, sort_keys=True)
            if key in done:
                continue
            start = time.perf_counter()
            hf_config = objective.hf_config(arch)
            row = {"architecture": key, **arch}
            torch.manual_seed(candidate_seed(config.seed, arch))  # the seed a search gives this candidate
            try:
                row["num_parameters"] = parameter_count(hf_config, task.name)
                trained = train_and_evaluate(build_model(hf_config, task.name), task, config.trainer, config.seed, checkpoints=checkpoints)
                for step, metrics in trained.checkpoints:
                    row["accuracy" if step == config.trainer.max_steps else f"accuracy@{step}"] = metrics["accuracy"]
                row.update(macro_f1=trained.metrics["macro_f1"], train_seconds=round(trained.train_seconds, 3),
                           eval_seconds=round(trained.eval_seconds, 3), status="ok", error="")
            except Exception as exc:  # kept as a failed row: strategies see it as a failed candidate
                row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            writer.writerow(row)
            f.flush()
            print(f"[{shard}] {i + 1}/{len(mine)} {row.get('accuracy')} {time.perf_counter() - start:.1f}s {arch}", flush=True)


def merge(name: str) -> None:
    rows = []
    for shard in sorted(HERE.glob(f"{name}.shard*.csv")):
        rows += list(csv.DictReader(shard.open()))
    rows.sort(key=lambda r: r["architecture"])
    out = HERE / f"{name}.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, [k for k in rows[0] if k != "architecture"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "architecture"} for r in rows)
    print(f"{len(rows)} rows -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="bert_small_rotten_tomatoes")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--merge", action="store_true")
    parser.add_argument("--sample", type=int, help="only this many architectures, spread over the 100-step table's accuracy ranks")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=list(CHECKPOINTS),
                        help="steps at which each model is also evaluated (accuracy@<step> columns)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the space, task and trainer")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    sys.path.insert(0, str(ROOT))
    if args.merge:
        merge(args.name)
    else:
        build(args.name, [*DEFAULT_OVERRIDES, *args.overrides], args.shard, args.shards, args.sample, tuple(args.checkpoints))


if __name__ == "__main__":
    main()
