"""Candidates per minute with 1, 2, 4 and 8 candidates training at once on one device (issue 18's GPU check).

    .venv/bin/python bench/concurrent_candidates.py [--device cuda] [--workers 1,2,4,8] [--budget 16] [--tiny] [--out DIR] [OVERRIDE ...]

Each setting runs the same default search (random strategy: batches of 8 proposals, so up to 8 candidates train at
once; default task, space and trainer; a fresh sqlite store in a temp dir) with ``parallel.workers=N`` and
``trainer.device=DEVICE``: N worker processes share the device, each training one candidate at a time. Reported per N:
the search's wall time, the candidates' phase (first candidate handed out to last recorded), candidates per minute
over that phase, the speed-up over N=1, and, on CUDA, each setting's peak GPU memory as nvidia-smi saw it.
Whether every N recorded the same candidates and metrics is checked: on CPU (``trainer.num_threads``, default 1 per
worker) they must be identical; on CUDA some kernels (embedding backward) are not deterministic, so it is reported.
``--tiny``: the smoke settings (4 steps, 64 examples), to check the script on a CPU in seconds.
Writes DIR/report.md and DIR/results.json (default DIR: outputs/bench/concurrent_candidates).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench.parallel import compose  # noqa: E402


class GpuMemoryWatch:
    """Peak memory in use on the GPUs while a setting runs, sampled with nvidia-smi (all processes: workers included)."""

    def __init__(self, period: float = 0.5):
        self.period, self.peak_mib, self._stop = period, None, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=10).stdout
                used = sum(int(x) for x in out.split())
                self.peak_mib = max(self.peak_mib or 0, used)
            except (OSError, ValueError, subprocess.SubprocessError):
                return  # no nvidia-smi: no figure
            self._stop.wait(self.period)

    def __enter__(self) -> GpuMemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_setting(workers: int, args: argparse.Namespace, work: Path) -> tuple[dict, list]:
    from nas import runner
    from nas.folders import RunDirectory
    from nas.search import run_loop

    overrides = ["strategy=random", f"budget={args.budget}", "progress=false", f"parallel.workers={workers}",
                 f"trainer.device={args.device}", f"trainer.num_threads={args.threads}", f"cache_dir={work / 'cache'}",
                 f"tracking.uri=sqlite:///{work / 'mlflow.db'}", f"tracking.experiment_name=workers-{workers}",
                 *(["experiment=smoke"] if args.tiny else []), *args.overrides]
    config = compose(overrides)
    phase: dict[str, float] = {}

    def timed_loop(*a, on_start=None, **k):  # the candidates' phase: first one handed out to the last one recorded
        def started(index, proposal):
            phase.setdefault("first", time.perf_counter())
            on_start(index, proposal)
        try:
            return run_loop(*a, on_start=started, **k)
        finally:
            phase["last"] = time.perf_counter()

    run_dir = RunDirectory(work / f"workers-{workers}")
    with GpuMemoryWatch() if args.device.startswith("cuda") else _nothing() as watch:
        start = time.perf_counter()
        runner.validate_config(config)
        try:
            result = runner.run_parts(runner.build_search(config, run_dir, loop=timed_loop))
        finally:
            run_dir.release()
        wall = time.perf_counter() - start
    n = len(result.history)
    seconds = phase["last"] - phase["first"]
    row = {"workers": workers, "candidates": n, "failed": sum(not e.ok for e in result.history), "wall_s": round(wall, 2),
           "candidates_phase_s": round(seconds, 2), "candidates_per_min": round(60 * n / seconds, 2),
           "gpu_peak_mib": getattr(watch, "peak_mib", None)}
    return row, [(e.key, e.status, e.value, e.info.get("metrics")) for e in result.history]


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the point), cuda:N or cpu")
    parser.add_argument("--workers", default="1,2,4,8", help="candidates at once, comma-separated")
    parser.add_argument("--budget", type=int, default=16, help="candidates per setting (two batches of 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker (trainer.num_threads)")
    parser.add_argument("--tiny", action="store_true", help="the smoke settings: a check of the script, not a measurement")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "concurrent_candidates"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every setting")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nas-bench-concurrent-"))
    import torch

    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else \
        f"CPU ({os.cpu_count()} cores)"
    rows, histories = [], {}
    for workers in (int(w) for w in args.workers.split(",")):
        row, histories[workers] = run_setting(workers, args, work)
        rows.append(row)
        print(json.dumps(row), flush=True)
    for row in rows:
        row["speedup_vs_1"] = round(row["candidates_per_min"] / rows[0]["candidates_per_min"], 2)
    identical = all(h == histories[rows[0]["workers"]] for h in histories.values())
    report = [f"# Candidates at once on one device: {device_name}", "",
              f"`{' '.join(['bench/concurrent_candidates.py', *(argv if argv is not None else sys.argv[1:])])}`: random strategy, "
              f"budget {args.budget}, {'smoke settings' if args.tiny else 'default task, space and trainer'}, "
              f"trainer.device={args.device}, {args.threads} CPU thread(s) per worker.", "",
              "| candidates at once | candidates | failed | wall s | candidates' phase s | candidates/min | vs 1 | GPU peak MiB |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    report += [f"| {r['workers']} | {r['candidates']} | {r['failed']} | {r['wall_s']} | {r['candidates_phase_s']} | {r['candidates_per_min']} | "
               f"{r['speedup_vs_1']}x | {r['gpu_peak_mib'] if r['gpu_peak_mib'] is not None else '-'} |" for r in rows]
    report += ["", f"Same candidates and metrics at every setting: **{identical}**" +
               (" (required on CPU)." if args.device == "cpu" else " (CUDA kernels such as embedding backward are not deterministic).")]
    (out / "report.md").write_text("\n".join(report) + "\n")
    results = {"device": device_name, "rows": rows, "identical": identical, "args": vars(args)}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n".join(report))
    if args.device == "cpu" and not identical:
        sys.exit("settings recorded different candidates or metrics on CPU")
    return results


if __name__ == "__main__":
    main()
