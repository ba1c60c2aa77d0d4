"""Multirun on more than one process: Hydra's joblib (four jobs) and submitit_local (two) launchers, searches at once on
the default sqlite store (outputs/mlflow.db under the working directory).

The store is fresh, as a user's first `nas -m hydra/launcher=joblib ...` finds it: every job opens it (and creates
its tables and the experiment) at the same moment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import TINY
from .test_e2e import nas_cli, read_jsonl

pytestmark = pytest.mark.slow

LAUNCHERS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "seed=0,1,2,3"],
    # submitit_local starts every job at once, each in its own process; a hung job is killed after 5 minutes.
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "seed=0,1"],
}


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch):
    # MLflow 3 sends usage telemetry by default; a test's traffic stays on this machine.
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


def everything_logged(proc, sweep: Path) -> str:
    """The launcher's own output, each job's cli.log and submitit's per-job logs."""
    logs = [p for p in sweep.rglob("*") if p.is_file() and (p.name == "cli.log" or re.search(r"_log\.(out|err)$", p.name))]
    return "\n".join([proc.stdout, proc.stderr, *(p.read_text(errors="replace") for p in logs)])


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_searches_in_parallel_processes_share_the_default_sqlite_store(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    seeds = next(o for o in LAUNCHERS[launcher] if o.startswith("seed=")).removeprefix("seed=").split(",")
    jobs = [str(i) for i in range(len(seeds))]
    # One torch thread per job; no tracking.uri: the default store, sqlite:///outputs/mlflow.db under the working directory.
    proc = nas_cli("-m", *LAUNCHERS[launcher], *TINY, "trainer.num_threads=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)

    output = everything_logged(proc, sweep)
    assert "database is locked" not in output
    assert "Traceback" not in output, output[-5000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == jobs
    if launcher == "submitit_local":  # submitit's pickles and logs stay in the sweep folder, one folder per job
        assert len([p for p in (sweep / ".submitit").iterdir() if p.is_dir() and (p / f"{p.name}_0_log.out").is_file()]) == len(jobs)
        assert not (tmp_path / ".submitit").exists() and not (Path.cwd() / ".submitit").exists()

    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("nas").experiment_id])
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    children = {r.info.run_id: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == len(jobs) and all(p.info.status == "FINISHED" for p in parents.values())
    assert sorted(p.data.params["seed"] for p in parents.values()) == seeds

    seen = set()
    for job in jobs:
        records = read_jsonl(sweep / job / "candidates.jsonl")
        assert len(records) == 5
        seed = re.search(r"seed=(\d)", (sweep / job / ".hydra" / "overrides.yaml").read_text())[1]
        (parent_id,) = {children[r["mlflow_run_id"]].data.tags["mlflow.parentRunId"] for r in records}
        assert parents[parent_id].data.params["seed"] == seed
        for record in records:
            child = children[record["mlflow_run_id"]]
            assert child.info.status == ("FINISHED" if record["status"] == "ok" else "FAILED")
            assert child.data.tags["architecture_hash"] == record["architecture_hash"]
            if record["status"] == "ok":
                assert child.data.metrics["val_accuracy"] == pytest.approx(record["metrics"]["accuracy"])
        seen |= {r["mlflow_run_id"] for r in records}
    assert seen == set(children)  # every child run is some job's candidate: none lost, none extra

    # Searches really ran at the same time (otherwise this test shows nothing about concurrency). Not every job need
    # overlap another: on a loaded machine a worker can start late and run the last job alone.
    if launcher == "submitit_local":  # its own log's timestamps: the job processes' lifetimes, not skewed by import times
        spans = [submitit_lifetime(p) for p in (sweep / ".submitit").glob("*/*_0_log.out")]
    else:
        spans = [(p.info.start_time, p.info.end_time) for p in parents.values()]
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if b is not a), spans


def submitit_lifetime(log: Path) -> tuple[str, str]:
    """(start, end) of a submitit job from its log; the timestamps (2026-12-01 21:18:40,405) sort as strings."""
    text = log.read_text()
    start = re.search(r"submitit INFO \((.*?)\) - Starting with JobEnvironment", text)[1]
    end = re.search(r"submitit INFO \((.*?)\) - Exiting after successful completion", text)[1]
    return start, end
