"""A whole search from typed config: task -> space -> strategy -> evaluate candidates -> outputs + MLflow.

Everything that can be checked cheaply (data files, columns, the search space) is checked before
the first candidate trains. Outputs are written as the search goes, so a crash loses nothing
already evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nas.config import Config
from nas.models import build_config, build_model, build_pretraining_model, make_space, parameter_count, pretraining_objective
from nas.objectives import load_records, measure_latency, write_pareto
from nas.pretrain import PretrainingCorpus, read_corpus, transfer_body
from nas.search import Evaluation, Outcome, SearchResult, run_loop
from nas.space import Architecture, SearchSpace
from nas.strategies import make_strategy
from nas.strategies.ppo import ControllerError
from nas.tasks import Task, make_task
from nas.tracking import Tracker, download_run_artifact
from nas.train import fit, resolve_device, train_and_evaluate

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def candidate_seed(seed: int, architecture: Architecture) -> int:
    """Model init is seeded by the architecture, data order by the search seed: a candidate's
    metric does not depend on when in the search it is evaluated."""
    arch_seed = zlib.crc32(json.dumps(architecture, sort_keys=True, default=str).encode())
    return (seed * 1_000_003 + arch_seed) % 2**63


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
        self.checkpoint_rewards: dict[int, list[float]] = {}  # multi-fidelity: rewards seen at each checkpoint step

    def hf_config(self, architecture: Architecture):
        return build_config(self.model_type, architecture, self.fixed)

    def __call__(self, architecture: Architecture) -> Outcome:
        hf_config = self.hf_config(architecture)
        info: dict[str, Any] = {"num_parameters": parameter_count(hf_config, self.task.name)}
        torch.manual_seed(candidate_seed(self.config.seed, architecture))
        trainer = self.config.trainer
        try:
            if self.objective.cost == "latency_ms":  # before training: weights do not change the compute
                latency_model = build_model(hf_config, self.task.name).to(resolve_device(trainer.device))
                batch = next(self.task.train_batches(trainer.eval_batch_size, torch.Generator().manual_seed(self.config.seed)))
                info["latency_ms"] = measure_latency(latency_model, batch)
                del latency_model
                torch.manual_seed(candidate_seed(self.config.seed, architecture))  # the same init as without the measurement
            self.objective.check(info)  # a hard budget fails the candidate before any training
            if self.corpus is not None:
                model = self._pretrained_model(hf_config, info)
            else:
                model = build_model(hf_config, self.task.name)
            trained = train_and_evaluate(model, self.task, trainer, data_seed=self.config.seed,
                                         checkpoints=self.fidelity.steps, keep_training=self._keep_training if self.fidelity.steps else None)
        except Exception as exc:  # recorded as a failed candidate; the search goes on
            return Outcome(None, "failed", f"{type(exc).__name__}: {exc}", info)
        metric_reward = self.task.reward(trained.metrics)
        info.update(metrics=trained.metrics, losses=trained.losses, train_seconds=trained.train_seconds, eval_seconds=trained.eval_seconds,
                    steps=trained.steps, checkpoints=trained.checkpoints, metric_reward=metric_reward)
        return Outcome(self.objective.reward(metric_reward, info) if self.objective.enabled else metric_reward, "ok", None, info)

    def _keep_training(self, step: int, metrics: dict[str, float]) -> bool:
        """Progressive hurdles: go on when this checkpoint's reward is in the top ``promote`` share of those seen there."""
        reward = self.task.reward(metrics)
        peers = self.checkpoint_rewards.setdefault(step, [])
        go_on = len(peers) < self.fidelity.min_peers or reward >= float(np.quantile(peers, 1 - self.fidelity.promote))
        peers.append(reward)
        return go_on


    def _pretrained_model(self, hf_config, info: dict[str, Any]) -> torch.nn.Module:
        """Stage one: self-supervised training of the body on the corpus; returns the task model holding that body."""
        trainer = self.config.trainer
        objective, pretrained = build_pretraining_model(hf_config)
        pretrained.to(resolve_device(trainer.device))
        batches = self.corpus.batches(objective, seed=self.config.seed)
        losses, seconds = fit(pretrained, batches, trainer.pretrain.steps, trainer.pretrain.learning_rate, trainer)
        info.update(pretrain_objective=objective, pretrain_losses=losses, pretrain_seconds=seconds)
        model = build_model(hf_config, self.task.name)
        transfer_body(pretrained, model)
        return model


