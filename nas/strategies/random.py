"""Random search: the reference strategy and the baseline every other one must beat."""

from __future__ import annotations

import numpy as np

from nas.space import Architecture, SearchSpace
from nas.strategies.base import Proposal, UnseenSampler


class RandomStrategy:
    """Uniform over valid architectures, without repeats (the initial one first when given); ``None`` once the space is exhausted."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0, initial: Architecture | None = None):
        self.space = space
        self.sampler = UnseenSampler(space, np.random.default_rng(seed), initial)
        self.iteration_stats: list[dict] = []

    def ask(self) -> Proposal | None:
        encoding = self.sampler.next_random()
        if encoding is None:
            return None
        return Proposal(self.space.decode(encoding), iteration=0, episode=len(self.sampler.proposed) - 1, step=0)

    def tell(self, proposal: Proposal, value: float | None) -> None:
        pass
