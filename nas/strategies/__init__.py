"""Search strategies behind one ask/tell interface."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.space import Architecture, SearchSpace
from nas.strategies.base import Proposal, Strategy
from nas.strategies.ppo import PPOConfig, PPOStrategy
from nas.strategies.random import RandomStrategy

STRATEGIES = ("ppo", "random")


def make_strategy(
    name: str,
    space: SearchSpace,
    seed: int = 0,
    ppo: PPOConfig | Mapping[str, Any] | None = None,
    initial: Architecture | None = None,
) -> Strategy:
    if name == "ppo":
        config = ppo if isinstance(ppo, PPOConfig) else PPOConfig(**(ppo or {}))
        return PPOStrategy(space, config, seed=seed, initial=initial)
    if name == "random":
        return RandomStrategy(space, seed=seed)
    raise ValueError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")


__all__ = ["STRATEGIES", "PPOConfig", "PPOStrategy", "Proposal", "RandomStrategy", "Strategy", "make_strategy"]
