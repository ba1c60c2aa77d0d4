"""The search loop: ask a strategy, evaluate each new architecture once, tell the value back.

Works with any objective (a plain function in the library API, candidate training in the
runner). Architectures already evaluated are answered from the cache and cost no budget; an
objective that raises or returns NaN marks its candidate failed and the search goes on.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.space import Architecture, SearchSpace, architecture_key, as_space
from nas.strategies import EvolutionConfig, PPOConfig, Proposal, Strategy, TPEConfig, make_strategy


@dataclass
class Outcome:
    """What an objective returns when it has more to say than a number."""

    value: float | None
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # metrics, parameter count, timings...


@dataclass
class Evaluation:
    """One distinct evaluated architecture."""

    index: int
    architecture: Architecture
    key: str
    value: float | None
    status: str
    iteration: int
    episode: int
    step: int
    error: str | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class SearchResult:
    history: list[Evaluation]
    iterations: list[dict[str, Any]] = field(default_factory=list)
    strategy: Strategy | None = None  # e.g. to save a PPO controller: result.strategy.save_controller(path)

    @property
    def best(self) -> Evaluation | None:
        done = [e for e in self.history if e.ok]
        return max(done, key=lambda e: e.value) if done else None

    @property
    def best_architecture(self) -> Architecture | None:
        return self.best.architecture if self.best else None

    @property
    def best_value(self) -> float | None:
        return self.best.value if self.best else None

    def best_so_far(self) -> list[float]:
        """Best value after each evaluation (nan until the first success)."""
        curve, best = [], -math.inf
        for e in self.history:
            if e.ok:
                best = max(best, e.value)
            curve.append(best if best > -math.inf else math.nan)
        return curve


Objective = Callable[[Architecture], "float | Outcome"]


def evaluate_safely(objective: Objective, architecture: Architecture) -> Outcome:
    try:
        out = objective(architecture)
    except Exception as exc:  # a failing candidate must not end the search
        return Outcome(None, "failed", f"{type(exc).__name__}: {exc}", {"traceback": traceback.format_exc(limit=5)})
    out = out if isinstance(out, Outcome) else Outcome(float(out))
    if out.status == "ok" and (out.value is None or not math.isfinite(out.value)):
        return Outcome(None, "failed", f"objective returned {out.value}", out.info)
    return out


def run_loop(
    space: SearchSpace,
    strategy: Strategy,
    objective: Objective,
    budget: int | None,
    on_evaluation: Callable[[Evaluation], None] | None = None,
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
    max_proposals: int | None = None,
) -> SearchResult:
    """Run until ``budget`` distinct architectures are evaluated or the strategy has nothing left."""
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    # A converged policy may keep proposing cached architectures: bound the asks, not just the evaluations.
    max_proposals = max_proposals or (10 * budget + 100 if budget else None)
    result = SearchResult(history=[], iterations=strategy.iteration_stats, strategy=strategy)
    cache: dict[str, Evaluation] = {}
    reported, proposals = 0, 0
    while budget is None or len(result.history) < budget:
        if max_proposals is not None and proposals >= max_proposals:
            break
        proposal: Proposal | None = strategy.ask()
        if proposal is None:
            break
        proposals += 1
        key = architecture_key(proposal.architecture)
        evaluation = cache.get(key)
        if evaluation is None:
            start = time.perf_counter()
            outcome = evaluate_safely(objective, proposal.architecture)
            evaluation = Evaluation(
                index=len(result.history), architecture=dict(proposal.architecture), key=key,
                value=outcome.value, status=outcome.status, error=outcome.error,
                iteration=proposal.iteration, episode=proposal.episode, step=proposal.step,
                seconds=time.perf_counter() - start, info=outcome.info,
            )
            cache[key] = evaluation
            result.history.append(evaluation)
            if on_evaluation:
                on_evaluation(evaluation)
        strategy.tell(proposal, evaluation.value)
        for stats in strategy.iteration_stats[reported:]:
            if on_iteration:
                on_iteration(stats)
        reported = len(strategy.iteration_stats)
    return result


def search(
    space: SearchSpace | Mapping[str, Sequence[Any]],
    objective: Objective,
    strategy: str = "ppo",
    budget: int = 50,
    seed: int = 0,
    ppo: PPOConfig | Mapping[str, Any] | None = None,
    initial: Architecture | None = None,
    evolution: EvolutionConfig | Mapping[str, Any] | None = None,
    tpe: TPEConfig | Mapping[str, Any] | None = None,
) -> SearchResult:
    """Maximise ``objective`` over ``space`` with ``budget`` distinct evaluations.

    ``strategy`` is one of ``nas.STRATEGIES`` (ppo, random, evolution, tpe); ``ppo``, ``evolution``
    and ``tpe`` hold that strategy's settings (a config or a dict of its fields).

    >>> result = nas.search({"x": [0, 1, 2, 3]}, lambda a: -(a["x"] - 2) ** 2, budget=4)
    >>> result.best_architecture
    {'x': 2}
    """
    space = as_space(space)
    if isinstance(ppo, Mapping) and "iterations" not in ppo:
        ppo = {**ppo, "iterations": None}
    elif ppo is None:
        ppo = PPOConfig(iterations=None)  # the budget, not a number of updates, ends a library search
    chosen = make_strategy(strategy, space, seed=seed, ppo=ppo, initial=initial, evolution=evolution, tpe=tpe)
    return run_loop(space, chosen, objective, budget)
