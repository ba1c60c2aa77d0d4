"""Warm starts: a search's saved PPO controller seeds the policy and value networks of a later search."""

import json

import pytest
import torch

import nas
from nas.controller import ControllerError, load_controller
from nas.runner import run_search
from nas.space import as_space
from nas.strategies.ppo import PPOStrategy

from .conftest import TINY, compose_config

SPACE = {"a": list(range(6)), "b": list(range(6)), "c": list(range(4))}


def objective(arch):
    return -((arch["a"] - 4) ** 2 + (arch["b"] - 1) ** 2 + (arch["c"] - 3) ** 2) / 10


@pytest.fixture
def controller(tmp_path):
    result = nas.search(SPACE, objective, budget=40, seed=0)
    path = tmp_path / "controller.pt"
    result.strategy.save_controller(path)
    return path, result.strategy


def test_saved_controller_loads_into_a_new_search(controller):
    path, trained = controller
    state = load_controller(path)
    assert state["dimensions"] == SPACE and state["iterations"] == trained.iteration > 0
    fresh = PPOStrategy(as_space(SPACE), nas.PPOConfig(), seed=5)
    warm = PPOStrategy(as_space(SPACE), nas.PPOConfig(init_from=str(path)), seed=5)
    for name, tensor in trained.policy.state_dict().items():
        assert torch.equal(warm.policy.state_dict()[name], tensor)
        assert not torch.equal(fresh.policy.state_dict()[name], tensor) or tensor.abs().sum() == 0
    assert all(torch.equal(warm.value.state_dict()[k], v) for k, v in trained.value.state_dict().items())
    # The warm-started policy proposes from the trained distribution: it differs from a cold one with the same seed.
    cold_run = nas.search(SPACE, objective, budget=15, seed=5)
    warm_run = nas.search(SPACE, objective, budget=15, seed=5, ppo={"init_from": str(path)})
    assert [e.architecture for e in cold_run.history] != [e.architecture for e in warm_run.history]


@pytest.mark.parametrize(
    "space, ppo, message",
    [
        ({**SPACE, "c": [0, 1, 2]}, {}, r"dimension 'c' has choices \[0, 1, 2\] here but \[0, 1, 2, 3\] in the controller"),
        ({"a": SPACE["a"], "b": SPACE["b"]}, {}, r"dimension 'c' is not in this search space"),
        ({**SPACE, "d": [0, 1]}, {}, r"dimension 'd' is not in the saved controller"),
        ({"c": SPACE["c"], "a": SPACE["a"], "b": SPACE["b"]}, {}, r"in the order \['a', 'b', 'c'\] in the controller"),
        (SPACE, {"horizon": 5}, r"ppo.horizon is 5 here but 3 in the controller"),
    ],
)
def test_a_controller_for_other_dimensions_is_refused_naming_them(controller, space, ppo, message):
    path, _ = controller
    with pytest.raises(ControllerError, match=message):
        nas.search(space, objective, budget=3, ppo={"init_from": str(path), **ppo})


def test_missing_or_foreign_checkpoint_is_refused(tmp_path):
    with pytest.raises(ControllerError, match="ppo.init_from: controller file .*nowhere.pt' does not exist"):
        load_controller(tmp_path / "nowhere.pt")
    foreign = tmp_path / "weights.pt"
    torch.save({"layer.weight": torch.zeros(2)}, foreign)
    with pytest.raises(ControllerError, match="is not a nas PPO controller"):
        load_controller(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ControllerError, match="is not a readable controller checkpoint"):
        load_controller(garbage)


@pytest.mark.slow
def test_cli_search_warm_starts_from_a_run_directory_or_mlflow_run(tmp_path, sqlite_uri):
    first = compose_config([*TINY, f"tracking.uri={sqlite_uri}"])
    run_search(first, tmp_path / "first")
    assert (tmp_path / "first" / "controller.pt").is_file()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sqlite_uri)
    parent = client.get_run(json.loads((tmp_path / "first" / "search.json").read_text())["parent_run_id"])
    assert "controller.pt" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    for i, source in enumerate((str(tmp_path / "first"), parent.info.run_id, f"runs:/{parent.info.run_id}")):
        config = compose_config([*TINY, "budget=2", f"ppo.init_from={source}", f"tracking.uri={sqlite_uri}"])
        result = run_search(config, tmp_path / f"second-{i}")  # a folder of its own per search
        assert len(result.history) == 2

    # Another space (GPT-2's dimensions) cannot take BERT's controller: refused before anything trains.
    config = compose_config([*TINY, "search_space=gpt2_small", f"ppo.init_from={tmp_path / 'first'}", f"tracking.uri={sqlite_uri}"])
    with pytest.raises(ControllerError, match="dimension 'n_layer' is not in the saved controller"):
        run_search(config, tmp_path / "third")
    assert not (tmp_path / "third" / "candidates.jsonl").exists()
    config = compose_config([*TINY, "ppo.init_from=0123456789abcdef0123456789abcdef", f"tracking.uri={sqlite_uri}"])
    with pytest.raises(ControllerError, match="cannot fetch controller.pt of MLflow run '0123456789abcdef0123456789abcdef'"):
        run_search(config, tmp_path / "fourth")
