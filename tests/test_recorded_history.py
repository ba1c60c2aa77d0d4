"""Recorded histories: for a fixed seed every strategy proposes exactly what it proposed when this file was
written. Refactors of a strategy must keep its proposals; a change that alters them on purpose (a new
design) updates the digests here and says so in its commit."""

import hashlib
import json

import pytest
import torch

import nas
from tests.test_strategies import SPACE, quadratic

# name -> (strategy, settings, sha256 of the 40 proposals' choices, the first three proposals). PPO's proposals depend on
# the floats of torch's CPU kernels, which differ between processors (seen: an AVX2 AMD EPYC against the machine that
# first recorded them): its digest is then a tuple with one entry per kind of machine seen; a design change alters all.
RECORDED = {
    # PPO re-recorded for its start-up candidates (the initial architecture, then random ones) and model_min_r2 -1.
    "ppo": ("ppo", {}, ("e40537550ba9ac07", "0cfc1f0b9fdab639"), [(2, 2, 2, 1), (5, 3, 4, 3), (3, 4, 5, 0)]),
    "ppo-controller": ("ppo", {"ppo": {"env": "controller"}}, "8eb21623133fc99b", [(2, 2, 2, 1), (5, 3, 4, 3), (3, 4, 5, 0)]),
    "ppo-screening": ("ppo", {"ppo": {"env": "controller", "screening": 8}}, "1c23b0b035dc2068", [(2, 2, 2, 1), (5, 3, 4, 3), (3, 4, 5, 0)]),
    "random": ("random", {}, "584d1b346c085fbc", [(5, 3, 4, 3), (3, 4, 5, 0), (0, 1, 1, 3)]),
    "evolution": ("evolution", {}, "f7aa497b39fcb305", [(5, 3, 4, 3), (3, 4, 5, 0), (0, 1, 1, 3)]),
    "tpe": ("tpe", {}, "97927812e877b939", [(4, 5, 3, 3), (2, 0, 1, 2), (3, 2, 4, 2)]),
}


@pytest.fixture
def two_torch_threads():
    """PPO's sums, hence its proposals, depend on torch's thread count: recorded with 2 (torch's default on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", RECORDED)
def test_a_strategy_proposes_what_it_proposed_when_recorded(name, two_torch_threads):
    strategy, settings, digest, first = RECORDED[name]
    result = nas.search(SPACE, quadratic, strategy=strategy, budget=40, seed=7, **settings)
    proposals = [tuple(e.architecture[k] for k in SPACE) for e in result.history]
    assert proposals[:3] == first
    assert hashlib.sha256(json.dumps(proposals).encode()).hexdigest()[:16] in (digest if isinstance(digest, tuple) else (digest,))


def test_a_ppo_checkpoint_restores_its_networks_optimizer_and_random_generators():
    from nas.strategies import PPOConfig, PPOStrategy
    from nas.space import SearchSpace

    space = SearchSpace.from_dict(SPACE)
    trained = nas.search(SPACE, quadratic, strategy="ppo", budget=24, seed=5).strategy
    state = trained.state_dict()
    fresh = PPOStrategy(space, PPOConfig(), seed=99)
    fresh.load_state_dict(state)
    again = fresh.state_dict()
    assert again["controller"]["iterations"] == trained.iteration > 0
    for net in ("policy", "value"):
        assert all(torch.equal(again["controller"][net][k], v) for k, v in state["controller"][net].items())
    assert again["generator"].equal(state["generator"]) and again["numpy_rng"] == state["numpy_rng"]
    assert again["optimizer"]["state"][0]["exp_avg"].equal(state["optimizer"]["state"][0]["exp_avg"])
    assert all(nas.strategies.strategy_class(name)(space, seed=0).state_dict() == {} for name in ("random", "evolution", "tpe"))