def build_search_space(config: Config, task: Task, fixed: dict[str, Any]) -> SearchSpace:
    s = config.search_space
    return make_space(s.family, s.dimensions, task.name, fixed, s.max_params, name=s.family)


CONTROLLER_FILE = "controller.pt"
_RUN_ID = re.compile(r"^(?:runs:/)?([0-9a-f]{32})/?$")


def resolve_controller(init_from: str, tracking_uri: str) -> str:
    """``ppo.init_from`` as a local file: a controller.pt, a search's output directory, or an MLflow run id (runs:/<id>)."""
    path = Path(init_from)
    if path.is_file():
        return str(path)
    if path.is_dir():
        if not (path / CONTROLLER_FILE).is_file():
            raise ControllerError(f"ppo.init_from: directory '{path}' has no {CONTROLLER_FILE} (was it a PPO search?)")
        return str(path / CONTROLLER_FILE)
    match = _RUN_ID.match(init_from)
    if match is None:
        raise ControllerError(f"ppo.init_from: '{init_from}' is not a controller file, a search output directory or an MLflow run id")
    try:
        local = download_run_artifact(tracking_uri, match.group(1), CONTROLLER_FILE, Path(tempfile.mkdtemp(prefix="nas-controller-")))
    except Exception as exc:
        raise ControllerError(f"ppo.init_from: cannot fetch {CONTROLLER_FILE} of MLflow run '{match.group(1)}' from {tracking_uri}: {exc}") from exc
    return str(local)


def log_pareto_fronts(tracker: Tracker, config: Config, candidates_path: Path, output_dir: Path) -> None:
    """Metric vs parameter count (and vs latency when measured) of every candidate, the Pareto front marked."""
    records = load_records(candidates_path)
    costs = ["num_parameters"] + (["latency_ms"] if config.objective.cost == "latency_ms" else [])
    for cost in costs:
        for path in write_pareto(records, config.task.metric, cost, output_dir / "pareto", name=f"pareto_{cost}"):
            tracker.log_artifact(path, "pareto")


