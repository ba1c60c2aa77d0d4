"""MLflow tracking: one parent run per search, one nested child run per evaluated candidate.

The only module that imports mlflow. It uses MlflowClient with explicit run ids, so nothing
depends on mlflow's global "active run" state. A candidate's run is created at once (its id goes
into candidates.jsonl); its params, metrics, config and status are written by one background
thread, in order, while the next candidate trains. ``flush`` (called by ``end_search``) waits for
them and raises the first logging error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from nas.search import Evaluation

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


def resolve_uri(uri: str) -> str:
    """Make a relative sqlite path absolute (against the working directory) and create its folder."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        path = path if path.is_absolute() else Path.cwd() / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return uri


def default_artifact_location(uri: str) -> str | None:
    """mlartifacts/ beside a sqlite store; a tracking server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
    return None


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and key != "search_space.dimensions":
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


def _now() -> int:
    return int(time.time() * 1000)


def download_run_artifact(uri: str, run_id: str, artifact_path: str, dst_dir: Path) -> Path:
    """A file logged to run ``run_id`` in the store at ``uri``, downloaded into ``dst_dir``."""
    client = MlflowClient(tracking_uri=resolve_uri(uri))
    client.get_run(run_id)  # raises a clear MlflowException when the run does not exist
    dst_dir.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, artifact_path, str(dst_dir)))


class Tracker:
    def __init__(self, uri: str, experiment_name: str, artifact_location: str | None = None):
        self.uri = resolve_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            location = artifact_location or default_artifact_location(self.uri)
            self.experiment_id = self.client.create_experiment(experiment_name, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id
        self.parent_id: str | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nas-mlflow")  # one thread keeps writes in order
        self._pending: list[Future] = []

    def _in_background(self, fn: Callable, *args: Any) -> None:
        self._raise_failures(wait=False)  # a store that stopped working fails the search at the next candidate
        self._pending.append(self._writer.submit(fn, *args))

    def _raise_failures(self, wait: bool) -> None:
        for future in [f for f in self._pending if wait or f.done()]:
            self._pending.remove(future)
            future.result()  # re-raises the logging error

    def flush(self) -> None:
        """Wait until everything logged so far is in the store."""
        self._raise_failures(wait=True)

    def start_search(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        self.parent_id = run.info.run_id
        flat = flatten(params)
        self._log(self.parent_id, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in flat.items()])
        return self.parent_id

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A file or a whole folder, as an artifact of the search's parent run."""
        if path.is_dir():
            self.client.log_artifacts(self.parent_id, str(path), artifact_path)
        elif path.exists():
            self.client.log_artifact(self.parent_id, str(path), artifact_path)

    def log_candidate(self, evaluation: Evaluation, hf_config_json: str | None) -> str:
        """A nested child run for one evaluated candidate; returns its run id."""
        e = evaluation
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_id, "iteration": str(e.iteration), "episode": str(e.episode),
            "step": str(e.step), "architecture_hash": e.key, "status": e.status,
        }
        if e.error:
            tags["error"] = e.error[:5000]
        run = self.client.create_run(self.experiment_id, run_name=f"candidate-{e.index:03d}-{e.key}", tags=tags)
        run_id = run.info.run_id
        self._in_background(self._log_candidate_body, run_id, e, hf_config_json)
        return run_id

    def _log_candidate_body(self, run_id: str, e: Evaluation, hf_config_json: str | None) -> None:
        ts = _now()
        info = e.info
        # Validation metrics at the training step they were measured (several steps under multi-fidelity).
        checkpoints = info.get("checkpoints") or [(info.get("steps", 0), info.get("metrics", {}))]
        metrics = [Metric(k, float(v), ts, int(step)) for step, values in checkpoints for k, v in values.items()]
        scalars = {"reward": e.value, "num_parameters": info.get("num_parameters"), "train_seconds": info.get("train_seconds"),
                   "eval_seconds": info.get("eval_seconds"), "pretrain_seconds": info.get("pretrain_seconds"), "seconds": e.seconds,
                   "latency_ms": info.get("latency_ms"), "metric_reward": info.get("metric_reward"), "steps": info.get("steps")}
        metrics += [Metric(k, float(v), ts, 0) for k, v in scalars.items() if v is not None]
        metrics += [Metric("train_loss", loss, ts, step) for step, loss in info.get("losses", [])]
        metrics += [Metric("pretrain_loss", loss, ts, step) for step, loss in info.get("pretrain_losses", [])]  # stage one
        params = [Param(k, str(v)) for k, v in e.architecture.items()]
        self._log(run_id, metrics=metrics, params=params)
        if hf_config_json:
            self.client.log_text(run_id, hf_config_json, "config.json")
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED if e.ok else RunStatus.FAILED))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        ts = _now()
        self._in_background(self._log, self.parent_id, [Metric(k, float(v), ts, step) for k, v in metrics.items()])

    def end_search(self, status: str = "FINISHED") -> None:
        try:
            self.flush()
        finally:
            self._writer.shutdown(wait=True)
            self.client.set_terminated(self.parent_id, status)

    def _log(self, run_id: str, metrics=(), params=(), tags=()) -> None:
        # MLflow caps a batch at 1000 metrics / 100 params.
        metrics, params = list(metrics), list(params)
        for i in range(0, max(len(metrics), 1), 1000):
            chunk_params = params[:100] if i == 0 else []
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000], params=chunk_params, tags=list(tags) if i == 0 else [])
        for i in range(100, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
