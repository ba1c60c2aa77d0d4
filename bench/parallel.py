"""Candidates per minute with 1 and 2 local workers and with Ray, on this machine.

    python bench/parallel.py [--budget 16] [--strategy random] [--skip-ray]

Each setting runs the same default search (default task, space and trainer; a fresh sqlite store
in a temp dir) and reports its wall time, candidates per minute and speed-up over one worker.
Every setting with trainer.num_threads=1 must record the same candidates and metrics (checked).
Writes outputs/bench/parallel/{report.md,results.json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SETTINGS = [  # name, overrides
    ("1 worker, torch default threads", ["parallel.workers=1"]),
    ("1 worker, 1 thread", ["parallel.workers=1", "trainer.num_threads=1"]),
    ("2 workers (process pool), 1 thread each", ["parallel.workers=2", "trainer.num_threads=1"]),
    ("2 Ray tasks (local Ray), 1 thread each", ["parallel.workers=2", "parallel.backend=ray", "trainer.num_threads=1"]),
]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nas.config import CONF_DIR, register_configs, to_typed

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_typed(hydra_compose(config_name="config", overrides=overrides))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--strategy", default="random", help="random: batches of 8; ppo: rounds of ppo.population_size")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "parallel"))
    args = parser.parse_args()

    from nas.runner import run_search

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nas-bench-parallel-"))
    rows, histories = [], {}
    for name, overrides in SETTINGS:
        if args.skip_ray and "ray" in name.lower():
            continue
        config = compose([f"strategy={args.strategy}", f"budget={args.budget}", "progress=false",
                          f"tracking.uri=sqlite:///{work / 'mlflow.db'}", f"tracking.experiment_name={len(rows)}", *overrides])
        start = time.perf_counter()
        result = run_search(config, work / str(len(rows)))
        wall = time.perf_counter() - start
        n = len(result.history)
        histories[name] = [(e.key, e.value, e.info.get("metrics")) for e in result.history]
        rows.append({"setting": name, "overrides": overrides, "candidates": n, "wall_s": round(wall, 1),
                     "candidates_per_min": round(60 * n / wall, 2)})
        print(f"{name}: {n} candidates in {wall:.1f} s = {60 * n / wall:.2f}/min", flush=True)
    base = next(r for r in rows if r["setting"] == "1 worker, 1 thread")
    default = rows[0]
    for r in rows:
        r["speedup_vs_1_worker_1_thread"] = round(r["candidates_per_min"] / base["candidates_per_min"], 2)
        r["speedup_vs_default"] = round(r["candidates_per_min"] / default["candidates_per_min"], 2)
    one_thread = [h for name, h in histories.items() if "1 thread" in name]
    identical = all(h == one_thread[0] for h in one_thread)
    report = [f"# Parallel evaluation: {args.strategy}, budget {args.budget}, default task/space/trainer, "
              f"{os.cpu_count()} cores", "",
              "| setting | candidates | wall s | candidates/min | vs 1 worker 1 thread | vs default |", "|---|---|---|---|---|---|"]
    report += [f"| {r['setting']} | {r['candidates']} | {r['wall_s']} | {r['candidates_per_min']} | {r['speedup_vs_1_worker_1_thread']}x | "
               f"{r['speedup_vs_default']}x |" for r in rows]
    report += ["", f"Same candidates and metrics in every 1-thread setting: **{identical}**.",
               "Wall time includes start-up (the workers start and receive the task once)."]
    (out / "report.md").write_text("\n".join(report) + "\n")
    (out / "results.json").write_text(json.dumps({"rows": rows, "identical": identical}, indent=2))
    print("\n".join(report))
    if not identical:
        sys.exit("parallel settings recorded different candidates or metrics")


if __name__ == "__main__":
    main()
