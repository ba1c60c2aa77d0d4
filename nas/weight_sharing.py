"""``evaluation=weight_sharing``: a search in two stages around one super-network (nas/supernet.py; issue 17).

1. The super-network (the space's largest architecture) trains once. By default with the sandwich rule: every step
   sums the losses of the largest and the smallest valid architectures (by parameter count) and ``random_subnets``
   random ones on one training batch; ``evaluation.sampling=uniform`` draws all 2 + ``random_subnets`` at random.
   It is saved in the run folder (supernet.pt) and logged as a child run of its own with its loss curve, so a
   resume loads it instead of training again.
2. The strategy searches over weight-sharing scores: a candidate's score is minus its subnet's validation loss with
   the inherited weights (``evaluation.score=metric``: the task's metric), milliseconds and no training. Each score
   is a line of weight_sharing.jsonl (a CandidateRecord without an MLflow run); the parent run gets them as a table
   artifact, not as thousands of runs.
3. The ``top_k`` best-scored architectures train standalone like any candidate (candidates.jsonl, a child run
   each); their best is the search's result (best/, nas-final).

Everything is seeded by the search's seed: the same seed gives the same super-network, scores and result on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from nas.config import Config
from nas.errors import ResumeError
from nas.evaluators import describe_failure
from nas.folders import RunDirectory, serialized, write_atomically
from nas.models import build_pretraining_model, parameter_count, pretraining_objective
from nas.pretrain import PretrainingCorpus, transfer_body
from nas.records import CandidateRecord
from nas.search import Outcome
from nas.space import Architecture, SearchSpace
from nas.strategies.base import Proposal
from nas.supernet import SuperNetwork, extremes, sandwich, train_supernet, uniform
from nas.tasks import Task
from nas.train import evaluate, resolve_device

log = logging.getLogger(__name__)

SUPERNET_FORMAT = "nas-supernet/1"
SCORES_TABLE = "weight_sharing_scores.json"  # the parent run's table artifact (MLflow's UI shows it)


def supernet_settings(config: Config) -> dict[str, Any]:
    """What the super-network's weights depend on: a saved one is reused only when all of it is the same."""
    e, pretrain = config.evaluation, config.trainer.pretrain
    return {"family": config.search_space.family, "seed": config.seed, "supernet_steps": e.supernet_steps,
            "random_subnets": e.random_subnets, "sampling": e.sampling, "learning_rate": e.learning_rate,
            "batch_size": config.trainer.batch_size,
            "dimensions": {k: list(v) for k, v in config.search_space.dimensions.items()},
            **({"pretrain": dataclasses.asdict(pretrain)} if pretrain.steps > 0 else {})}


def build_supernet(config: Config, task: Task, space: SearchSpace, fixed: dict[str, Any]) -> SuperNetwork:
    """The untrained super-network; WeightSharingError (a BadInput) naming why when the space cannot share weights."""
    supernet = SuperNetwork(space, config.search_space.family, task.name, fixed, seed=config.seed)
    supernet.model.to(resolve_device(config.trainer.device))
    return supernet


