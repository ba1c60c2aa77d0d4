"""How long a bad setting takes to be reported: `nas ppo.gamma=1.5` from start to exit, against importing torch and
transformers alone (what the command would pay if configs needed them).

    python bench/cli_startup.py            # 7 runs each, warm file caches (one run first, not counted)
Writes outputs/bench/cli_startup/report.md. Timings depend on the machine: compare the ratios, on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "nas ppo.gamma=1.5 (a bad setting, reported)": [str(Path(sys.executable).parent / "nas"), "ppo.gamma=1.5"],
    "nas --cfg job (the composed config, printed)": [str(Path(sys.executable).parent / "nas"), "--cfg", "job"],
    "python -c 'import nas.config'": [sys.executable, "-c", "import nas.config"],
    "python -c 'import torch, transformers' (reference)": [sys.executable, "-c", "import torch, transformers"],
}


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "cli_startup")
    args = parser.parse_args()
    rows = []
    for name, command in COMMANDS.items():
        wall(command)  # warm the file caches
        times = [wall(command) for _ in range(args.runs)]
        rows.append((name, statistics.median(times), min(times), max(times)))
        print(f"{name}: median {rows[-1][1]:.2f} s (min {rows[-1][2]:.2f}, max {rows[-1][3]:.2f})", flush=True)
    reference = rows[-1][1]
    lines = [f"# CLI start-up ({datetime.now():%Y-%m-%d %H:%M})", "",
             f"`python bench/cli_startup.py --runs {args.runs}`: wall time from start to exit, median of {args.runs} runs after one "
             "warm-up run.", "", "| command | median | min | max | / import torch+transformers |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {m:.2f} s | {lo:.2f} s | {hi:.2f} s | {m / reference:.2f}x |" for n, m, lo, hi in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
