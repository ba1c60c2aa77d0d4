"""Random search: the reference strategy and the baseline every other one must beat."""

from __future__ import annotations

import numpy as np

from nas.space import Encoding, SearchSpace
from nas.strategies.base import Proposal


class RandomStrategy:
    """Uniform over valid architectures, without repeats; ``None`` once the space is exhausted."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0, max_tries: int = 1000):
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.max_tries = max_tries
        self.proposed: set[Encoding] = set()
        self.iteration_stats: list[dict] = []

    def ask(self) -> Proposal | None:
        for _ in range(self.max_tries):
            encoding = tuple(int(self.rng.integers(n)) for n in self.space.sizes)
            if encoding not in self.proposed and self.space.is_valid_encoding(encoding):
                return self._propose(encoding)
        # Rejection sampling keeps missing: fall back to the valid architectures still unseen.
        remaining = [e for e in self.space.all_encodings() if e not in self.proposed and self.space.is_valid_encoding(e)]
        if not remaining:
            return None
        return self._propose(remaining[int(self.rng.integers(len(remaining)))])

    def _propose(self, encoding: Encoding) -> Proposal:
        self.proposed.add(encoding)
        n = len(self.proposed) - 1
        return Proposal(self.space.decode(encoding), iteration=0, episode=n, step=0)

    def tell(self, proposal: Proposal, value: float | None) -> None:
        pass
