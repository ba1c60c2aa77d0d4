"""One candidate: build its transformers model from an architecture, train it, score it. ``train_architecture`` is
how an architecture trains, in the search and in nas-final (nas.final) alike.

Kept apart from the runner (which imports MLflow) so worker processes and Ray tasks that train
candidates load only what training needs.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from nas.config import Config
from nas.errors import BadInput
from nas.evaluators import describe_failure
from nas.latency import measure_latency
from nas.models import build_config, build_model, build_pretraining_model, parameter_count
from nas.pretrain import PretrainingCorpus, transfer_body
from nas.search import Evaluation, Outcome
from nas.space import Architecture, architecture_key
from nas.tasks import Task
from nas.tasks.base import LocalCache
from nas.train import RecordedBatches, TrainerConfig, TrainResult, fit, resolve_device, train_and_evaluate

CONFIGS_KEPT = 64  # HF configs CandidateObjective keeps, the latest architectures


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; ``seed`` (the config's) must be what NumPy's legacy seeding takes."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise BadInput(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def candidate_seed(seed: int, architecture: Architecture) -> int:
    """Model init is seeded by the architecture, data order by the search seed: a candidate's
    metric does not depend on when in the search it is evaluated."""
    arch_seed = zlib.crc32(json.dumps(architecture, sort_keys=True, default=str).encode())
    return (seed * 1_000_003 + arch_seed) % 2**63


def seeded_stream(train_batches: Callable[[int, torch.Generator], Iterator[dict[str, torch.Tensor]]], batch_size: int,
                  seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """A task's training stream in the order ``seed`` gives (a fresh generator each call: the same batches each time)."""
    return train_batches(batch_size, torch.Generator().manual_seed(seed))


def train_architecture(hf_config, task: Task, trainer: TrainerConfig, seed: int, architecture: Architecture, *,
                       pretrain_batches: Callable[[str], Iterator[dict[str, torch.Tensor]]] | None = None,
                       batches: Iterable[dict[str, torch.Tensor]] | None = None, checkpoints: Sequence[int] = (),
                       keep_training: Callable[[int, dict[str, float]], bool] | None = None,
                       info: dict[str, Any] | None = None) -> tuple[torch.nn.Module, TrainResult, dict[str, Any]]:
    """How an architecture trains, in the search (CandidateObjective) and in nas-final alike: the initialisation
    ``candidate_seed(seed, architecture)`` gives; with ``pretrain_batches`` (pre-training objective, mlm | clm ->
    its batches), first ``trainer.pretrain.steps`` self-supervised steps of the body, which the task model then
    takes over (``transfer_body``); then ``trainer.max_steps`` steps on the task's training stream (data order:
    ``seed``), and the validation metrics.

    What differs between the callers is theirs to give: ``batches`` (the training stream recorded beforehand,
    nas.train.RecordedBatches; default: made here), and the multi-fidelity ``checkpoints`` and ``keep_training``
    (nas.train.train_and_evaluate). Returns the trained task model, its TrainResult and ``info`` (a new dict
    when not given), which gets pretrain_objective, pretrain_losses and pretrain_seconds as soon as the
    pre-training is done: a fine-tuning that fails afterwards keeps them."""
    info = {} if info is None else info
    torch.manual_seed(candidate_seed(seed, architecture))
    if pretrain_batches is not None:
        objective, pretrained = build_pretraining_model(hf_config)
        pretrained.to(resolve_device(trainer.device))
        losses, seconds = fit(pretrained, pretrain_batches(objective), trainer.pretrain.steps, trainer.pretrain.learning_rate, trainer)
        info.update(pretrain_objective=objective, pretrain_losses=losses, pretrain_seconds=seconds)
        model = build_model(hf_config, task.name)
        transfer_body(pretrained, model)
        del pretrained
    else:
        model = build_model(hf_config, task.name)
    trained = train_and_evaluate(model, task, trainer, data_seed=seed, checkpoints=checkpoints, keep_training=keep_training,
                                 batches=batches)
    return model, trained, info


