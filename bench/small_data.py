"""Small labelled data: does pre-training each candidate change which architecture wins, or how good it is?

Runs the same PPO search on a small labelled subset (default: 200 Rotten Tomatoes snippets) twice,
through the `nas` command: candidates trained from scratch (`trainer=default`) and candidates
pre-trained with masked LM on the unlabelled snippets first (`trainer=pretrain_finetune`). Writes a
markdown report with each search's best architecture, best and median accuracy and wall time.

    python bench/small_data.py                    # ~15 min on 2 cores
    python bench/small_data.py --curve 0 200 1000 # one architecture: accuracy against pre-training steps
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(out: Path, overrides: list[str]) -> tuple[list[dict], float]:
    if not (out / "done").is_file():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nas", *overrides, "progress=false", f"hydra.run.dir={out}",
                        f"tracking.uri=sqlite:///{out.parent / 'mlflow.db'}", "tracking.experiment_name=small_data"],
                       cwd=ROOT, check=True, capture_output=True)
        (out / "done").write_text(str(time.perf_counter() - start))
    records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    return records, float((out / "done").read_text())


def curve(steps: list[int], train_size: int, seed: int, extra: list[str], out: Path) -> None:
    """The search space's initial architecture, evaluated after 0, 200, ... pre-training steps."""
    from hydra import compose, initialize_config_dir

    from nas.config import CONF_DIR, register_configs, to_typed
    from nas.pretrain import PretrainingCorpus, read_corpus
    from nas.runner import CandidateObjective
    from nas.tasks import make_task

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = to_typed(compose("config", [f"task.train_size={train_size}", f"seed={seed}", "trainer=pretrain_finetune", *extra]))
    texts = read_corpus(config.trainer.pretrain, config.task.name)
    task = make_task(config.task, tokenizer_texts=texts)  # one tokenizer for every point of the curve
    corpus = PretrainingCorpus(texts, task.preprocessor, task.config_fields()["max_position_embeddings"], config.trainer.pretrain)
    architecture = dict(config.search_space.initial)
    lines = [f"{architecture}, {train_size} labelled examples, fine-tuned {config.trainer.max_steps} steps at lr {config.trainer.learning_rate}", "",
             "| pre-training steps | accuracy | macro-F1 | pre-training time |", "|---|---|---|---|"]
    for n in steps:
        config.trainer.pretrain.steps = n
        outcome = CandidateObjective(task, config, corpus if n else None)(architecture)
        m = outcome.info["metrics"]
        lines.append(f"| {n} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {outcome.info.get('pretrain_seconds', 0):.0f} s |")
        print(lines[-1], flush=True)
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=200)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for both searches")
    parser.add_argument("--curve", type=int, nargs="*", help="instead: pre-training steps to evaluate the initial architecture at")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "small_data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.curve:
        curve(args.curve, args.train_size, args.seed, args.extra, args.out)
        return
    common = [f"task.train_size={args.train_size}", f"budget={args.budget}", f"seed={args.seed}", *args.extra]

    lines = [f"text_classification, {args.train_size} labelled examples, budget {args.budget}, seed {args.seed}", "",
             "| trainer | best accuracy | median accuracy | best architecture | parameters | wall time |", "|---|---|---|---|---|---|"]
    for trainer in ("default", "pretrain_finetune"):
        records, seconds = run(args.out / trainer, [f"trainer={trainer}", *common])
        ok = [r for r in records if r["status"] == "ok"]
        best = max(ok, key=lambda r: r["reward"])
        arch = ", ".join(f"{k}={v}" for k, v in best["architecture"].items())
        lines.append(f"| {trainer} | {best['metrics']['accuracy']:.3f} | {statistics.median(r['metrics']['accuracy'] for r in ok):.3f} | "
                     f"{arch} | {best['num_parameters']:,} | {seconds / 60:.1f} min |")
    report = "\n".join(lines)
    (args.out / "report.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