def run_search(config: Config, output_dir: Path, hydra_dir: Path | None = None) -> SearchResult:
    """Run the search ``config`` describes, writing outputs to ``output_dir`` and runs to MLflow."""
    seed_everything(config.seed)
    resolve_device(config.trainer.device)  # a missing GPU fails here, not in every candidate
    config.objective.validate()
    config.fidelity.validate(config.trainer.max_steps)
    output_dir.mkdir(parents=True, exist_ok=True)
    pretrain = config.trainer.pretrain
    corpus_texts = read_corpus(pretrain, config.task.name.value) if pretrain.steps > 0 else []
    task = make_task(config.task, tokenizer_texts=corpus_texts)
    corpus = None
    if corpus_texts:
        objective_name = pretraining_objective(config.search_space.family)
        corpus = PretrainingCorpus(corpus_texts, task.preprocessor, task.config_fields()["max_position_embeddings"], pretrain)
        corpus.check(objective_name)
    objective = CandidateObjective(task, config, corpus)
    space = build_search_space(config, task, objective.fixed)  # the same task-derived fields the candidates get
    ppo = config.ppo
    if ppo.init_from and config.strategy.value == "ppo":
        ppo = dataclasses.replace(ppo, init_from=resolve_controller(ppo.init_from, config.tracking.uri))
    strategy = make_strategy(config.strategy.value, space, seed=config.seed, ppo=ppo, initial=config.search_space.initial,
                             evolution=config.evolution, tpe=config.tpe)
    controller_path = output_dir / CONTROLLER_FILE

    tracker = Tracker(config.tracking.uri, config.tracking.experiment_name, config.tracking.artifact_location)
    run_name = config.tracking.run_name or f"{config.strategy.value}-{task.name}-seed{config.seed}"
    tracker.start_search(run_name, OmegaConf.to_container(OmegaConf.structured(config), resolve=True),
                         tags={"strategy": config.strategy.value, "task": task.name, "family": config.search_space.family,
                               "output_dir": str(output_dir)})
    if hydra_dir is not None:
        tracker.log_artifact(hydra_dir, ".hydra")
    candidates_path = output_dir / "candidates.jsonl"
    candidates_path.write_text("")
    total = config.budget or (config.ppo.iterations or 0) * config.ppo.population_size * config.ppo.horizon or None
    progress = tqdm(total=total, desc=f"{config.strategy.value} search", unit="cand", disable=not config.progress)
    best = {"value": -float("inf")}

    def on_evaluation(e: Evaluation) -> None:
        try:
            hf_config = objective.hf_config(e.architecture)
        except Exception:  # the candidate failed because its config cannot be built
            hf_config = None
        run_id = tracker.log_candidate(e, hf_config.to_json_string(use_diff=True) if hf_config is not None else None)
        if e.ok and e.value > best["value"]:
            best.update(value=e.value, hf_config=hf_config)
        if best["value"] > -float("inf"):
            tracker.log_metrics({"best_reward": best["value"]}, step=e.index)
        record = {"index": e.index, "architecture": e.architecture, "architecture_hash": e.key, "status": e.status,
                  "reward": e.value, "metrics": e.info.get("metrics", {}), "num_parameters": e.info.get("num_parameters"),
                  "train_seconds": e.info.get("train_seconds"), "eval_seconds": e.info.get("eval_seconds"),
                  "pretrain_seconds": e.info.get("pretrain_seconds"), "latency_ms": e.info.get("latency_ms"),
                  "metric_reward": e.info.get("metric_reward"), "steps": e.info.get("steps"),
                  "checkpoints": e.info.get("checkpoints", []),
                  "seconds": e.seconds, "iteration": e.iteration, "episode": e.episode, "step": e.step,
                  "error": e.error, "mlflow_run_id": run_id}
        with candidates_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        progress.set_postfix(best=f"{best['value']:.4f}", last=f"{e.value:.4f}" if e.ok else e.status)
        progress.update()

    def on_iteration(stats: dict[str, Any]) -> None:
        if hasattr(strategy, "save_controller"):  # after every update: a later search can warm-start from it
            strategy.save_controller(controller_path)
        tracker.log_metrics({k: v for k, v in stats.items() if k != "iteration" and np.isfinite(v)}, step=stats["iteration"])
        log.info("iteration %d: %s", stats["iteration"], ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if k != "iteration"))

    status = "FAILED"
    try:
        with logging_redirect_tqdm():  # log lines above the progress bar, not through it
            result = run_loop(space, strategy, objective, config.budget, on_evaluation, on_iteration)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        progress.close()
        if "hf_config" in best:
            best_dir = output_dir / "best"
            best["hf_config"].save_pretrained(best_dir)
            task.preprocessor.save_pretrained(best_dir)
            tracker.log_artifact(best_dir / "config.json", "best")
        tracker.log_artifact(candidates_path)
        tracker.log_artifact(controller_path)
        log_pareto_fronts(tracker, config, candidates_path, output_dir)
        tracker.end_search(status)

    b = result.best
    log.info("evaluated %d candidates (%d failed)", len(result.history), sum(not e.ok for e in result.history))
    if b is not None:
        log.info("best reward %.4f, metrics %s, %s parameters: %s", b.value, b.info.get("metrics"), b.info.get("num_parameters"), b.architecture)
        log.info("best architecture: %s", output_dir / "best" / "config.json")
    log.info("MLflow store: %s (experiment '%s', run %s)", tracker.uri, config.tracking.experiment_name, tracker.parent_id)
    return result
