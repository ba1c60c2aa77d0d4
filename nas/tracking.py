"""MLflow tracking: one parent run per search, one nested child run per evaluated candidate.

With nas/registry.py (the final model), the only module that imports mlflow. It uses MlflowClient
with explicit run ids, so nothing depends on mlflow's global "active run" state. A candidate's run
is created when it is handed to a worker (RUNNING while it trains; its id goes into
candidates.jsonl); that run's creation, and later its metrics, config and status, are written by one
background thread, in order, while candidates train: the search waits for none of it (the run id is
first needed when the candidate's record is written). ``flush`` (called by ``end_search``) waits for
them and raises the first logging error.

Several searches may share one sqlite file (a Hydra multirun with the joblib launcher): the file's
tables are created under a file lock, and every call is retried with backoff while sqlite reports
the database locked, so no run is lost to a busy store.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from nas.errors import BadInput, ResumeError, SearchStopped
from nas.records import CandidateRecord

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
# Metric names, one per metric across a search and nas-final: val_<metric> (a candidate's and the final model's validation
# metrics), test_<metric> (nas-final only), reward (a candidate's), best_reward (the parent's best so far).
VAL_PREFIX, TEST_PREFIX = "val_", "test_"
ROLE_TAG = "nas.role"  # a child run that is no candidate: "supernet" (evaluation=weight_sharing)
RETRY_SECONDS = 120.0  # how long a store may be locked or unreachable before the search stops (tracking.retry_seconds)
MAX_WAIT = 10.0  # longest pause between two tries
# The writer thread's MLflow calls are Python (SQLAlchemy, protobuf) and hold the GIL. Started at once, a candidate's
# writes land on the next candidate's model construction and trainer set-up, also Python, which then took twice as
# long (measured: 13 against 6 ms for model build, 5.5 against 2.3 for set-up); a write that starts WRITE_DELAY later
# overlaps that candidate's training instead, whose torch kernels run without the GIL. Whoever needs a write done
# (a run id, a flush) cuts the delay short.
WRITE_DELAY = 0.03


class StoreUnavailable(SearchStopped):
    """The tracking store stayed locked or unreachable for the whole retry budget."""


def _transient(exc: BaseException) -> bool:
    """A store that is busy or away for now (worth retrying), rather than a request that is wrong."""
    text = str(exc)
    if "database is locked" in text or "database table is locked" in text:  # sqlite: another job is writing
        return True
    # A tracking server that is down, restarting or overloaded. MLflow reports connection failures as
    # "API request to ... failed with exception ..." and HTTP errors with their code.
    return "API request to" in text and ("failed with exception" in text or any(f"error code {c}" in text for c in (429, 500, 502, 503, 504)))


class RetryingClient:
    """An MlflowClient whose calls are retried, with jittered exponential backoff, while the store is locked
    (sqlite) or unreachable (a tracking server), for up to ``retry_seconds``; then StoreUnavailable, and every
    later call fails at once (the search stops at its next candidate instead of waiting again)."""

    def __init__(self, client: MlflowClient, retry_seconds: float = RETRY_SECONDS, first_wait: float = 0.05):
        self._client, self._retry_seconds, self._first_wait = client, retry_seconds, first_wait
        self.unavailable: StoreUnavailable | None = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.unavailable is not None:
                raise self.unavailable
            start = time.monotonic()
            for attempt in itertools.count():
                try:
                    return attribute(*args, **kwargs)
                except Exception as exc:
                    if not _transient(exc):
                        raise
                    waited = time.monotonic() - start
                    if waited >= self._retry_seconds:
                        reason = str(exc).strip().splitlines()[0][:300]
                        self.unavailable = StoreUnavailable(
                            f"the MLflow store at {self._client.tracking_uri} did not answer for {waited:.0f} s "
                            f"(tracking.retry_seconds={self._retry_seconds:g}): {reason}")
                        raise self.unavailable from exc
                    pause = min(MAX_WAIT, self._first_wait * 2**attempt) * (0.5 + random.random())
                    time.sleep(min(pause, max(0.0, self._retry_seconds - waited)) + 0.01)

        return call


# URI schemes of MLflow's tracking stores that nas can log to (a database through SQLAlchemy, a server, Databricks).
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")
URI_FORMS = "sqlite:///path/to/mlflow.db, http(s)://host:port, postgresql://..., mysql://..., mssql://... or databricks"


def check_uri_form(uri: str, key: str = "tracking.uri") -> None:
    """The forms MLflow 3 accepts for a tracking store, checked before anything connects. A plain folder
    (MLflow's file store) is refused: MLflow 3 keeps it only in maintenance mode and refuses it by default."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    base = scheme.split("+", 1)[0]  # postgresql+psycopg2://...
    if base == "sqlite":
        if not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///"):
            raise StoreUnreachable(f"{key}: '{uri}' is not a sqlite store MLflow can open: write sqlite:///relative/path.db "
                                   "or sqlite:////absolute/path.db (three slashes, then the path)")
        return
    if base in DATABASE_SCHEMES:
        if not parsed.netloc and not parsed.path:
            raise StoreUnreachable(f"{key}: '{uri}' names no database")
        return
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise StoreUnreachable(f"{key}: '{uri}' names no host (write {scheme}://host:port)")
        return
    if scheme in SERVER_SCHEMES or uri in ("databricks", "databricks-uc") or uri.startswith("databricks://"):
        return  # Databricks: "databricks" alone, or databricks://<profile>
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):  # a folder (a Windows drive letter too)
        raise StoreUnreachable(f"{key}: '{uri}' is a folder (MLflow's file store, refused by MLflow 3 unless "
                               f"MLFLOW_ALLOW_FILE_STORE is set); use a store: {URI_FORMS}")
    raise StoreUnreachable(f"{key}: '{uri}' is not a tracking store MLflow knows (scheme '{scheme}'); use {URI_FORMS}")


