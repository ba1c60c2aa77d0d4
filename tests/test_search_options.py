"""Search options through the real runner: strategies from config, multi-fidelity, multi-objective rewards."""

import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nas.runner import run_search
from tests.conftest import TINY, compose_config


def records(path):
    return [json.loads(line) for line in (path / "candidates.jsonl").read_text().splitlines()]


def children(uri):
    client = MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("nas").experiment_id], "tags.status != ''")


@pytest.mark.parametrize("strategy", ["evolution", "tpe"])  # ppo and random: tests/test_e2e.py
def test_every_strategy_runs_from_the_command_line_config(tmp_path, sqlite_uri, strategy):
    own = {"evolution": ["evolution.population_size=2", "evolution.sample_size=2"], "tpe": ["tpe.n_startup_trials=2"]}[strategy]
    config = compose_config([*TINY, "budget=4", f"strategy={strategy}", *own, f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    assert len(result.history) == 4 and len({e.key for e in result.history}) == 4
    assert result.history[0].architecture == config.search_space.initial  # every strategy starts from the initial architecture
    client, runs = children(sqlite_uri)
    parent = [r for r in client.search_runs([client.get_experiment_by_name("nas").experiment_id]) if r.data.tags.get("strategy")]
    params = parent[0].data.params
    assert parent[0].data.tags["strategy"] == strategy and all(params[k] == "2" for k in (o.split("=")[0] for o in own))
    assert {k.split(".")[0] for k in params} & {"ppo", "evolution", "tpe"} == {strategy}  # its settings, no other strategy's


def test_multi_fidelity_stops_unpromising_candidates_and_logs_each_fidelity(tmp_path, sqlite_uri):
    # Evolution with a population of 2: the first batch is 2 random architectures, then one mutant at a time.
    config = compose_config([*TINY, "budget=8", "strategy=evolution", "evolution.population_size=2", "evolution.sample_size=1",
                             "trainer.max_steps=6", "fidelity.steps=[2,4]", "fidelity.min_peers=1", "fidelity.promote=0.5",
                             f"tracking.uri={sqlite_uri}"])
    run_search(config, tmp_path)
    rows = records(tmp_path)
    steps = [r["steps"] for r in rows]
    assert steps[:2] == [6, 6]  # the first batch has nobody to compare with: trained fully
    assert 2 in steps and 6 in steps, steps  # some stopped at the first hurdle, some went all the way
    for r in rows:
        reached = [c[0] for c in r["checkpoints"]]
        assert reached == [2, 4, 6][: reached.index(r["steps"]) + 1]
        assert r["reward"] == r["checkpoints"][-1][1]["accuracy"]  # the reward is the highest fidelity's metric
    # Past the first hurdle exactly when the reward there reached the median of the earlier batches' candidates.
    first = [r["checkpoints"][0][1]["accuracy"] for r in rows]
    for i, r in enumerate(rows[2:], 2):
        assert (r["steps"] > 2) == (first[i] >= np.quantile(first[:i], 0.5)), (i, first)
    client, runs = children(sqlite_uri)
    full = next(run for run in runs if run.data.metrics["steps"] == 6)
    history = client.get_metric_history(full.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [2, 4, 6]


def test_multi_fidelity_that_promotes_everyone_changes_nothing(tmp_path):
    # The checkpoints evaluate the same run on the way: metrics at the last step equal a plain search's.
    plain = run_search(compose_config([*TINY, "budget=3", "strategy=random", f"tracking.uri=sqlite:///{tmp_path / 'a.db'}"]), tmp_path / "a")
    hurdles = run_search(compose_config([*TINY, "budget=3", "strategy=random", "fidelity.steps=[2]", "fidelity.promote=1.0",
                                         f"tracking.uri=sqlite:///{tmp_path / 'b.db'}"]), tmp_path / "b")
    assert [e.value for e in plain.history] == [e.value for e in hurdles.history]


def test_a_soft_parameter_budget_lowers_the_reward_of_larger_models(tmp_path, sqlite_uri):
    target = 100_000
    config = compose_config([*TINY, "budget=6", "strategy=random", "objective.cost=num_parameters", f"objective.target={target}",
                             "objective.mode=soft", "objective.weight=0.1", f"tracking.uri={sqlite_uri}"])
    run_search(config, tmp_path)
    rows = records(tmp_path)
    assert any(r["num_parameters"] > target for r in rows) and any(r["num_parameters"] <= target for r in rows)
    for r in rows:
        penalty = 0.1 * max(0.0, math.log(r["num_parameters"] / target))
        assert r["reward"] == pytest.approx(r["metrics"]["accuracy"] - penalty)
        assert r["metric_reward"] == r["metrics"]["accuracy"]
    # The parent run gets the Pareto front (table and plot) of all candidates.
    client = MlflowClient(sqlite_uri)
    parent = next(r for r in client.search_runs([client.get_experiment_by_name("nas").experiment_id]) if r.data.tags.get("strategy"))
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "plots")} >= {"plots/pareto_num_parameters.csv", "plots/pareto_num_parameters.png"}
    front = (tmp_path / "plots" / "pareto_num_parameters.csv").read_text().splitlines()
    assert len(front) == len(rows) + 1 and "on_front" in front[0]


def test_a_hard_latency_budget_fails_slow_candidates_without_training_them(tmp_path, sqlite_uri):
    config = compose_config([*TINY, "budget=6", "strategy=random", "objective.cost=latency_ms", "objective.target=1e-6",
                             "objective.mode=hard", f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    assert all(not e.ok for e in result.history)  # nothing runs in a nanosecond
    rows = records(tmp_path)
    assert all(r["latency_ms"] > 0 and r["train_seconds"] is None for r in rows)
    assert all("latency_ms" in r["error"] and "objective.target" in r["error"] for r in rows)


@pytest.mark.parametrize("override, message", [
    ("fidelity.steps=[2,9]", "fidelity.steps"),
    ("fidelity.promote=0", "fidelity.promote"),
    ("objective.cost=flops", "objective.cost"),
    ("objective.cost=num_parameters", "objective.target"),
    ("objective.mode=sometimes", "objective.mode"),
    ("strategy=evolution evolution.sample_size=50", "evolution.sample_size"),
    ("ppo.gamma=1.5", "ppo.gamma"),
    ("ppo.clip_coef=0", "ppo.clip_coef"),
    ("ppo.screening=4", "ppo.screening"),
])
def test_bad_search_options_fail_before_any_training(tmp_path, sqlite_uri, override, message):
    config = compose_config([*TINY, *override.split(), f"tracking.uri={sqlite_uri}"])
    with pytest.raises(ValueError, match=message):
        run_search(config, tmp_path)
    assert not (tmp_path / "candidates.jsonl").exists()
