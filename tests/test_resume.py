"""Resume: a search killed at any point (kill -9) continues where it stopped and ends as an uninterrupted one."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nas.config import saved_config
from nas.folders import RunDirectory
from nas.runner import ResumeError, run_search
from nas.search import ReplayError

from .conftest import TINY, compose_config, kill_when, run_nas

pytestmark = pytest.mark.slow

# Long enough to be killed mid-way: 10 candidates over 5 PPO iterations of 2 episodes.
SEARCH = [o for o in TINY if not o.startswith(("budget=", "ppo.iterations="))] + ["budget=10", "ppo.iterations=6"]
SAME = ("architecture_hash", "status", "reward", "iteration", "episode", "step", "metrics", "num_parameters")


def history(run_dir: Path) -> list[tuple]:
    return [tuple(json.dumps(getattr(r, k), sort_keys=True) for k in SAME) for r in RunDirectory(run_dir).read_records()]


def child_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_a_search_killed_mid_way_resumes_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reference = tmp_path / "reference"
    run_search(compose_config(SEARCH + [f"tracking.uri={uri}", "tracking.experiment_name=reference"]), reference)

    run_dir = tmp_path / "run"
    args = [*SEARCH, f"tracking.uri={uri}", "tracking.experiment_name=killed", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when(proc, lambda: len(RunDirectory(run_dir).read_records()) >= 3, poll=0.05)  # once 3 candidates are recorded
    recorded = len(RunDirectory(run_dir).read_records())
    assert 3 <= recorded < 10
    parent_id = json.loads((run_dir / "search.json").read_text())["parent_run_id"]
    assert MlflowClient(uri).get_run(parent_id).info.status == "RUNNING"  # what a kill -9 leaves

    assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0

    assert history(run_dir) == history(reference)  # nothing lost, nothing trained twice, the same search
    client = MlflowClient(uri)
    assert client.get_run(parent_id).info.status == "FINISHED"  # the same parent run, continued
    parents = [r for r in client.search_runs([client.get_experiment_by_name("killed").experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_id for p in parents] == [parent_id]
    children = child_runs(uri, "killed")
    statuses = sorted(r.info.status for r in children)
    assert "RUNNING" not in statuses
    assert statuses.count("KILLED") <= 1  # the candidate that was training when the kill came, if any
    done = {r.info.run_id: r for r in children if r.info.status in ("FINISHED", "FAILED")}
    records = RunDirectory(run_dir).read_records()
    assert sorted(done) == sorted(r.mlflow_run_id for r in records)
    for record in records:  # each recorded candidate's run has its metrics, even those the kill cut short
        run = done[record.mlflow_run_id]
        assert run.data.metrics["reward"] == pytest.approx(record.reward) if record.reward is not None else True
        assert run.data.tags["status"] == record.status
    assert len(client.get_metric_history(parent_id, "best_reward")) == 10


def test_a_finished_search_resumes_to_the_same_result_without_training(tmp_path, sqlite_uri):
    config = compose_config(TINY + [f"tracking.uri={sqlite_uri}"])
    run_dir = tmp_path / "run"
    first = run_search(config, run_dir)
    (run_dir / ".hydra").mkdir()
    from omegaconf import OmegaConf

    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))
    again = run_search(saved_config(str(run_dir)), run_dir)
    assert [(e.key, e.value) for e in again.history] == [(e.key, e.value) for e in first.history]
    assert all(e.seconds == f.seconds for e, f in zip(again.history, first.history, strict=True))  # replayed, not retrained
    assert len(RunDirectory(run_dir).read_records()) == len(first.history)
    assert len(child_runs(sqlite_uri, "nas")) == len(first.history)


def test_a_resume_that_does_not_replay_the_record_stops_before_training(tmp_path, sqlite_uri):
    config = compose_config(TINY + [f"tracking.uri={sqlite_uri}"])
    run_dir = tmp_path / "run"
    run_search(config, run_dir)
    rows = RunDirectory(run_dir).read_records()
    rows[1].architecture_hash = "0123456789ab"  # not what this config proposes second
    (run_dir / "candidates.jsonl").write_text("".join(r.to_json() + "\n" for r in rows))
    config.resume = str(run_dir)
    with pytest.raises(ReplayError, match="candidate 1"):
        run_search(config, run_dir)


def test_a_torn_last_line_is_dropped(tmp_path):
    path = tmp_path / "candidates.jsonl"
    whole = '{"index": 0, "architecture": {"n": 1}, "architecture_hash": "h0", "status": "ok", "reward": 0.5}\n'
    path.write_text(whole + '{"index": 1, "archi')
    assert [(r.index, r.reward, r.architecture) for r in RunDirectory(tmp_path).read_records()] == [(0, 0.5, {"n": 1})]
    assert path.read_text() == whole


def test_a_line_that_is_not_a_record_is_named(tmp_path):
    (tmp_path / "candidates.jsonl").write_text('{"index": 0}\n{"index": 1}\n')
    with pytest.raises(ResumeError, match="line 1 is not a candidate record.*architecture"):
        RunDirectory(tmp_path).read_records()


@pytest.mark.parametrize("make", ["missing", "not_a_search", "foreign_state", "foreign_checkpoint"])
def test_bad_resume_targets_are_named(tmp_path, sqlite_uri, make):
    run_dir = tmp_path / "run"
    config = compose_config(TINY + [f"tracking.uri={sqlite_uri}"])
    if make != "missing":
        run_dir.mkdir()
    if make == "foreign_state":
        (run_dir / "search.json").write_text('{"something": "else"}')
    if make == "foreign_checkpoint":
        run_search(config, run_dir)
        import torch

        torch.save({"format": "nas-search-checkpoint/1", "controller": {"iterations": 1, "policy": {}, "value": {}}}, run_dir / "checkpoint.pt")
        rows = RunDirectory(run_dir).read_records()
        (run_dir / "candidates.jsonl").write_text("".join(r.to_json() + "\n" for r in rows))
    config.resume = str(run_dir)
    expected = {"missing": "is not a directory", "not_a_search": "has no search.json", "foreign_state": "format tag",
                "foreign_checkpoint": "did not reproduce"}[make]
    with pytest.raises(ResumeError, match=expected):
        run_search(config, run_dir)


def test_resume_refuses_other_overrides(tmp_path):
    with pytest.raises(ValueError, match="drop the other overrides: budget=3"):
        saved_config(str(tmp_path), ["budget=3"])
    with pytest.raises(ValueError, match="config.yaml' does not exist"):
        saved_config(str(tmp_path))
