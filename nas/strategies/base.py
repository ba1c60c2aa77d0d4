"""The strategy protocol: ask for an architecture, tell its value. Strategies never train anything."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nas.space import Architecture, Encoding, SearchSpace, SpaceError, initial_encoding


@dataclass(frozen=True)
class Proposal:
    """An architecture a strategy wants evaluated, with where in the search it came from."""

    architecture: Architecture
    iteration: int = 0
    episode: int = 0
    step: int = 0


class Strategy(Protocol):
    name: str
    # One dict of diagnostics per finished iteration (a PPO update, say): {"iteration": its number from 0, "<name>/<stat>": value,
    # ...}; the runner logs new entries as metrics at that step.
    iteration_stats: list[dict[str, Any]]

    def ask(self) -> Proposal | None:
        """The next architecture to evaluate; None when it needs the values of its outstanding proposals
        first (the proposals so far form a batch, evaluated together), or, with none outstanding, when it
        has nothing left to propose. Proposals must not depend on how many are evaluated at once."""

    def tell(self, proposal: Proposal, value: float | None) -> None:
        """The value of the oldest outstanding proposal (None when its evaluation failed); tells come in ask order."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold beyond the seed and the history (learned networks, optimizer and RNG
        states); empty for a strategy that the seed and the values told determine."""



def sample_valid(space: SearchSpace, rng: np.random.Generator, exclude: Container[Encoding] = (), max_tries: int = 1000) -> Encoding | None:
    """A uniformly random valid architecture not in ``exclude``; None when there is none.

    Rejection sampling, falling back to enumerating what is left when it keeps missing (a nearly
    exhausted or heavily constrained space).
    """
    for _ in range(max_tries):
        encoding = tuple(int(rng.integers(n)) for n in space.sizes)
        if encoding not in exclude and space.is_valid_encoding(encoding):
            return encoding
    rest = [e for e in space.all_encodings() if e not in exclude and space.is_valid_encoding(e)]
    return rest[int(rng.integers(len(rest)))] if rest else None


def valid_initial(space: SearchSpace, initial: Architecture) -> Encoding:
    """The encoding of ``search_space.initial``; SpaceError naming it when it is not in the space or breaks a constraint."""
    encoding = initial_encoding(space, initial)
    if not space.is_valid_encoding(encoding):
        raise SpaceError(f"search_space.initial {initial} breaks {space.violations(space.decode(encoding))} "
                         "(set search_space.initial=null to start from a valid architecture)")
    return encoding


class UnseenSampler:
    """Valid architectures never proposed before: the initial one first (when given), then uniformly at
    random; ``None`` once every valid architecture was proposed."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator, initial: Architecture | None = None, max_tries: int = 1000):
        self.space = space
        self.rng = rng
        self.max_tries = max_tries
        self.proposed: set[Encoding] = set()
        self._initial = valid_initial(space, initial) if initial is not None else None

    def take(self, encoding: Encoding) -> bool:
        """Mark ``encoding`` proposed when it is valid and new; False otherwise."""
        if encoding in self.proposed or not self.space.is_valid_encoding(encoding):
            return False
        self.proposed.add(encoding)
        return True

    def next_random(self) -> Encoding | None:
        if self._initial is not None:
            initial, self._initial = self._initial, None
            if self.take(initial):
                return initial
        encoding = sample_valid(self.space, self.rng, self.proposed, self.max_tries)
        if encoding is not None:
            self.proposed.add(encoding)
        return encoding
