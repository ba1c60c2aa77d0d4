"""Does a warm-started controller find a good architecture sooner on a new task?

Runs a source search (default: GPT-2 decoders on language modelling), then on a second task
(GPT-2 decoders on review sentiment) a cold search and a search warm-started from the source's
controller, for several seeds, all through the `nas` command. Reports, per seed, how many
evaluations each needed to reach the cold search's final best, and writes a markdown report.

    python bench/warm_start.py --seeds 0 1 2          # ~30 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRA: list[str] = []  # overrides for every search (--extra)


def nas(out: Path, *overrides: str) -> list[dict]:
    """Run one search (skipped when an earlier run of this script finished it) and return its candidates."""
    if not (out / "done").is_file():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nas", *overrides, *EXTRA, "progress=false", f"hydra.run.dir={out}",
                        f"tracking.uri=sqlite:///{out.parent / 'mlflow.db'}", "tracking.experiment_name=warm_start"],
                       cwd=ROOT, check=True, capture_output=True)
        (out / "done").write_text(f"{time.perf_counter() - start:.0f} s\n")
        print(f"{out.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]


def evaluations_to_reach(history: list[dict], target: float) -> int | None:
    for i, record in enumerate(history, 1):
        if record["status"] == "ok" and record["reward"] >= target - 1e-12:
            return i
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--source", nargs="*", default=["task=language_modeling", "search_space=gpt2_small"])
    parser.add_argument("--target", nargs="*", default=["task=text_classification", "search_space=gpt2_small"])
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every search, e.g. trainer.num_threads=1")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "warm_start")
    args = parser.parse_args()
    EXTRA.extend(args.extra)
    args.out.mkdir(parents=True, exist_ok=True)

    nas(args.out / "source", *args.source)
    rows = []
    for seed in args.seeds:
        cold = nas(args.out / f"cold-seed{seed}", *args.target, f"seed={seed}")
        warm = nas(args.out / f"warm-seed{seed}", *args.target, f"seed={seed}", f"ppo.init_from={args.out / 'source'}")
        target = max(r["reward"] for r in cold if r["status"] == "ok")
        rows.append({"seed": seed, "cold_best": target, "warm_best": max(r["reward"] for r in warm if r["status"] == "ok"),
                     "cold_evals_to_best": evaluations_to_reach(cold, target), "warm_evals_to_cold_best": evaluations_to_reach(warm, target),
                     "budget": len(cold)})

    lines = ["| seed | cold best | warm best | cold: evaluations to its best | warm: evaluations to the cold best |", "|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['cold_best']:.4f} | {r['warm_best']:.4f} | {r['cold_evals_to_best']} | "
              f"{r['warm_evals_to_cold_best'] if r['warm_evals_to_cold_best'] is not None else 'not reached in ' + str(r['budget'])} |" for r in rows]
    report = "\n".join([f"source: {' '.join(args.source)}; target: {' '.join(args.target)}", "", *lines])
    (args.out / "report.md").write_text(report + "\n")
    (args.out / "report.json").write_text(json.dumps(rows, indent=2))
    print(report)


if __name__ == "__main__":
    main()
