"""Recorded histories: for a fixed seed every strategy proposes exactly what it proposed when this file was
written. Refactors of a strategy must keep its proposals; a change that alters them on purpose (a new
design) updates the digests here and says so in its commit."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nas
from tests.test_strategies import SPACE, quadratic

# name -> (strategy, settings, sha256 of the 40 proposals' choices, the first three proposals). PPO's proposals depend on
# the floats of torch's CPU kernels, which can differ between processors (an AVX2 AMD EPYC gave the design before
# num_minibatches=1 another digest than the AVX-512 machine that recorded it): a digest may then be a tuple with one
# entry per kind of machine. The AVX2 kind is reproduced on an AVX-512 machine with ATEN_CPU_CAPABILITY=avx2
# MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 (checked: it gave the AVX2 EPYC's digest of the previous design);
# the designs since full-batch updates (ppo.num_minibatches=1) give the same digests on both. A design change alters them all.
RECORDED = {
    # PPO re-recorded for ppo.model_first (the model-based updates also run once the start-up candidates are in); the
    # same digests with the AVX2 kernels.
    "ppo": ("ppo", {}, "c0fdd97c4a62d92d", [(2, 2, 2, 1), (5, 3, 4, 3), (3, 4, 5, 0)]),
    "ppo-controller": ("ppo", {"ppo": {"env": "controller"}}, "4cac009ff128f52d", [(2, 2, 2, 1), (5, 3, 4, 3), (3, 4, 5, 0)]),
    "ppo-screening": ("ppo", {"ppo": {"env": "controller", "screening": 8}}, "a9fd598e6abed35b", [(2, 2, 2, 1), (5, 3, 4, 3), (3, 4, 5, 0)]),
    "random": ("random", {}, "584d1b346c085fbc", [(5, 3, 4, 3), (3, 4, 5, 0), (0, 1, 1, 3)]),
    "evolution": ("evolution", {}, "f7aa497b39fcb305", [(5, 3, 4, 3), (3, 4, 5, 0), (0, 1, 1, 3)]),
    "tpe": ("tpe", {}, "97927812e877b939", [(4, 5, 3, 3), (2, 0, 1, 2), (3, 2, 4, 2)]),
}


def proposals_digest(result) -> str:
    return hashlib.sha256(json.dumps([tuple(e.architecture[k] for k in SPACE) for e in result.history]).encode()).hexdigest()[:16]


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
    assert proposals_digest(result) in (digest if isinstance(digest, tuple) else (digest,))


# torch, MKL and oneDNN pick their kernels by the processor; these make an AVX-512 machine run the AVX2 ones.
AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_ppo_proposes_the_recorded_architectures_with_avx2_kernels_too():
    """The other kind of machine CI may run on (an AVX2 processor), emulated: PPO's digest is the recorded one."""
    code = ("import torch, nas; from tests.test_recorded_history import SPACE, quadratic, proposals_digest; torch.set_num_threads(2); "
            "print(torch.backends.cpu.get_cpu_capability(), proposals_digest(nas.search(SPACE, quadratic, strategy='ppo', budget=40, seed=7)))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, **AVX2_KERNELS}, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    digest = RECORDED["ppo"][2]
    assert out[0] in ("AVX2", "DEFAULT") and out[1] in (digest if isinstance(digest, tuple) else (digest,))


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
