"""Random search: the reference strategy and the baseline every other one must beat."""

from __future__ import annotations

import numpy as np

from nas.space import Architecture, SearchSpace
from nas.strategies.base import Proposal, UnseenSampler


class RandomStrategy:
    """Uniform over valid architectures, without repeats (the initial one first when given); ``None`` once the space is exhausted.

    Proposals never depend on values, so any batch size gives the same search; batches of
    ``batch_size`` keep that many workers busy while multi-fidelity hurdles still have earlier
    batches to compare against.
    """

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0, initial: Architecture | None = None, batch_size: int = 8):
        self.space = space
        self.sampler = UnseenSampler(space, np.random.default_rng(seed), initial)
        self.iteration_stats: list[dict] = []
        self.batch_size = batch_size
        self._outstanding = 0

    def ask(self) -> Proposal | None:
        if self._outstanding >= self.batch_size:
            return None
        encoding = self.sampler.next_random()
        if encoding is None:
            return None
        self._outstanding += 1
        count = len(self.sampler.proposed)
        return Proposal(self.space.decode(encoding), iteration=(count - 1) // self.batch_size, episode=count - 1, step=0)

    def state_dict(self) -> dict:
        return {}  # the seed and the values told determine every proposal: a resume replays them

    def tell(self, proposal: Proposal, value: float | None) -> None:
        self._outstanding -= 1
