"""Search strategies behind one ask/tell interface."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import is_dataclass
from typing import Any

from nas.settings import EvolutionConfig, PPOConfig, TPEConfig
from nas.space import Architecture, SearchSpace
from nas.strategies.base import Proposal, Strategy, UnseenSampler

STRATEGIES = ("ppo", "random", "evolution", "tpe")
_CLASS_NAMES = {"PPOStrategy": "ppo", "RandomStrategy": "random", "EvolutionStrategy": "evolution", "TPEStrategy": "tpe"}


def strategy_class(name: str) -> type:
    """The strategy's class, its module imported on first use: PPO's needs torch, TPE's Optuna."""
    if name == "ppo":
        from nas.strategies.ppo import PPOStrategy as cls
    elif name == "random":
        from nas.strategies.random import RandomStrategy as cls
    elif name == "evolution":
        from nas.strategies.evolution import EvolutionStrategy as cls
    elif name == "tpe":
        from nas.strategies.tpe import TPEStrategy as cls
    else:
        raise ValueError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
    return cls


def __getattr__(name: str) -> Any:  # PEP 562: the classes load on first use
    if name in _CLASS_NAMES:
        return strategy_class(_CLASS_NAMES[name])
    raise AttributeError(f"module 'nas.strategies' has no attribute {name!r}")


def _config(kind: type, value: Any) -> Any:
    return value if is_dataclass(value) else kind(**(value or {}))


def make_strategy(
    name: str,
    space: SearchSpace,
    seed: int = 0,
    ppo: PPOConfig | Mapping[str, Any] | None = None,
    initial: Architecture | None = None,
    evolution: EvolutionConfig | Mapping[str, Any] | None = None,
    tpe: TPEConfig | Mapping[str, Any] | None = None,
) -> Strategy:
    """The strategy ``name`` with its settings; every strategy proposes ``initial`` first when given."""
    settings = {"ppo": (PPOConfig, ppo), "evolution": (EvolutionConfig, evolution), "tpe": (TPEConfig, tpe)}
    strategy = strategy_class(name)
    if name in settings:
        kind, value = settings[name]
        return strategy(space, _config(kind, value), seed=seed, initial=initial)
    return strategy(space, seed=seed, initial=initial)


__all__ = [
    "STRATEGIES", "EvolutionConfig", "EvolutionStrategy", "PPOConfig", "PPOStrategy", "Proposal", "RandomStrategy",
    "Strategy", "TPEConfig", "TPEStrategy", "UnseenSampler", "make_strategy",
]
