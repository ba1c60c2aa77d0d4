"""Parallel evaluation: a process pool or Ray trains a batch's candidates at once, with the sequential result."""

import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import nas
from nas.evaluators import InlineEvaluator, ParallelConfig, make_evaluator
from nas.candidate import CandidateObjective
from nas.runner import run_search
from nas.search import run_loop
from nas.space import SearchSpace
from nas.strategies import make_strategy
from nas.tasks import make_task

from .conftest import TINY, compose_config
from .synthetic import bowl  # worker processes import it

SPACE = {"a": list(range(5)), "b": list(range(5)), "c": list(range(3))}
TIMINGS = {"train_seconds", "eval_seconds", "pretrain_seconds", "seconds", "latency_ms"}


class RecordingEvaluator(InlineEvaluator):
    def __init__(self):
        self.batches = []

    def map(self, objective, architectures, started=None, state=None):
        self.batches.append(len(architectures))
        return super().map(objective, architectures, started, state)


def test_ppo_evaluates_each_round_of_its_population_as_one_batch():
    space = SearchSpace.from_dict(SPACE)
    strategy = make_strategy("ppo", space, seed=0, ppo={"iterations": 3, "population_size": 5, "horizon": 2})
    evaluator = RecordingEvaluator()
    result = run_loop(space, strategy, bowl, budget=None, evaluator=evaluator)
    assert evaluator.batches[0] == 10  # the start-up candidates (initial + random ones), together
    assert all(b <= 5 for b in evaluator.batches[1:]) and max(evaluator.batches[1:]) > 1
    assert sum(evaluator.batches) == len(result.history)
    assert len(strategy.iteration_stats) == 3


@pytest.mark.parametrize("strategy", nas.STRATEGIES)
def test_two_worker_processes_give_the_sequential_result(strategy):
    one = nas.search(SPACE, bowl, strategy=strategy, budget=20, seed=1)
    two = nas.search(SPACE, bowl, strategy=strategy, budget=20, seed=1, workers=2)
    assert [(e.architecture, e.value, e.iteration, e.episode, e.step) for e in two.history] == \
           [(e.architecture, e.value, e.iteration, e.episode, e.step) for e in one.history]


def test_parallel_settings_are_checked():
    with pytest.raises(ValueError, match="parallel.workers"):
        make_evaluator(ParallelConfig(workers=0), bowl, None)
    with pytest.raises(ValueError, match="parallel.backend"):
        make_evaluator(ParallelConfig(backend="dask"), bowl, None)


def _child_runs(uri, experiment):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    children = sorted((r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.run_name)
    return [(r.info.run_name, r.info.status, r.data.params, {k: v for k, v in r.data.metrics.items() if k not in TIMINGS},
             {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")}) for r in children]


def _records(run_dir):
    import json

    rows = [json.loads(line) for line in (run_dir / "candidates.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMINGS | {"mlflow_run_id"}} for r in rows]


@pytest.mark.slow
def test_a_search_on_two_workers_records_what_the_sequential_one_does(tmp_path, sqlite_uri):
    common = TINY + [f"tracking.uri={sqlite_uri}", "trainer.num_threads=1", "budget=6"]
    run_search(compose_config(common + ["tracking.experiment_name=one"]), tmp_path / "one")
    run_search(compose_config(common + ["tracking.experiment_name=two", "parallel.workers=2"]), tmp_path / "two")
    assert _records(tmp_path / "two") == _records(tmp_path / "one")
    assert _child_runs(sqlite_uri, "two") == _child_runs(sqlite_uri, "one")


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _listening(pids: set[int]) -> list[str]:
    """Local addresses the given processes listen on (TCP), from `ss -ltnp`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            found.append(line.split()[3])
    return found


@pytest.mark.slow
def test_ray_tasks_give_the_sequential_result_and_listen_on_loopback_only(tmp_path):
    import os

    config = compose_config(TINY + ["trainer.num_threads=1"])
    objective = CandidateObjective(make_task(config.task), config)
    architectures = [dict(config.search_space.initial, hidden_size=h) for h in (32, 64, 96)]
    expected = [outcome for outcome, _ in InlineEvaluator().map(objective, architectures)]
    evaluator = make_evaluator(ParallelConfig(workers=2, backend="ray"), objective, 1)
    import ray  # after the evaluator: it imports Ray in single-machine mode

    try:
        got = [outcome for outcome, _ in evaluator.map(objective, architectures)]
        ray_pids = _descendants(os.getpid())
        addresses = _listening(ray_pids)
    finally:
        evaluator.close()
    assert not ray.is_initialized()
    assert [(o.value, o.info["metrics"], o.info["losses"]) for o in got] == [(o.value, o.info["metrics"], o.info["losses"]) for o in expected]
    assert addresses, "Ray's processes listen on no TCP port?"
    assert all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in addresses), addresses
