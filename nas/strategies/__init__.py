"""Search strategies behind one ask/tell interface, found by name in STRATEGIES (nas/strategies/spec.py).

Importing this package loads no torch or Optuna: each spec's ``load`` imports its class on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.settings import EvolutionConfig, PPOConfig, TPEConfig
from nas.space import Architecture, SearchSpace
from nas.strategies.base import Proposal, Strategy, UnseenSampler
from nas.strategies.spec import STRATEGIES, StrategySpec, register_strategy, strategy_spec


def _ppo() -> type:
    from nas.strategies.ppo import PPOStrategy  # torch

    return PPOStrategy


def _random() -> type:
    from nas.strategies.random import RandomStrategy

    return RandomStrategy


def _evolution() -> type:
    from nas.strategies.evolution import EvolutionStrategy

    return EvolutionStrategy


def _tpe() -> type:
    from nas.strategies.tpe import TPEStrategy  # Optuna

    return TPEStrategy


for _spec in (StrategySpec("ppo", PPOConfig, _ppo), StrategySpec("random", None, _random),
              StrategySpec("evolution", EvolutionConfig, _evolution), StrategySpec("tpe", TPEConfig, _tpe)):
    register_strategy(_spec)

_CLASS_NAMES = {"PPOStrategy": "ppo", "RandomStrategy": "random", "EvolutionStrategy": "evolution", "TPEStrategy": "tpe"}


def strategy_class(name: str) -> type:
    """The strategy's class, its module imported on first use: PPO's needs torch, TPE's Optuna."""
    return strategy_spec(name).load()


def __getattr__(name: str) -> Any:  # PEP 562: the classes load on first use
    if name in _CLASS_NAMES:
        return strategy_class(_CLASS_NAMES[name])
    raise AttributeError(f"module 'nas.strategies' has no attribute {name!r}")


def make_strategy(
    name: str,
    space: SearchSpace,
    seed: int = 0,
    ppo: PPOConfig | Mapping[str, Any] | None = None,
    initial: Architecture | None = None,
    evolution: EvolutionConfig | Mapping[str, Any] | None = None,
    tpe: TPEConfig | Mapping[str, Any] | None = None,
    settings: Any = None,
) -> Strategy:
    """The registered strategy ``name`` with its ``settings`` (its settings dataclass or a dict of its fields; None:
    the defaults); every strategy proposes ``initial`` first when given. ``ppo``, ``evolution`` and ``tpe`` are the
    older way to pass a shipped strategy's settings: each is used only by the strategy of that name."""
    if settings is None:
        settings = {"ppo": ppo, "evolution": evolution, "tpe": tpe}.get(name)
    return strategy_spec(name).build(space, settings, seed=seed, initial=initial)


__all__ = [
    "STRATEGIES", "EvolutionConfig", "EvolutionStrategy", "PPOConfig", "PPOStrategy", "Proposal", "RandomStrategy",
    "Strategy", "StrategySpec", "TPEConfig", "TPEStrategy", "UnseenSampler", "make_strategy", "register_strategy",
    "strategy_spec",
]
