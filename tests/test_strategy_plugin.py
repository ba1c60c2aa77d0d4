"""A strategy from outside nas/: one module (its settings and class, here) plus one YAML, and a real search with it.

The toy strategy walks: it proposes unseen random architectures in rounds of ``walk.round_size``, the first of each
round labelled with its own setting ``walk.label``. Nothing under nas/ knows about it: it is registered like the
shipped strategies, and its settings sit under its own key (``walk.*``), as ``ppo.*`` does for PPO.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient

import nas
from nas.config import register_configs
from nas.errors import BadInput
from nas.runner import run_search
from nas.space import Architecture, SearchSpace
from nas.strategies import STRATEGIES, Proposal, StrategySpec, UnseenSampler, make_strategy, register_strategy

from .conftest import TINY, compose_config


@dataclass
class WalkConfig:
    round_size: int = 4  # proposals per round (a batch, evaluated together)
    label: str = "walk"  # the name each round's statistics carry

    def validate(self) -> None:  # BadInput: the nas command reports it as the user's mistake, in one line
        if self.round_size < 1:
            raise BadInput(f"walk.round_size must be >= 1, got {self.round_size}")


class WalkStrategy:
    name = "walk"

    def __init__(self, space: SearchSpace, config: WalkConfig, seed: int = 0, initial: Architecture | None = None):
        config.validate()
        self.space, self.config = space, config
        self.sampler = UnseenSampler(space, np.random.default_rng(seed), initial)
        self.iteration_stats: list[dict] = []
        self._outstanding, self._values = 0, []

    def ask(self) -> Proposal | None:
        if self._outstanding >= self.config.round_size:
            return None
        encoding = self.sampler.next_random()
        if encoding is None:
            return None
        self._outstanding += 1
        count = len(self.sampler.proposed)
        return Proposal(self.space.decode(encoding), iteration=(count - 1) // self.config.round_size, episode=count - 1)

    def tell(self, proposal: Proposal, value: float | None) -> None:
        self._outstanding -= 1
        self._values.append(value)
        if self._outstanding == 0:  # a round is done
            done = [v for v in self._values if v is not None]
            self.iteration_stats.append({"iteration": len(self.iteration_stats), f"{self.config.label}/best": max(done, default=float("nan"))})
            self._values = []

    def state_dict(self) -> dict:
        return {}  # the seed and the values told determine every proposal


SPEC = StrategySpec("walk", WalkConfig, lambda: WalkStrategy)


@pytest.fixture
def walk_strategy(tmp_path: Path) -> Iterator[list[str]]:
    """The toy strategy registered and its YAML written: the overrides that choose it."""
    register_strategy(SPEC)
    register_configs()  # _schemas/strategy/walk in Hydra's ConfigStore
    (tmp_path / "conf" / "strategy").mkdir(parents=True)
    (tmp_path / "conf" / "strategy" / "walk.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /_schemas/strategy/walk\n  - _self_\n\nstrategy: walk\nwalk:\n  round_size: 3\n")
    yield [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "strategy=walk"]
    del STRATEGIES["walk"]


@pytest.mark.slow
def test_a_strategy_registered_from_outside_runs_a_real_search(tmp_path, sqlite_uri, walk_strategy):
    config = compose_config([*walk_strategy, *TINY, "walk.label=toy", f"tracking.uri={sqlite_uri}"])
    assert config.strategy == "walk" and config.walk == WalkConfig(round_size=3, label="toy")  # the YAML's, then the command line's
    result = run_search(config, tmp_path / "run")

    assert len(result.history) == 5 and all(e.ok for e in result.history), [e.error for e in result.history]
    assert isinstance(result.strategy, WalkStrategy) and result.strategy.config == config.walk  # its settings reached it
    assert [e.iteration for e in result.history] == [0, 0, 0, 1, 1]  # rounds of walk.round_size
    client = MlflowClient(sqlite_uri)
    runs = client.search_runs([client.get_experiment_by_name("nas").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert {k: v for k, v in parent.data.params.items() if k.startswith("walk.")} == {"walk.round_size": "3", "walk.label": "toy"}
    assert parent.data.params["strategy"] == "walk" and parent.data.tags["strategy"] == "walk"
    assert not [k for k in parent.data.params if k.split(".")[0] in ("ppo", "evolution", "tpe")]  # no other strategy's settings
    assert "toy/best" in parent.data.metrics  # its own diagnostics, named by its setting


def test_a_registered_strategy_runs_in_the_library_api(walk_strategy):
    result = nas.search({"x": [0, 1, 2, 3]}, lambda a: a["x"], strategy="walk", budget=4, settings={"round_size": 2})
    assert result.best_architecture == {"x": 3} and result.strategy.config == WalkConfig(round_size=2)
    space = SearchSpace.from_dict({"x": [0, 1]})
    assert make_strategy("walk", space).config == WalkConfig()  # the defaults
    with pytest.raises(BadInput, match="walk.round_size"):
        make_strategy("walk", space, settings={"round_size": 0})


def test_a_strategy_setting_misspelled_or_foreign_fails_at_compose_time_naming_it(walk_strategy):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([*walk_strategy, "walk.round_sise=2"])
    assert "round_sise" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([*walk_strategy, "ppo.gamma=0.9"])  # another strategy's setting
    assert "'ppo'" in str(err.value.__cause__)
    assert not hasattr(compose_config(walk_strategy), "ppo")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_registered_strategy_keeps_its_spec(name):
    # The contract every strategy meets: its option composes with its settings' defaults under its own key only,
    # and the library builds it from the same settings.
    spec = STRATEGIES[name]
    config = compose_config([f"strategy={name}"])
    assert config.strategy == name
    if spec.settings is None:
        assert config.strategy_settings is None
    else:
        assert asdict(config.strategy_settings) == asdict(spec.settings()) and getattr(config, name) is config.strategy_settings
    built = make_strategy(name, SearchSpace.from_dict({"x": [0, 1, 2]}), settings=config.strategy_settings)
    assert isinstance(built, spec.load())
