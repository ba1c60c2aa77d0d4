"""Regularized evolution (Real et al., 2019): an aging population, tournament selection, one mutation.

The first ``population_size`` proposals are the initial architecture (when given) and random valid
ones. After that each proposal is a mutation of a tournament winner: ``sample_size`` members drawn
at random, the best of them copied with one dimension changed to another valid choice. Each new
child joins the population and the oldest member leaves, whatever its value ("aging").
"""

from __future__ import annotations

from collections import deque

import numpy as np

from nas.settings import EvolutionConfig
from nas.space import Architecture, Encoding, SearchSpace
from nas.strategies.base import Proposal, UnseenSampler


class EvolutionStrategy:
    name = "evolution"

    def __init__(self, space: SearchSpace, config: EvolutionConfig | None = None, seed: int = 0, initial: Architecture | None = None):
        self.space = space
        self.config = config or EvolutionConfig()
        self.config.validate()
        self.rng = np.random.default_rng(seed)
        self.sampler = UnseenSampler(space, self.rng, initial)
        self.population: deque[tuple[Encoding, float]] = deque()
        self.iteration_stats: list[dict] = []
        self._outstanding: deque[Encoding] = deque()  # proposed, value not told yet (tells come in ask order)
        self._count = 0

    def ask(self) -> Proposal | None:
        """Random members, all at once, until the population is full; then one mutant at a time."""
        if len(self.population) + len(self._outstanding) < self.config.population_size:
            encoding = self.sampler.next_random()
        elif self._outstanding:
            return None  # a mutant's parent is drawn from the population after every value is in
        else:
            encoding = self._mutant() or self.sampler.next_random()
        if encoding is None:
            return None
        self._outstanding.append(encoding)
        self._count += 1
        # A "generation" is population_size proposals.
        return Proposal(self.space.decode(encoding), iteration=(self._count - 1) // self.config.population_size,
                        episode=self._count - 1, step=0)

    def _mutant(self) -> Encoding | None:
        idx = self.rng.choice(len(self.population), size=min(self.config.sample_size, len(self.population)), replace=False)
        parent = max((self.population[i] for i in idx), key=lambda member: member[1])[0]
        # One dimension to another valid choice; children already proposed are skipped (they cost no
        # evaluation but teach nothing), trying every single mutation in random order.
        moves = [(d, c) for d, n in enumerate(self.space.sizes) for c in range(n) if c != parent[d]]
        for k in self.rng.permutation(len(moves)):
            d, c = moves[k]
            child = parent[:d] + (c,) + parent[d + 1 :]
            if self.sampler.take(child):
                return child
        return None

    def state_dict(self) -> dict:
        return {}  # the seed and the values told determine every proposal: a resume replays them

    def tell(self, proposal: Proposal, value: float | None) -> None:
        if not self._outstanding:
            raise RuntimeError("tell() without an outstanding ask()")
        encoding = self._outstanding.popleft()
        if value is None:  # a failed architecture never becomes a parent
            return
        self.population.append((encoding, value))
        if len(self.population) > self.config.population_size:
            self.population.popleft()