MAX_EXPERIMENT_NAME = 500  # MLflow's limits (mlflow.utils.validation)
MAX_RUN_NAME = 250


def artifact_schemes() -> list[str]:
    """The URI schemes MLflow has an artifact store for (its registry; plug-ins add theirs)."""
    try:
        from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

        return sorted(s for s in _artifact_repository_registry._registry if s not in ("", "runs"))
    except (ImportError, AttributeError):  # a private registry: should it move, keep to MLflow's documented schemes
        return ["abfss", "dbfs", "file", "ftp", "gs", "hdfs", "http", "https", "mlflow-artifacts", "s3", "sftp", "viewfs", "wasbs"]


def check_names(experiment_name: str, run_name: str | None, artifact_location: str | None) -> None:
    """What MLflow would refuse only when the run is created, or store somewhere nobody can write."""
    from urllib.parse import urlparse

    if len(experiment_name) > MAX_EXPERIMENT_NAME:
        raise StoreUnreachable(f"tracking.experiment_name is {len(experiment_name)} characters long; MLflow takes {MAX_EXPERIMENT_NAME} at most")
    if run_name is not None and len(run_name) > MAX_RUN_NAME:
        raise StoreUnreachable(f"tracking.run_name is {len(run_name)} characters long; MLflow takes {MAX_RUN_NAME} at most")
    if not artifact_location:
        return
    scheme = urlparse(artifact_location).scheme.lower()
    if scheme == "runs":
        raise StoreUnreachable(f"tracking.artifact_location: '{artifact_location}' is a run's artifact URI; give a folder or a store URI")
    if scheme and scheme not in artifact_schemes() and not (len(scheme) == 1 and artifact_location[1:2] == ":"):
        raise StoreUnreachable(f"tracking.artifact_location: '{artifact_location}' has a scheme MLflow has no artifact store for "
                               f"('{scheme}'; known: {', '.join(artifact_schemes())} or a local folder)")
    if scheme in ("", "file"):
        path = Path(urlparse(artifact_location).path if scheme == "file" else artifact_location).absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise StoreUnreachable(f"tracking.artifact_location: cannot write artifacts under '{path}' ('{existing}' is "
                                   f"{'not a folder' if not existing.is_dir() else 'not writable'})")


