"""A whole search from typed config: task -> space -> strategy -> evaluate candidates -> outputs + MLflow.

Everything that can be checked cheaply (data files, columns, the search space) is checked before
the first candidate trains. Outputs are written as the search goes, so a crash loses nothing
already evaluated.
"""

from __future__ import annotations

import json
import logging
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nas.config import Config
from nas.models import build_config, build_model, make_space, parameter_count
from nas.search import Evaluation, Outcome, SearchResult, run_loop
from nas.space import Architecture, SearchSpace
from nas.strategies import make_strategy
from nas.tasks import Task, make_task
from nas.tracking import Tracker
from nas.train import resolve_device, train_and_evaluate

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class CandidateObjective:
    """Builds, trains and scores one architecture. The metric depends only on (seed, architecture)."""

    def __init__(self, task: Task, config: Config):
        self.task = task
        self.config = config
        self.model_type = config.search_space.family
        self.fixed = {**task.config_fields(), **config.search_space.fixed}

    def hf_config(self, architecture: Architecture):
        return build_config(self.model_type, architecture, self.fixed)

    def __call__(self, architecture: Architecture) -> Outcome:
        hf_config = self.hf_config(architecture)
        info: dict[str, Any] = {"num_parameters": parameter_count(hf_config, self.task.name)}
        # Model init is seeded by the architecture, data order by the search seed: a candidate's
        # metric does not depend on when in the search it is evaluated.
        arch_seed = zlib.crc32(json.dumps(architecture, sort_keys=True, default=str).encode())
        torch.manual_seed((self.config.seed * 1_000_003 + arch_seed) % 2**63)
        try:
            model = build_model(hf_config, self.task.name)
            trained = train_and_evaluate(model, self.task, self.config.trainer, data_seed=self.config.seed)
        except Exception as exc:  # recorded as a failed candidate; the search goes on
            return Outcome(None, "failed", f"{type(exc).__name__}: {exc}", info)
        info.update(metrics=trained.metrics, losses=trained.losses, train_seconds=trained.train_seconds, eval_seconds=trained.eval_seconds)
        return Outcome(self.task.reward(trained.metrics), "ok", None, info)


def build_search_space(config: Config, task: Task, fixed: dict[str, Any]) -> SearchSpace:
    s = config.search_space
    return make_space(s.family, s.dimensions, task.name, fixed, s.max_params, name=s.family)


def run_search(config: Config, output_dir: Path, hydra_dir: Path | None = None) -> SearchResult:
    """Run the search ``config`` describes, writing outputs to ``output_dir`` and runs to MLflow."""
    seed_everything(config.seed)
    resolve_device(config.trainer.device)  # a missing GPU fails here, not in every candidate
    output_dir.mkdir(parents=True, exist_ok=True)
    task = make_task(config.task)
    objective = CandidateObjective(task, config)
    space = build_search_space(config, task, objective.fixed)  # the same task-derived fields the candidates get
    strategy = make_strategy(config.strategy.value, space, seed=config.seed, ppo=config.ppo, initial=config.search_space.initial)

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
                  "seconds": e.seconds, "iteration": e.iteration, "episode": e.episode, "step": e.step,
                  "error": e.error, "mlflow_run_id": run_id}
        with candidates_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        progress.set_postfix(best=f"{best['value']:.4f}", last=f"{e.value:.4f}" if e.ok else e.status)
        progress.update()

    def on_iteration(stats: dict[str, Any]) -> None:
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
        tracker.end_search(status)

    b = result.best
    log.info("evaluated %d candidates (%d failed)", len(result.history), sum(not e.ok for e in result.history))
    if b is not None:
        log.info("best reward %.4f, metrics %s, %s parameters: %s", b.value, b.info.get("metrics"), b.info.get("num_parameters"), b.architecture)
        log.info("best architecture: %s", output_dir / "best" / "config.json")
    log.info("MLflow store: %s (experiment '%s', run %s)", tracker.uri, config.tracking.experiment_name, tracker.parent_id)
    return result