class CandidateObjective:
    """Builds, trains and scores one architecture. The metric depends only on (seed, architecture)."""

    def __init__(self, task: Task, config: Config, corpus: PretrainingCorpus | None = None):
        self.task = task
        self.config = config
        self.model_type = config.search_space.family
        self.fixed = {**task.config_fields(), **config.search_space.fixed}
        self.corpus = corpus  # set: pre-train on it, then fine-tune (trainer.pretrain)
        self.objective = config.objective
        self.fidelity = config.fidelity
        self.checkpoint_rewards: dict[int, list[float]] = {}  # multi-fidelity: rewards recorded at each checkpoint step
        self.peers: dict[int, list[float]] = {}  # those of earlier batches: what this batch's hurdles compare against
        self._configs = LocalCache()  # architecture key -> its HF config (hf_config)
        device = config.trainer.device
        # Every candidate trains on the same batches (the search seed's data order): made once, replayed to each.
        self.train_batches = RecordedBatches(functools.partial(seeded_stream, task.train_batches, config.trainer.batch_size, config.seed),
                                             device) if getattr(task, "seeded_batches", False) else None
        self.pretrain_batches = {objective: RecordedBatches(functools.partial(corpus.batches, objective, seed=config.seed), device)
                                 for objective in ("mlm", "clm")} if corpus is not None else {}

    # The hurdles of a batch compare against candidates of earlier batches only, so a candidate's fate
    # does not depend on which of its batch-mates happened to finish first (see nas.evaluators).
    def batch_state(self) -> dict[int, list[float]] | None:
        return {step: list(rewards) for step, rewards in self.checkpoint_rewards.items()} if self.fidelity.steps else None

    def set_batch_state(self, state: dict[int, list[float]]) -> None:
        self.peers = state

    def observe(self, evaluation: Evaluation) -> None:
        """Record an evaluated candidate's rewards at the checkpoints it reached."""
        for step, metrics in evaluation.info.get("checkpoints") or []:
            if int(step) in self.fidelity.steps:
                self.checkpoint_rewards.setdefault(int(step), []).append(self.task.reward(metrics))

    def hf_config(self, architecture: Architecture):
        """The architecture's HF config, built once (the candidate's training, its MLflow config.json and best/ all ask);
        each caller gets its own copy, since building a model writes into its config."""
        key = architecture_key(architecture)
        if key not in self._configs:
            if len(self._configs) >= CONFIGS_KEPT:
                del self._configs[next(iter(self._configs))]  # the oldest: its candidate is recorded by now
            self._configs[key] = build_config(self.model_type, architecture, self.fixed)
        return copy.deepcopy(self._configs[key])

    def __call__(self, architecture: Architecture) -> Outcome:
        hf_config = self.hf_config(architecture)
        info: dict[str, Any] = {"num_parameters": parameter_count(hf_config, self.task.name)}
        trainer = self.config.trainer
        try:
            if self.objective.cost == "latency_ms":  # before training: weights do not change the compute
                torch.manual_seed(candidate_seed(self.config.seed, architecture))  # the candidate's init (train_architecture seeds afresh)
                latency_model = build_model(hf_config, self.task.name).to(resolve_device(trainer.device))
                batch = next(self.task.train_batches(trainer.eval_batch_size, torch.Generator().manual_seed(self.config.seed)))
                info["latency_ms"] = measure_latency(latency_model, batch)
                del latency_model
            self.objective.check(info)  # a hard budget fails the candidate before any training
            # The search's own: its recorded batches, and the fidelity checkpoints with their hurdles.
            _, trained, _ = train_architecture(hf_config, self.task, trainer, self.config.seed, architecture,
                                               pretrain_batches=self._pretrain_stream if self.corpus is not None else None,
                                               batches=self.train_batches, checkpoints=self.fidelity.steps,
                                               keep_training=self._keep_training if self.fidelity.steps else None, info=info)
        except Exception as exc:  # recorded as a failed candidate; the search goes on
            return Outcome(None, "failed", describe_failure(exc), info)
        metric_reward = self.task.reward(trained.metrics)
        info.update(metrics=trained.metrics, losses=trained.losses, train_seconds=trained.train_seconds, eval_seconds=trained.eval_seconds,
                    steps=trained.steps, checkpoints=trained.checkpoints, metric_reward=metric_reward)
        return Outcome(self.objective.reward(metric_reward, info) if self.objective.enabled else metric_reward, "ok", None, info)

    def _keep_training(self, step: int, metrics: dict[str, float]) -> bool:
        """Progressive hurdles: go on when this checkpoint's reward is in the top ``promote`` share of those seen there."""
        reward = self.task.reward(metrics)
        peers = self.peers.get(step, [])
        return len(peers) < self.fidelity.min_peers or reward >= float(np.quantile(peers, 1 - self.fidelity.promote))

    def _pretrain_stream(self, objective: str) -> Iterator[dict[str, torch.Tensor]]:
        """The corpus's batches for ``objective`` (mlm | clm) in the search seed's order, recorded once for every candidate."""
        return iter(self.pretrain_batches[objective])
