"""MLflow for ``nas-final``: find a finished search's runs, log the final model, register it.

Beside nas.tracking (the search's runs), the other module that imports mlflow. Nothing here reaches
the internet: nas.final turns MLflow's telemetry off before mlflow is imported, the model card is
written here rather than fetched from the Hugging Face Hub, and pip requirements are given rather
than inferred.

Flavour: ``transformers`` (model + tokenizer / image processor / feature extractor, loadable as a
pipeline or as components with ``mlflow.transformers.load_model``) for every task that has a
transformers pipeline. transformers 5 removed the text2text / translation pipelines, so the
transformers flavour cannot save a translation model; it is logged with the ``pytorch`` flavour
(pickled module) and its tokenizer and config files as ``extra_files``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from nas.errors import BadInput
from nas.tasks import task_spec
from nas.tracking import MAX_PARAM_LENGTH, default_artifact_location, open_store, resolve_uri

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # the logged model's name in its run


def flavour(task: str) -> str:
    """transformers for a task whose spec names a pipeline (TaskSpec.pipeline), pytorch for the others."""
    return "transformers" if task_spec(task).pipeline else "pytorch"


def pip_requirements(task: str) -> list[str]:
    """Pinned to what trained the model; given explicitly, so MLflow does not spend time inferring them."""
    pins = []
    for package in ("torch", "transformers", "tokenizers", *task_spec(task).requirements):
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")  # torch 2.x+cpu -> torch==2.x
        except PackageNotFoundError:
            pins.append(package)
    return pins


class RunNotFound(BadInput, LookupError):
    pass


def get_run(uri: str, run_id: str):
    """The run ``run_id`` in the store at ``uri``; RunNotFound when it is not there."""
    try:
        return open_store(uri).get_run(run_id)
    except MlflowException as exc:
        raise RunNotFound(f"MLflow run '{run_id}' not found in {resolve_uri(uri)} ({exc.error_code})") from exc


def parent_run_id(run) -> str | None:
    return run.data.tags.get(MLFLOW_PARENT_RUN_ID)


def experiment_id(uri: str, name: str) -> str:
    """The experiment called ``name``, created (artifacts beside a sqlite store) when missing."""
    client = open_store(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=default_artifact_location(resolve_uri(uri)))


@dataclass
class LoggedFinal:
    run_id: str
    experiment_id: str
    model_uri: str  # models:/m-<id>
    flavour: str
    registered_name: str
    registered_version: str
    source: str  # the model version's source (the logged model's artifacts)


@contextlib.contextmanager
def _store(uri: str) -> Iterator[None]:
    """mlflow's fluent API (log_model needs it) pointed at ``uri`` for the block, then restored."""
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def log_final_model(uri: str, experiment: str, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any],
                    metrics: Mapping[str, float], losses: list[tuple[int, float]], model, preprocessor, task: str,
                    files: list[Path], register_as: str, card: str, description: str = "") -> LoggedFinal:
    """One run in ``experiment`` (an id) with ``params``, ``metrics`` and the ``train_loss`` curve; the model
    logged in it (linked to the metrics) and registered as a new version of ``register_as``. ``files``: the
    saved config and preprocessor files, shipped beside a pytorch-flavour model."""
    from huggingface_hub import ModelCard

    uri = resolve_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    requirements = pip_requirements(task)
    with _store(uri), mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=dict(tags)) as run:
        run_id = run.info.run_id
        flat = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for i in range(0, len(flat), 100):  # MLflow caps a batch at 100 params
            client.log_batch(run_id, params=flat[i : i + 100])
        curve = [Metric("train_loss", loss, 0, step) for step, loss in losses]
        for i in range(0, len(curve), 1000):  # and at 1000 metrics
            client.log_batch(run_id, metrics=curve[i : i + 1000])
        if task_spec(task).pipeline:
            pipeline_task, component = task_spec(task).pipeline
            # A local model card: without one, MLflow tries to fetch the base model's card from the Hub.
            info = mlflow.transformers.log_model({"model": model, component: preprocessor}, name=MODEL_NAME, task=pipeline_task,
                                                 model_card=ModelCard(card), pip_requirements=requirements)
        else:
            info = mlflow.pytorch.log_model(model, name=MODEL_NAME, serialization_format="pickle", extra_files=[str(f) for f in files],
                                            pip_requirements=requirements, signature=False,
                                            metadata={"load": "mlflow.pytorch.load_model; tokenizer and config in extra_files/"})
        mlflow.log_metrics(dict(metrics), model_id=info.model_id)  # on the run and on the logged model
    version = mlflow_register(uri, info.model_uri, register_as, {**tags, "run_id": run_id}, description)
    return LoggedFinal(run_id, experiment, info.model_uri, flavour(task), version.name, str(version.version), version.source)


NEWEST = "newest"  # the alias of a registered model's newest version (MLflow reserves "latest")


def mlflow_register(uri: str, model_uri: str, name: str, tags: Mapping[str, str], description: str = ""):
    """A new version of ``name`` with ``description``; the alias ``newest`` moves to it (models:/<name>@newest)."""
    with _store(uri):
        version = mlflow.register_model(model_uri, name, tags=dict(tags))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if description:
        client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, NEWEST, version.version)
    return version
