"""Screenshots of what a user sees in the MLflow UI after a search, taken in headless Chromium.

Runs a small multirun (two seeds of the smoke search) into a temporary sqlite store, serves it with a
real MLflow UI (``--host 127.0.0.1``), and saves PNGs of:

1. ``runs-table.png``: the experiment's runs table (two searches, their candidates folded under them);
2. ``parent-and-children.png``: one search's candidates beside their parent, filtered by
   ``tags.mlflow.parentRunId``, with the metric and architecture columns;
3. ``compare-chart.png``: the same candidates in the chart view (val_accuracy and the parameter count);
4. ``parent-run.png``: the parent run's page (its params and metrics).

    apt-get install chromium        # Debian; or any Chrome/Chromium on PATH
    .venv/bin/python scripts/mlflow_screenshots.py [--out outputs/screenshots] [--store sqlite:///outputs/mlflow.db]

``--store`` photographs an existing store instead of running the smoke searches (the newest search is
the one shown). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
BIN = Path(sys.executable).parent


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium on PATH: apt-get install chromium (or install Chrome)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smoke_searches(workdir: Path) -> str:
    """Two seeds of the smoke search, as a multirun, into a sqlite store under ``workdir``; returns its URI."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    command = [str(BIN / "nas"), "-m", "experiment=smoke", "budget=8", "seed=0,1", f"tracking.uri={uri}",
               f"hydra.sweep.dir={workdir / 'multirun'}"]
    subprocess.run(command, cwd=workdir, env=ENV, check=True, stdout=subprocess.DEVNULL)
    return uri


def serve(uri: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (workdir / "ui.log").open("w")
    proc = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the MLflow UI exited with {proc.returncode}: see {workdir / 'ui.log'}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop(proc)
    sys.exit("the MLflow UI was not healthy after 120 s")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the UI and its workers, nothing else
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def screenshot(chrome: str, url: str, path: Path, size: str = "1900,1000") -> None:
    # --virtual-time-budget lets the single-page app fetch and render before the picture is taken.
    subprocess.run([chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={size}",
                    "--virtual-time-budget=40000", f"--screenshot={path}", url],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "screenshots")
    parser.add_argument("--store", help="an existing tracking URI (default: run two smoke searches into a temporary store)")
    parser.add_argument("--experiment", default="nas")
    args = parser.parse_args()
    chrome = browser()
    args.out.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="nas-screenshots-") as tmp:
        workdir = Path(tmp)
        uri = args.store or smoke_searches(workdir)
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(args.experiment)
        if experiment is None:
            sys.exit(f"--experiment: no experiment '{args.experiment}' in {uri}")
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and not r.info.run_name.startswith("final-")]
        if not parents:
            sys.exit(f"no search run in the experiment '{args.experiment}' of {uri}")
        parent = parents[0].info.run_id  # the newest search
        proc, url = serve(uri, workdir)
        try:
            base = f"{url}/#/experiments/{experiment.experiment_id}"
            children = urllib.parse.urlencode({"searchFilter": f"tags.mlflow.parentRunId = '{parent}'", "orderByKey": "metrics.`val_accuracy`",
                                               "orderByAsc": "false"})
            screenshot(chrome, f"{base}/runs", args.out / "runs-table.png")
            screenshot(chrome, f"{base}/runs?{children}", args.out / "parent-and-children.png")
            screenshot(chrome, f"{base}/runs?{children}&compareRunsMode=CHART", args.out / "compare-chart.png")
            screenshot(chrome, f"{base}/runs/{parent}", args.out / "parent-run.png")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
