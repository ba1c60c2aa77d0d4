"""The search loop: ask a strategy for a batch, evaluate each new architecture once, tell the values back.

A strategy proposes until it needs values (``ask`` returns None): that is a batch. Its new
architectures are evaluated by an evaluator (one after another, or in parallel; the outcome is the
same), recorded in order, and the values are told back in ask order. So the search depends only on
the seed and the values, never on how many candidates train at once.

Works with any objective (a plain function in the library API, candidate training in the
runner). Architectures already evaluated are answered from the cache and cost no budget; an
objective that raises or returns NaN marks its candidate failed and the search goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.errors import BadInput, ReplayError  # noqa: F401 (ReplayError re-exported: nas.search.ReplayError)
from nas.evaluators import Evaluator, InlineEvaluator, Outcome, ParallelConfig, batch_state, evaluate_safely, make_evaluator
from nas.space import Architecture, SearchSpace, architecture_key, as_space
from nas.strategies import EvolutionConfig, PPOConfig, Proposal, Strategy, TPEConfig, make_strategy

__all__ = ["Evaluation", "Outcome", "ReplayError", "SearchResult", "evaluate_safely", "run_loop", "search"]


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
    direction: str = "maximize"  # or "minimize": which values are best

    @property
    def best(self) -> Evaluation | None:
        done = [e for e in self.history if e.ok]
        if not done:
            return None
        return max(done, key=lambda e: e.value) if self.direction == "maximize" else min(done, key=lambda e: e.value)

    @property
    def best_architecture(self) -> Architecture | None:
        return self.best.architecture if self.best else None

    @property
    def best_value(self) -> float | None:
        return self.best.value if self.best else None

    def best_so_far(self) -> list[float]:
        """Best value after each evaluation (nan until the first success)."""
        sign = 1.0 if self.direction == "maximize" else -1.0
        curve, best = [], -math.inf
        for e in self.history:
            if e.ok:
                best = max(best, sign * e.value)
            curve.append(sign * best if best > -math.inf else math.nan)
        return curve


Objective = Callable[[Architecture], "float | Outcome"]


def check_direction(direction: str) -> None:
    if direction not in ("maximize", "minimize"):
        raise BadInput(f"direction must be 'maximize' or 'minimize', got {direction!r}")


def run_loop(
    space: SearchSpace,
    strategy: Strategy,
    objective: Objective,
    budget: int | None,
    on_evaluation: Callable[[Evaluation], None] | None = None,
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
    max_repeats: int | None = None,
    evaluator: Evaluator | None = None,
    on_start: Callable[[int, Proposal], None] | None = None,
    replay: Sequence[Evaluation] = (),
    on_replay: Callable[[Evaluation], None] | None = None,
    direction: str = "maximize",
) -> SearchResult:
    """Run until ``budget`` distinct architectures are evaluated or the strategy has nothing left.

    ``replay``: evaluations recorded by an interrupted run of the same search. They are told to the
    strategy again in their turn instead of being evaluated (the strategy, being deterministic, must
    propose them in the same order), so a resumed search ends as the uninterrupted one would have.
    ``on_start(index, proposal)`` is called when a new candidate is handed to a worker,
    ``on_evaluation`` when its evaluation is recorded, ``on_replay`` for each replayed one.
    ``direction="minimize"``: strategies (which maximise) are told the negated values; the history keeps them as they are.
    A strategy that proposes ``max_repeats`` architectures in a row that are not new (cached, or twice in a batch) is stopped.
    """
    if budget is not None and budget < 1:
        raise BadInput(f"budget must be >= 1, got {budget}")
    check_direction(direction)
    sign = 1.0 if direction == "maximize" else -1.0
    evaluator = evaluator or InlineEvaluator()
    # Repeats cost no budget, so a strategy stuck on them would never end: bound the repeats in a row, not the asks.
    max_repeats = max_repeats or (10 * budget + 100 if budget else 1000)
    result = SearchResult(history=[], iterations=strategy.iteration_stats, strategy=strategy, direction=direction)
    cache: dict[str, Evaluation] = {}
    reported, repeats = 0, 0
    while budget is None or len(result.history) < budget:
        batch: list[tuple[Proposal, str]] = []  # every proposal, in ask order
        fresh: list[tuple[Proposal, str]] = []  # the new architectures among them, each once
        while budget is None or len(result.history) + len(fresh) < budget:
            if repeats >= max_repeats:
                break
            proposal = strategy.ask()
            if proposal is None:
                break
            key = architecture_key(proposal.architecture)
            batch.append((proposal, key))
            if key not in cache and all(key != k for _, k in fresh):
                fresh.append((proposal, key))
                repeats = 0
            else:
                repeats += 1
        if not batch:
            break
        state = batch_state(objective)  # fixed before this batch's results come in
        n_replayed = max(0, min(len(fresh), len(replay) - len(result.history)))
        for proposal, key in fresh[:n_replayed]:
            recorded = replay[len(result.history)]
            if recorded.key != key:
                raise ReplayError(f"candidate {recorded.index}: the resumed search proposed {proposal.architecture} but the "
                                  f"interrupted run recorded {recorded.architecture}; were the config or the code changed?")
            cache[key] = recorded
            result.history.append(recorded)
            if on_replay:
                on_replay(recorded)
        todo = fresh[n_replayed:]
        first = len(result.history)
        started = (lambda i: on_start(first + i, todo[i][0])) if on_start else None
        outcomes = evaluator.map(objective, [p.architecture for p, _ in todo], started, state) if todo else []
        for (proposal, key), (outcome, seconds) in zip(todo, outcomes, strict=True):
            evaluation = Evaluation(
                index=len(result.history), architecture=dict(proposal.architecture), key=key,
                value=outcome.value, status=outcome.status, error=outcome.error,
                iteration=proposal.iteration, episode=proposal.episode, step=proposal.step,
                seconds=seconds, info=outcome.info,
            )
            cache[key] = evaluation
            result.history.append(evaluation)
            if on_evaluation:
                on_evaluation(evaluation)
        for proposal, key in batch:
            value = cache[key].value
            strategy.tell(proposal, None if value is None else sign * value)
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
    workers: int = 1,
    direction: str = "maximize",
    settings: Any = None,
) -> SearchResult:
    """Maximise (or, with ``direction="minimize"``, minimise) ``objective`` over ``space`` with ``budget`` distinct evaluations.

    ``strategy`` is a registered strategy (``nas.STRATEGIES``: ppo, random, evolution, tpe, and any added with
    ``nas.strategies.register_strategy``); ``settings`` holds its settings (its settings dataclass or a dict of its
    fields; None: the defaults). ``ppo``, ``evolution`` and ``tpe`` are the same for the shipped strategy of that name
    (``settings`` wins when both are given). ``workers`` > 1
    evaluates each batch in a local process pool (the objective must be picklable: a module-level
    function or object); the result is the same as with one worker.

    >>> result = nas.search({"x": [0, 1, 2, 3]}, lambda a: -(a["x"] - 2) ** 2, budget=4)
    >>> result.best_architecture
    {'x': 2}
    """
    space = as_space(space)
    check_direction(direction)
    if settings is None:
        settings = {"ppo": ppo, "evolution": evolution, "tpe": tpe}.get(strategy)
    if strategy == "ppo":  # the budget, not a number of updates, ends a library search
        if isinstance(settings, Mapping) and "iterations" not in settings:
            settings = {**settings, "iterations": None}
        elif settings is None:
            settings = PPOConfig(iterations=None)
    chosen = make_strategy(strategy, space, seed=seed, initial=initial, settings=settings)
    evaluator = make_evaluator(ParallelConfig(workers=workers), objective, threads=None)
    try:
        return run_loop(space, chosen, objective, budget, evaluator=evaluator, direction=direction)
    finally:
        evaluator.close()
