"""Faults during a search. A candidate that raises, whose loss turns NaN or that runs out of memory is
recorded as failed and the search goes on; a tracking server that goes away stops the search cleanly
and a resume finishes it; SIGINT / SIGTERM end it cleanly and a resume continues it.

Each test injects a real fault into real components: a real model whose loss overflows, a real
memory limit, a real `mlflow server` stopped by its PID, a real signal to the `nas` command.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import nas
from nas.folders import RunDirectory
from nas.runner import run_search

from .conftest import TINY, compose_config, run_nas
from .test_tracking_server import start_mlflow_server, stop_mlflow_server

pytestmark = pytest.mark.slow

# bert_small with every dimension but the one under test fixed to one choice: a space of two candidates.
ONE_CHOICE = ["search_space.dimensions.num_hidden_layers=[1]", "search_space.dimensions.hidden_size=[32]",
              "search_space.dimensions.num_attention_heads=[2]", "search_space.dimensions.hidden_act=[gelu]",
              "search_space.dimensions.hidden_dropout_prob=[0.1]", "search_space.dimensions.intermediate_size=[64]",
              "search_space.initial=null", "strategy=random", "budget=2"]


def runs_by_id(uri: str, experiment: str = "nas") -> dict[str, object]:
    client = MlflowClient(uri)
    return {r.info.run_id: r for r in client.search_runs([client.get_experiment_by_name(experiment).experiment_id])}


def assert_failed_and_recorded(run_dir: Path, uri: str, error_type: str, message: str) -> None:
    """One candidate failed with ``error_type``, the other trained: in candidates.jsonl and in its MLflow run."""
    records = RunDirectory(run_dir).read_records()
    assert sorted(r.status for r in records) == ["failed", "ok"], records
    failed = next(r for r in records if r.status == "failed")
    assert failed.error_type == error_type and message in failed.error and failed.reward is None
    run = runs_by_id(uri)[failed.mlflow_run_id]
    assert run.info.status == "FAILED"
    assert run.data.tags["status"] == "failed" and run.data.tags["error_type"] == error_type and message in run.data.tags["error"]


def test_a_candidate_whose_loss_turns_nan_fails_and_the_search_goes_on(tmp_path, sqlite_uri):
    # initializer_range=1e30 draws weights so large that the first forward pass overflows: a real non-finite loss.
    config = compose_config([*TINY, *ONE_CHOICE, "+search_space.dimensions.initializer_range=[0.02,1e30]", f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    assert len(result.history) == 2 and result.best.architecture["initializer_range"] == 0.02
    assert_failed_and_recorded(tmp_path, sqlite_uri, "FloatingPointError", "training loss became nan at step 1")


def test_a_candidate_that_raises_fails_and_the_search_goes_on(tmp_path, sqlite_uri):
    # 8 position embeddings build, but the first forward pass of a 48-token batch raises.
    config = compose_config([*TINY, *ONE_CHOICE, "+search_space.dimensions.max_position_embeddings=[64,8]", f"tracking.uri={sqlite_uri}"])
    run_search(config, tmp_path)
    assert_failed_and_recorded(tmp_path, sqlite_uri, "RuntimeError", "The expanded size of the tensor")


def test_a_candidate_that_runs_out_of_memory_fails_and_the_search_goes_on(tmp_path, sqlite_uri):
    # A feed-forward layer of 20M units needs ~10 GB; each worker may take 1 GB more than it holds at start.
    config = compose_config([*TINY, *ONE_CHOICE, "search_space.dimensions.intermediate_size=[64,20000000]", "search_space.max_params=null",
                             "parallel.memory_limit_mb=1000", "trainer.num_threads=1", f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    assert result.best.architecture["intermediate_size"] == 64
    assert_failed_and_recorded(tmp_path, sqlite_uri, "OutOfMemoryError", "memory")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_memory_limit_caps_each_workers_gpu_memory_and_an_oversized_candidate_fails_alone(tmp_path, sqlite_uri):
    # Two workers share the GPU, 200 MB each: the 20M-unit feed-forward layer (gigabytes) fails, the small one trains.
    config = compose_config([*TINY, *ONE_CHOICE, "search_space.dimensions.intermediate_size=[64,20000000]", "search_space.max_params=null",
                             "parallel.workers=2", "parallel.memory_limit_mb=200", "trainer.device=cuda", f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    assert result.best.architecture["intermediate_size"] == 64
    assert_failed_and_recorded(tmp_path, sqlite_uri, "OutOfMemoryError", "memory")


def test_a_failed_candidate_gives_ppo_the_penalty_reward():
    space = {"a": list(range(6)), "b": list(range(4))}

    def objective(arch):
        if arch["a"] == 0:
            raise RuntimeError("this candidate always fails")
        return arch["a"] + arch["b"] / 10

    result = nas.search(space, objective, strategy="ppo", budget=20, seed=0, ppo={"failure_reward": -7.5, "population_size": 4, "horizon": 2})
    failed_iterations = {e.iteration for e in result.history if not e.ok and e.step > 0}
    assert failed_iterations, "no episode stepped onto the failing architecture"
    for stats in result.iterations:
        assert (stats["ppo/reward_min"] == -7.5) == (stats["iteration"] in failed_iterations)


def test_a_worker_that_dies_fails_its_candidates_and_the_search_goes_on():
    result = nas.search({"x": [0, 1, 2, 3, 4, 5]}, exit_on_three, strategy="random", budget=6, seed=0, workers=2)
    died = [e for e in result.history if not e.ok]
    assert {e.architecture["x"] for e in died} >= {3} and all(e.error.startswith("WorkerDied") for e in died)
    assert len(result.history) == 6 and result.best_value == 5


def exit_on_three(arch):  # module level: the process pool pickles it
    if arch["x"] == 3:
        os._exit(9)  # as the kernel's OOM killer would end it
    return arch["x"]


def when_recorded(run_dir: Path, count: int, action, timeout: float = 300) -> threading.Thread:
    """Run ``action`` in a thread once ``count`` candidates are in candidates.jsonl."""

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (run_dir / "candidates.jsonl").is_file() and len(RunDirectory(run_dir).read_records()) >= count:
                action()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


SEARCH = [o for o in TINY if not o.startswith(("budget=", "ppo.iterations="))] + ["budget=8", "ppo.iterations=6"]


def assert_complete_after_resume(run_dir: Path, uri: str, parent_id: str, budget: int = 8) -> None:
    """``budget`` distinct candidates, each with a finished child run holding its record; the parent run finished."""
    records = RunDirectory(run_dir).read_records()
    assert [r.index for r in records] == list(range(budget)) and len({r.architecture_hash for r in records}) == budget
    runs = runs_by_id(uri)
    assert runs[parent_id].info.status == "FINISHED"
    assert [r for r in runs.values() if "mlflow.parentRunId" not in r.data.tags] == [runs[parent_id]]  # continued, not a new one
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]
    for record in records:
        run = runs[record.mlflow_run_id]
        assert run.info.status == ("FINISHED" if record.status == "ok" else "FAILED")
        if record.reward is not None:
            assert run.data.metrics["reward"] == pytest.approx(record.reward)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler (KeyboardInterrupt), whatever an earlier test in this worker process left installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_search_ends_cleanly_and_resumes(tmp_path, sqlite_uri, monkeypatch, capsys, signum, default_sigint):
    run_dir = tmp_path / "run"
    when_recorded(run_dir, 3, lambda: os.kill(os.getpid(), signum))
    assert run_nas(monkeypatch, *SEARCH, f"tracking.uri={sqlite_uri}", f"hydra.run.dir={run_dir}") == 128 + signum
    err = capsys.readouterr().err
    assert f"interrupted by {signal.Signals(signum).name}" in err and "Traceback" not in err

    recorded = RunDirectory(run_dir).read_records()
    assert 3 <= len(recorded) < 8
    parent_id = json.loads((run_dir / "search.json").read_text())["parent_run_id"]
    runs = runs_by_id(sqlite_uri)
    assert runs[parent_id].info.status == "KILLED"
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]  # the candidate cut short is KILLED
    assert (run_dir / "best" / "config.json").is_file()

    assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0
    assert RunDirectory(run_dir).read_records()[: len(recorded)] == recorded  # kept as it was
    assert_complete_after_resume(run_dir, sqlite_uri, parent_id)


def test_a_tracking_server_that_goes_away_stops_the_search_and_a_resume_finishes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # what nas sets for a server; restored after the test
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    server = start_mlflow_server(tmp_path / "server")
    run_dir = tmp_path / "run"
    try:
        when_recorded(run_dir, 6, lambda: stop_mlflow_server(server))  # after PPO's first iteration (at most 5 candidates)
        start = time.monotonic()
        longer = [o for o in SEARCH if not o.startswith(("budget=", "ppo.iterations="))] + ["budget=12", "ppo.iterations=10"]
        status = run_nas(monkeypatch, *longer, "tracking=server", f"tracking.uri={server.url}", "tracking.retry_seconds=4",
                          f"hydra.run.dir={run_dir}")
        stopped_after = time.monotonic() - start
        err = capsys.readouterr().err
        assert status == 1, err
        assert f"the MLflow store at {server.url} did not answer" in err and f"nas resume={run_dir}" in err and "Traceback" not in err
        recorded = RunDirectory(run_dir).read_records()
        assert 6 <= len(recorded) < 12
        assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["controller"]["iterations"] >= 1  # saved before the stop
        assert stopped_after < 240, "the search waited far longer than tracking.retry_seconds"

        server = start_mlflow_server(tmp_path / "server", port=server.port)  # the same store, back again
        assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0, capsys.readouterr().err
        assert RunDirectory(run_dir).read_records()[: len(recorded)] == recorded
        parent_id = json.loads((run_dir / "search.json").read_text())["parent_run_id"]
        assert_complete_after_resume(run_dir, server.url, parent_id, budget=12)
    finally:
        stop_mlflow_server(server)