def check_store(uri: str, timeout: float = 5.0, must_exist: bool = False) -> None:
    """Fail fast, before any work, when the store cannot be used: a URI MLflow would not take, a tracking
    server that does not answer, or a sqlite file in a folder this process cannot write. ``must_exist``
    (a resume): a sqlite file that is gone is an error, not a new empty store."""
    check_uri_form(uri)
    base = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if base in DATABASE_SCHEMES and base != "sqlite":
        try:
            import sqlalchemy

            sqlalchemy.create_engine(uri)  # loads the database driver; connects only when first used
        except Exception as exc:
            raise StoreUnreachable(f"tracking.uri: cannot use the database '{uri}': {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if must_exist and uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise StoreUnreachable(f"the MLflow store '{uri[len('sqlite:///'):]}' the search logged to no longer exists; "
                               "put the file back to resume the search")
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            response = requests.get(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=timeout)
        except requests.RequestException as exc:
            raise StoreUnreachable(f"tracking.uri: no MLflow tracking server answers at {uri} ({type(exc).__name__}); "
                                   "start it, or leave tracking.uri unset for the local sqlite store") from None
        if response.status_code in (401, 403):
            raise StoreUnreachable(f"tracking.uri: the MLflow tracking server at {uri} refused access (HTTP {response.status_code}); "
                                   "set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN")
        if response.status_code >= 400:
            raise StoreUnreachable(f"tracking.uri: {uri} does not answer as an MLflow tracking server (HTTP {response.status_code} "
                                   "from /api/2.0/mlflow/experiments/search)")
    elif uri.startswith("sqlite:///"):
        path = Path(resolve_uri(uri)[len("sqlite:///") :])
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
            raise StoreUnreachable(f"tracking.uri: cannot write the sqlite store '{path}' (permission denied)")


class StoreUnreachable(BadInput):
    """tracking.uri names a store this process cannot use (bad input: found before any work)."""


def resolve_uri(uri: str) -> str:
    """Make a relative sqlite path absolute (against the working directory) and create its folder."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        path = path if path.is_absolute() else Path.cwd() / path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnreachable(f"tracking.uri: cannot create the folder of the sqlite store '{path}': {exc.strerror}") from None
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


def system_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` with the system tags MLflow's own ``start_run`` sets (mlflow.user, mlflow.source.name and .type, and
    mlflow.source.git.commit when the running code is a git checkout), which ``MlflowClient.create_run`` leaves out."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.git_utils import get_git_commit
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    resolved = resolve_tags(dict(tags))
    if MLFLOW_GIT_COMMIT not in resolved:  # the command's script may be outside the checkout (a venv elsewhere): this package's
        commit = get_git_commit(str(Path(__file__).parent))
        if commit:
            resolved[MLFLOW_GIT_COMMIT] = commit
    return resolved


def dataset_inputs(data: Mapping[str, tuple[str, int | None]]) -> list[Any]:
    """Each data file (context -> (file, rows used)) as an MLflow dataset input: named by its file, a digest of its bytes,
    its path as the source, the rows used as its profile, and MLflow's context tag (train, validation, test)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from nas.provenance import file_digest

    inputs = []
    for context, (path, rows) in data.items():
        dataset = Dataset(name=Path(path).name, digest=file_digest(path), source_type="local",
                          source=json.dumps({"uri": str(Path(path).resolve())}), profile=json.dumps({"rows": rows or "all"}))
        inputs.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs


def log_dataset_inputs(uri: str, run_id: str, data: Mapping[str, tuple[str, int | None]]) -> None:
    """The data files a run read, as its dataset inputs (see dataset_inputs)."""
    open_store(uri).log_inputs(run_id, datasets=dataset_inputs(data))


def _after(start: float, hurry: threading.Event, fn: Callable, *args: Any) -> Any:
    """``fn(*args)``, not before the monotonic time ``start`` unless ``hurry`` is set (a write queued behind others has
    waited long enough by the time it runs)."""
    hurry.wait(max(0.0, start - time.monotonic()))
    return fn(*args)


def _now() -> int:
    return int(time.time() * 1000)


