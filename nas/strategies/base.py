"""The strategy protocol: ask for an architecture, tell its value. Strategies never train anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from nas.space import Architecture


@dataclass(frozen=True)
class Proposal:
    """An architecture a strategy wants evaluated, with where in the search it came from."""

    architecture: Architecture
    iteration: int = 0
    episode: int = 0
    step: int = 0


class Strategy(Protocol):
    name: str
    # One dict of diagnostics per finished iteration (a PPO update, say); the loop logs new entries.
    iteration_stats: list[dict[str, Any]]

    def ask(self) -> Proposal | None:
        """The next architecture to evaluate, or None when the strategy has nothing left to propose."""

    def tell(self, proposal: Proposal, value: float | None) -> None:
        """The value of the last proposal (None when its evaluation failed)."""