def _on_device(batches: Iterator[dict[str, torch.Tensor]], device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    for batch in batches:
        yield {k: v.to(device) for k, v in batch.items()}


def prepare_supernet(supernet: SuperNetwork, config: Config, task: Task, run_dir: RunDirectory,
                     corpus: PretrainingCorpus | None = None) -> dict[str, Any]:
    """Stage one: the super-network trained, or loaded from the run folder when an earlier run of this search saved it.
    With ``corpus`` (trainer.pretrain.steps > 0) its body is first pre-trained on it, once for the whole search: a
    super-network of the family's masked or causal LM, trained with the same sampling rule for ``trainer.pretrain.steps``
    steps, whose body then moves into the task's super-network. Returns {"losses", "pretrain_losses", "seconds", "loaded"}."""
    settings = supernet_settings(config)
    if run_dir.supernet.is_file():
        saved = _load(run_dir)
        if saved["settings"] != settings:
            raise ResumeError(f"resume: {run_dir.supernet} was trained with other settings ({saved['settings']}), not {settings}")
        supernet.model.load_state_dict(saved["model"])
        log.info("super-network loaded from %s (%d steps)", run_dir.supernet, len(saved["losses"]))
        return {"losses": saved["losses"], "pretrain_losses": saved.get("pretrain_losses", []), "seconds": saved["seconds"], "loaded": True}
    e = config.evaluation
    device = resolve_device(config.trainer.device)
    started = time.perf_counter()
    ends = None  # the sandwich rule's largest and smallest valid architectures; uniform sampling needs neither
    if e.sampling == "sandwich":
        ends = extremes(supernet.space, lambda a: parameter_count(supernet.subnet_config(a), task.name), seed=config.seed)
    pretrain_losses: list[float] = []
    if corpus is not None:
        pretrain_losses = pretrain_supernet(supernet, corpus, config, ends)
    rng = np.random.default_rng(config.seed)
    batches = _on_device(task.train_batches(config.trainer.batch_size, torch.Generator().manual_seed(config.seed)), device)
    log.info("training the super-network %s: %d steps x %d subnets (%s)", supernet.architecture, e.supernet_steps, 2 + e.random_subnets,
             e.sampling)
    losses = train_supernet(supernet, batches, e.supernet_steps, e.learning_rate, subnet_sampler(config, supernet.space, rng, ends),
                            seed=config.seed)
    seconds = time.perf_counter() - started
    state = {k: v.detach().cpu() for k, v in supernet.model.state_dict().items()}
    write_atomically(run_dir.supernet, serialized({"format": SUPERNET_FORMAT, "settings": settings, "losses": losses,
                                                   "pretrain_losses": pretrain_losses, "seconds": seconds, "model": state}))
    return {"losses": losses, "pretrain_losses": pretrain_losses, "seconds": seconds, "loaded": False}


def subnet_sampler(config: Config, space: SearchSpace, rng: np.random.Generator, ends: tuple[Architecture, Architecture] | None) -> Any:
    """step -> the subnets trained at that step, by ``evaluation.sampling``."""
    e = config.evaluation
    if e.sampling == "uniform":
        return lambda step: uniform(space, rng, 2 + e.random_subnets)
    return lambda step: sandwich(space, rng, ends, e.random_subnets)


def pretrain_supernet(supernet: SuperNetwork, corpus: PretrainingCorpus, config: Config,
                      ends: tuple[Architecture, Architecture] | None) -> list[float]:
    """Pre-train ``supernet``'s body once: a super-network of the family's self-supervised model (the same largest
    architecture, its subnets sliced alike), ``trainer.pretrain.steps`` steps on the corpus, then its body is
    copied into ``supernet`` (the task head stays as initialised). Returns the mean subnet loss of each step."""
    pretrain = config.trainer.pretrain
    objective = pretraining_objective(supernet.family)
    lm = SuperNetwork(supernet.space, supernet.family, supernet.task, supernet.fixed, seed=config.seed,
                      builder=lambda hf_config: build_pretraining_model(hf_config)[1])
    device = resolve_device(config.trainer.device)
    lm.model.to(device)
    rng = np.random.default_rng(config.seed)
    log.info("pre-training the super-network (%s): %d steps x %d subnets", objective, pretrain.steps, 2 + config.evaluation.random_subnets)
    losses = train_supernet(lm, _on_device(corpus.batches(objective, seed=config.seed), device), pretrain.steps, pretrain.learning_rate,
                            subnet_sampler(config, lm.space, rng, ends), seed=config.seed)
    transfer_body(lm.model, supernet.model)
    return losses


def _load(run_dir: RunDirectory) -> dict[str, Any]:
    try:
        saved = torch.load(run_dir.supernet, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ResumeError(f"resume: '{run_dir.supernet}' is not a readable super-network: {type(exc).__name__}: {exc}") from None
    if not isinstance(saved, dict) or saved.get("format") != SUPERNET_FORMAT:
        raise ResumeError(f"resume: '{run_dir.supernet}' is not a nas super-network (no '{SUPERNET_FORMAT}' format tag)")
    return saved


class SharedWeightsObjective:
    """Stage two's objective: an architecture's validation metrics with the super-network's weights, no training. The
    reward is minus the validation loss (``evaluation.score=loss``) or the task's reward (``metric``), then objective.*
    when a cost is traded, as for a standalone candidate."""

    def __init__(self, supernet: SuperNetwork, task: Task, config: Config):
        self.supernet, self.task, self.config = supernet, task, config

    def __call__(self, architecture: Architecture) -> Outcome:
        info: dict[str, Any] = {"steps": 0}
        try:
            net = self.supernet.subnet(architecture)  # its config built once, for the count and the model alike
            info["num_parameters"] = parameter_count(net.config, self.task.name)
            self.config.objective.check(info)  # hard budget: failed before it is scored, as a standalone candidate
            started = time.perf_counter()
            metrics = evaluate(net, self.task, self.config.trainer.eval_batch_size)
            info["eval_seconds"] = time.perf_counter() - started
        except Exception as exc:  # recorded as failed; the search goes on
            return Outcome(None, "failed", describe_failure(exc), info)
        if self.config.evaluation.score == "loss" and "loss" not in metrics:
            return Outcome(None, "failed", f"evaluation.score=loss but the task reports no loss (it reports: {', '.join(metrics)}); "
                                           "use evaluation.score=metric", info)
        metric_reward = -metrics["loss"] if self.config.evaluation.score == "loss" else self.task.reward(metrics)
        info.update(metrics=metrics, metric_reward=metric_reward)
        objective = self.config.objective
        return Outcome(objective.reward(metric_reward, info) if objective.enabled else metric_reward, "ok", None, info)


def shortlist(scores: Sequence[CandidateRecord], k: int) -> list[Architecture]:
    """The ``k`` best-scored architectures, best first (ties: the one scored first)."""
    ranked = sorted((r for r in scores if r.ok), key=lambda r: (-r.reward, r.index))
    return [r.architecture for r in ranked[:k]]


class Shortlist:
    """Stage three's strategy: proposes the shortlisted architectures, in order, all in one batch."""

    name = "shortlist"

    def __init__(self, architectures: Sequence[Architecture]):
        self.architectures = [dict(a) for a in architectures]
        self.iteration_stats: list[dict[str, Any]] = []
        self._next = 0

    def ask(self) -> Proposal | None:
        if self._next >= len(self.architectures):
            return None
        self._next += 1
        return Proposal(self.architectures[self._next - 1], iteration=0, episode=self._next - 1, step=0)

    def tell(self, proposal: Proposal, value: float | None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}


def search_shared(supernet: SuperNetwork, config: Config, task: Task, space: SearchSpace, strategy: Any, run_dir: RunDirectory,
                  tracker: Any, on_iteration: Any, corpus: PretrainingCorpus | None = None) -> Shortlist:
    """Stages one and two: the super-network trained (or loaded) and logged, then ``strategy`` run over weight-sharing
    scores until ``config.budget`` (a resume replays the scores recorded); returns stage three's shortlist."""
    from tqdm.auto import tqdm

    from nas.search import run_loop

    trained = prepare_supernet(supernet, config, task, run_dir, corpus)
    if not trained["loaded"] or not tracker.has_supernet_run():
        tracker.log_supernet({"architecture": supernet.architecture, **supernet_settings(config)}, trained["losses"], trained["seconds"],
                             trained["pretrain_losses"])
    scorer = SharedWeightsObjective(supernet, task, config)
    replay = [r.to_evaluation() for r in run_dir.read_scores()]
    bar = tqdm(total=config.budget, desc=f"{strategy.name} over weight-sharing scores", unit="cand", disable=not config.progress)

    def on_score(e) -> None:
        run_dir.append_score(CandidateRecord.from_evaluation(e))
        bar.update()

    started = time.perf_counter()
    try:
        run_loop(space, strategy, scorer, config.budget, on_score, on_iteration, replay=replay, on_replay=lambda e: bar.update())
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    scores = run_dir.read_scores()
    tracker.log_table(scores_table(scores), SCORES_TABLE)
    new = len(scores) - len(replay)
    if new:  # the strategy's own time included: what a user waits for per score
        tracker.log_metrics({"ws_scores_per_minute": new / seconds * 60}, step=0)
    best = max((r for r in scores if r.ok), key=lambda r: r.reward, default=None)
    log.info("%d architectures scored with shared weights (%d failed) in %.1f s; the best %s: %s", len(scores),
             sum(not r.ok for r in scores), seconds, f"{best.reward:.4f}" if best else "-", best.architecture if best else "-")
    return Shortlist(shortlist(scores, config.evaluation.top_k))


def scores_table(records: Sequence[CandidateRecord]) -> dict[str, list[Any]]:
    """The weight-sharing scores as columns (mlflow.log_table's form): one row per scored architecture."""
    names = sorted({k for r in records for k in r.architecture})
    metrics = sorted({k for r in records for k in r.metrics})
    return {"index": [r.index for r in records], "architecture_hash": [r.architecture_hash for r in records],
            **{name: [json.dumps(r.architecture.get(name)) if not isinstance(r.architecture.get(name), (int, float, str))
                      else r.architecture.get(name) for r in records] for name in names},
            "status": [r.status for r in records], "reward": [r.reward for r in records],
            **{f"ws_{m}": [r.metrics.get(m) for r in records] for m in metrics},
            "num_parameters": [r.num_parameters for r in records], "iteration": [r.iteration for r in records]}
