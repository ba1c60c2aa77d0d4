"""Search strategies behind one ask/tell interface."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import is_dataclass
from typing import Any

from nas.space import Architecture, SearchSpace
from nas.strategies.base import Proposal, Strategy, UnseenSampler
from nas.strategies.evolution import EvolutionConfig, EvolutionStrategy
from nas.strategies.ppo import PPOConfig, PPOStrategy
from nas.strategies.random import RandomStrategy
from nas.strategies.tpe import TPEConfig, TPEStrategy

STRATEGIES = ("ppo", "random", "evolution", "tpe")


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
    if name == "ppo":
        return PPOStrategy(space, _config(PPOConfig, ppo), seed=seed, initial=initial)
    if name == "random":
        return RandomStrategy(space, seed=seed, initial=initial)
    if name == "evolution":
        return EvolutionStrategy(space, _config(EvolutionConfig, evolution), seed=seed, initial=initial)
    if name == "tpe":
        return TPEStrategy(space, _config(TPEConfig, tpe), seed=seed, initial=initial)
    raise ValueError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")


__all__ = [
    "STRATEGIES", "EvolutionConfig", "EvolutionStrategy", "PPOConfig", "PPOStrategy", "Proposal", "RandomStrategy",
    "Strategy", "TPEConfig", "TPEStrategy", "UnseenSampler", "make_strategy",
]