def download_run_artifact(uri: str, run_id: str, artifact_path: str, dst_dir: Path) -> Path:
    """A file logged to run ``run_id`` in the store at ``uri``, downloaded into ``dst_dir``."""
    client = open_store(uri)
    client.get_run(run_id)  # raises a clear MlflowException when the run does not exist
    dst_dir.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, artifact_path, str(dst_dir)))


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """For a sqlite store: hold an exclusive lock on <db>.lock. MLflow creates and migrates a fresh
    sqlite file's tables without a lock, so two jobs opening it at once can both fail (and leave it
    broken); under this lock the first creates them and the others find them."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri[len("sqlite:///") :]).with_suffix(".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_store(uri: str) -> MlflowClient:
    """A client of the store at ``uri`` (a relative sqlite path resolved, its tables created safely)."""
    uri = resolve_uri(uri)
    with store_lock(uri):
        return MlflowClient(tracking_uri=uri)  # the constructor creates a sqlite store's tables


def prefer_our_retries(uri: str) -> None:
    """MLflow retries a failed HTTP request 7 times with a doubling pause and waits 120 s for an answer: minutes
    per call before RetryingClient even sees the error. Unless the user set them, let RetryingClient decide."""
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


class Tracker:
    def __init__(self, uri: str, experiment_name: str, artifact_location: str | None = None, retry_seconds: float = RETRY_SECONDS,
                 create: bool = True):
        self.uri = resolve_uri(uri)
        prefer_our_retries(self.uri)
        with store_lock(self.uri):  # one job of a sweep creates the tables and the experiment, the others find them
            self.client = RetryingClient(MlflowClient(tracking_uri=self.uri), retry_seconds)
            experiment = self.client.get_experiment_by_name(experiment_name)
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                raise StoreUnreachable(f"tracking.experiment_name: the experiment '{experiment_name}' is deleted in {self.uri}: "
                                       f"restore it (`mlflow experiments restore --experiment-id {experiment.experiment_id}`) "
                                       "or name another one")
            if experiment is None and not create:
                raise ResumeError(f"resume: the experiment '{experiment_name}' the search logged to is not in {self.uri}")
            if experiment is None:
                location = artifact_location or default_artifact_location(self.uri)
                self.experiment_id = self.client.create_experiment(experiment_name, artifact_location=location)
            else:
                self.experiment_id = experiment.experiment_id
        self.parent_id: str | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nas-mlflow")  # one thread keeps writes in order
        self._pending: dict[Future, threading.Event] = {}  # queued writes, in order, each with the event that cuts its delay

    def _in_background(self, fn: Callable, *args: Any) -> Future:
        self._raise_failures(wait=False)  # a store that stopped working fails the search at the next candidate
        hurry = threading.Event()
        future = self._writer.submit(_after, time.monotonic() + WRITE_DELAY, hurry, fn, *args)
        self._pending[future] = hurry
        return future

    def _hurry_all(self) -> None:
        for hurry in list(self._pending.values()):
            hurry.set()

    def result(self, future: Future) -> Any:
        """What a background write returned (a candidate's run id), waiting for it and the writes queued before it."""
        self._hurry_all()
        return future.result()

    def _raise_failures(self, wait: bool) -> None:
        if wait:  # every job first: a run still being created must exist before anyone looks for unfinished runs
            self._hurry_all()
            futures_wait(list(self._pending))
        for future in [f for f in self._pending if wait or f.done()]:
            del self._pending[future]
            future.result()  # re-raises the logging error

    @property
    def unavailable(self) -> StoreUnavailable | None:
        """Set once the store stayed locked or unreachable for the whole retry budget."""
        return self.client.unavailable

    def flush(self) -> None:
        """Wait until everything logged so far is in the store."""
        self._raise_failures(wait=True)

    def start_search(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                     data: Mapping[str, tuple[str, int | None]] = ()) -> str:
        """The search's parent run, with MLflow's system tags (user, source, git commit), ``tags``, ``params`` and the
        ``data`` files it reads (context -> (file, rows used)) as dataset inputs."""
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=system_tags(tags))
        self.parent_id = run.info.run_id
        flat = flatten(params)
        self._log(self.parent_id, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in flat.items()])
        if data:
            self.client.log_inputs(self.parent_id, datasets=dataset_inputs(data))
        return self.parent_id

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A file or a whole folder, as an artifact of the search's parent run."""
        if path.is_dir():
            self.client.log_artifacts(self.parent_id, str(path), artifact_path)
        elif path.exists():
            self.client.log_artifact(self.parent_id, str(path), artifact_path)

    def start_candidate(self, index: int, key: str, architecture: Mapping[str, Any], iteration: int, episode: int,
                        step: int) -> Future[str]:
        """A nested child run for a candidate handed to a worker (RUNNING until ``finish_candidate``), created in the
        background while the candidate trains; returns the future of its id. A store already given up on
        (StoreUnavailable) raises here, before another candidate trains."""
        if self.unavailable is not None:
            raise self.unavailable
        tags = {MLFLOW_PARENT_RUN_ID: self.parent_id, "iteration": str(iteration), "episode": str(episode), "step": str(step),
                "architecture_hash": key, "candidate_index": str(index)}
        params = [Param(k, str(v)) for k, v in architecture.items()]
        return self._in_background(self._create_candidate_run, f"candidate-{index:03d}-{key}", tags, params, _now())

    def _create_candidate_run(self, run_name: str, tags: dict[str, str], params: list[Param], start_time: int) -> str:
        # start_time: when the candidate was handed over, not when this thread got to it
        run_id = self.client.create_run(self.experiment_id, start_time=start_time, run_name=run_name, tags=tags).info.run_id
        self._log(run_id, (), params)
        return run_id

    def finish_candidate(self, record: CandidateRecord, hf_config_json: str | None) -> None:
        """The candidate's metrics, config and status (its run: ``record.mlflow_run_id``), written in the background."""
        self._in_background(self._log_candidate_body, record, hf_config_json)

    def _log_candidate_body(self, record: CandidateRecord, hf_config_json: str | None) -> None:
        ts = _now()
        # Validation metrics at the training step they were measured (several steps under multi-fidelity), named as
        # nas-final names them: val_<metric> (and test_<metric> there), so one column compares candidates and final models.
        checkpoints = record.checkpoints or [(record.steps or 0, record.metrics)]
        metrics = [Metric(f"{VAL_PREFIX}{k}", float(v), ts, int(step)) for step, values in checkpoints for k, v in values.items()]
        metrics += [Metric(k, v, ts, 0) for k, v in record.mlflow_metrics().items()]
        metrics += [Metric("train_loss", loss, ts, step) for step, loss in record.losses]
        metrics += [Metric("pretrain_loss", loss, ts, step) for step, loss in record.pretrain_losses]  # stage one
        tags = [RunTag("status", record.status)]
        if record.error:
            tags += [RunTag("error_type", record.error_type or "Error"), RunTag("error", record.error[:5000])]
        self._log(record.mlflow_run_id, metrics=metrics, tags=tags)
        if hf_config_json:
            self.client.log_text(record.mlflow_run_id, hf_config_json, "config.json")
        self.client.set_terminated(record.mlflow_run_id, RunStatus.to_string(RunStatus.FINISHED if record.ok else RunStatus.FAILED))

    # -- evaluation=weight_sharing: the super-network's run and the scores' table ----------------------
    def log_supernet(self, params: Mapping[str, Any], losses: list[float], seconds: float, pretrain_losses: list[float] = ()) -> str:
        """The super-network's training as a child run of its own: its settings, its loss curves (supernet_loss, the mean
        subnet loss of each step; supernet_pretrain_loss when its body was pre-trained first) and its seconds. Written at
        once: it happens once a search."""
        tags = {MLFLOW_PARENT_RUN_ID: self.parent_id, ROLE_TAG: "supernet"}
        run_id = self.client.create_run(self.experiment_id, run_name="supernet", tags=tags).info.run_id
        ts = _now()
        metrics = [Metric("supernet_loss", float(loss), ts, step) for step, loss in enumerate(losses)]
        metrics += [Metric("supernet_pretrain_loss", float(loss), ts, step) for step, loss in enumerate(pretrain_losses)]
        metrics.append(Metric("supernet_seconds", float(seconds), ts, 0))
        self._log(run_id, metrics, [Param(k, str(v)) for k, v in flatten(params).items()])
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        return run_id

    def has_supernet_run(self) -> bool:
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}' and "
                                       f"tags.`{ROLE_TAG}` = 'supernet' and attributes.status = 'FINISHED'", max_results=1)
        return bool(runs)

    def log_table(self, columns: Mapping[str, list[Any]], artifact_file: str) -> None:
        """A table (column -> values) as an artifact of the parent run, shown by MLflow's UI (mlflow.log_table)."""
        self.flush()  # after what was queued before it
        with warnings.catch_warnings():  # MLflow's own select_dtypes call warns under pandas 3; the table is the same
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self.client.log_table(self.parent_id, data=dict(columns), artifact_file=artifact_file)

    # -- resuming an interrupted search ---------------------------------------------------------
    def resume_search(self, parent_id: str, state: Mapping[str, Any], records: list[CandidateRecord], where: str) -> str:
        """Continue logging to an interrupted search's parent run (RUNNING again); returns its status before.

        Only once the run is shown to be the search ``where`` holds (``state``: its search.json;
        ``records``: its candidates.jsonl) is anything written: a run that is missing, deleted, a
        candidate's, another search's or in another experiment is refused, naming what differs."""
        run = self.check_search_run(parent_id, state, records, where)
        self.parent_id = parent_id
        self.client.update_run(parent_id, status="RUNNING")
        return run.info.status

    def check_search_run(self, parent_id: str, state: Mapping[str, Any], records: list[CandidateRecord], where: str) -> Any:
        """The search's parent run, once shown to be the search ``where`` holds; ResumeError naming what differs."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(parent_id)
        except MlflowException:
            raise ResumeError(f"resume: {where} names MLflow run {parent_id}, which is not in the store {self.uri} "
                              "(was the run or the store deleted?)") from None
        if run.info.lifecycle_stage == "deleted":
            raise ResumeError(f"resume: MLflow run {parent_id} of {where} is deleted in {self.uri}; restore it to resume "
                              f"(`mlflow runs restore --run-id {parent_id}`)")
        if MLFLOW_PARENT_RUN_ID in run.data.tags:
            raise ResumeError(f"resume: {where} names MLflow run {parent_id}, a candidate's run (its parent is "
                              f"{run.data.tags[MLFLOW_PARENT_RUN_ID]}), not a search's")
        expected = {"experiment": (state.get("experiment_id"), run.info.experiment_id),
                    "run name": (state.get("run_name"), run.info.run_name)}
        for what, (ours, theirs) in expected.items():
            if ours is not None and ours != theirs:
                raise ResumeError(f"resume: MLflow run {parent_id} is not the search in {where}: its {what} is '{theirs}', "
                                  f"{where} says '{ours}'")
        if run.info.experiment_id != self.experiment_id:
            raise ResumeError(f"resume: MLflow run {parent_id} is in experiment {run.info.experiment_id}, not in "
                              f"'{self.experiment_id}' where the search's config logs")
        children = self.client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                                           max_results=50000)
        mine = {r.info.run_id for r in children}
        foreign = [r for r in records if r.mlflow_run_id and r.mlflow_run_id not in mine]
        if foreign:
            raise ResumeError(f"resume: candidate {foreign[0].index} of {where} was logged as MLflow run "
                              f"{foreign[0].mlflow_run_id}, which is not a child of run {parent_id}: the folder and "
                              f"the run are different searches ({len(foreign)} of {len(records)} records differ)")
        return run

    def metric_steps(self, key: str) -> set[int]:
        """The steps at which the parent run has ``key``."""
        return {m.step for m in self.client.get_metric_history(self.parent_id, key)}

    def unfinished_candidates(self) -> list[str]:
        """Ids of this search's child runs still RUNNING (left so by a kill)."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}' and attributes.status = 'RUNNING'",
                                       max_results=50000)
        return [r.info.run_id for r in runs]

    def mark_killed(self, run_id: str) -> None:
        self.client.set_tag(run_id, "status", "killed")
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))

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
