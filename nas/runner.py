"""A whole search from typed config: task -> space -> strategy -> evaluate candidates -> outputs + MLflow.

Everything that can be checked cheaply (data files, columns, the search space) is checked before
the first candidate trains. Outputs are written as the search goes, so a crash loses nothing
already evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nas.candidate import CandidateObjective, candidate_seed, seed_everything  # noqa: F401 (re-exported)
from nas.config import Config, check_settings, run_id_of
from nas.controller import ControllerError
from nas.errors import DeferredSignals, ResumeError, SearchStopped
from nas.evaluators import error_type_of, make_evaluator
from nas.export import save_folder
from nas.folders import claim_new_search, lock_folder, release_folder, serialized, write_atomically
from nas.models import make_space, pretraining_objective
from nas.objectives import load_records
from nas.plots import write_search_plots
from nas.pretrain import PretrainingCorpus, read_corpus
from nas.provenance import own_data_settings
from nas.search import Evaluation, ReplayError, SearchResult, run_loop
from nas.space import Architecture, SearchSpace, architecture_key
from nas.strategies import make_strategy
from nas.tasks import Task, make_task
from nas.tasks.cache import setup_cache
from nas.tracking import StoreUnavailable, Tracker, check_names, check_store, download_run_artifact
from nas.train import resolve_device

log = logging.getLogger(__name__)


def rounded(metrics: dict[str, float] | None, digits: int = 4) -> dict[str, float] | None:
    """Metrics as a person reads them in a log line (0.3846, not 0.38461538461538464); files and MLflow keep every digit."""
    return None if metrics is None else {k: round(v, digits) if isinstance(v, float) else v for k, v in metrics.items()}


def search_run_name(config: Config, sweep: SweepJob | None) -> str:
    """A name that tells searches apart in MLflow's runs table: what ran, then when (or which job of which sweep)."""
    base = f"{config.strategy}-{config.task.name}-seed{config.seed}"
    if sweep is not None:
        return f"{base}-{Path(sweep.folder).name}-job{sweep.num}"
    return f"{base}-{datetime.now():%Y%m%d-%H%M%S}"


def progress_total(config: Config) -> int | None:
    """The most candidates the search evaluates: the budget, or fewer when PPO's rounds (ppo.iterations) end it first:
    the initial architecture, then population_size new ones a round."""
    caps = [config.budget]
    if config.strategy == "ppo" and config.ppo.iterations is not None:
        caps.append(1 + config.ppo.iterations * config.ppo.population_size)
    return min((c for c in caps if c), default=None)


def build_search_space(config: Config, task: Task, fixed: dict[str, Any]) -> SearchSpace:
    s = config.search_space
    return make_space(s.family, s.dimensions, task.name, fixed, s.max_params, name=s.family)


CONTROLLER_FILE = "controller.pt"


def resolve_controller(init_from: str, tracking_uri: str) -> str:
    """``ppo.init_from`` as a local file: a controller.pt, a search's output directory, or an MLflow run id (runs:/<id>)."""
    path = Path(init_from)
    if path.is_file():
        return str(path)
    if path.is_dir():
        if not (path / CONTROLLER_FILE).is_file():
            raise ControllerError(f"ppo.init_from: directory '{path}' has no {CONTROLLER_FILE} (was it a PPO search?)")
        return str(path / CONTROLLER_FILE)
    run_id = run_id_of(init_from)
    if run_id is None:
        raise ControllerError(f"ppo.init_from: '{init_from}' is not a controller file, a search output directory or an MLflow run id")
    try:
        local = download_run_artifact(tracking_uri, run_id, CONTROLLER_FILE, Path(tempfile.mkdtemp(prefix="nas-controller-")))
    except Exception as exc:
        raise ControllerError(f"ppo.init_from: cannot fetch {CONTROLLER_FILE} of MLflow run '{run_id}' from {tracking_uri}: {exc}") from exc
    return str(local)


SEARCH_STATE_FILE = "search.json"  # what a resume needs besides candidates.jsonl: the MLflow parent run
SEARCH_STATE_FORMAT = "nas-search/1"
CHECKPOINT_FILE = "checkpoint.pt"  # PPO's state after its last update: networks, optimizer, RNG states
CHECKPOINT_FORMAT = "nas-search-checkpoint/1"


def read_candidates(path: Path) -> list[dict[str, Any]]:
    """candidates.jsonl's records; a line torn by a kill mid-write is cut off the file."""
    if not path.is_file():
        return []
    try:
        records = load_records(path, drop_torn_last=True)
    except ValueError as exc:
        raise ResumeError(str(exc)) from exc
    text = path.read_text()
    if text and not text.endswith("\n"):  # the torn line: it was never recorded
        with path.open("r+") as f:
            f.truncate(text.rfind("\n") + 1)
    return records


def evaluation_of(record: dict[str, Any]) -> Evaluation:
    """An Evaluation back from its candidates.jsonl record."""
    info_keys = ("metrics", "num_parameters", "train_seconds", "eval_seconds", "pretrain_seconds", "latency_ms", "metric_reward", "steps", "checkpoints")
    return Evaluation(index=record["index"], architecture=record["architecture"], key=record["architecture_hash"], value=record["reward"],
                      status=record["status"], iteration=record["iteration"], episode=record["episode"], step=record["step"],
                      error=record.get("error"), seconds=record.get("seconds", 0.0),
                      info={k: record[k] for k in info_keys if record.get(k) is not None})


def candidate_record(e: Evaluation, run_id: str | None) -> dict[str, Any]:
    info = e.info
    return {"index": e.index, "architecture": e.architecture, "architecture_hash": e.key, "status": e.status,
            "reward": e.value, "metrics": info.get("metrics", {}), "num_parameters": info.get("num_parameters"),
            "train_seconds": info.get("train_seconds"), "eval_seconds": info.get("eval_seconds"),
            "pretrain_seconds": info.get("pretrain_seconds"), "latency_ms": info.get("latency_ms"),
            "metric_reward": info.get("metric_reward"), "steps": info.get("steps"), "checkpoints": info.get("checkpoints", []),
            "seconds": e.seconds, "iteration": e.iteration, "episode": e.episode, "step": e.step,
            "error": e.error, "error_type": error_type_of(e.error) if e.error else None, "mlflow_run_id": run_id}


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One line, on disk before the search goes on: a kill loses no recorded candidate."""
    try:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # write() does not say where


def save_checkpoint(strategy: Any, path: Path, evaluations: int) -> None:
    """The strategy's state after an update (tensors and plain containers: loads with weights_only=True)."""
    state = strategy.state_dict()
    if not state:
        return  # random, evolution and TPE are a function of the seed and the history alone
    write_atomically(path, serialized({"format": CHECKPOINT_FORMAT, "evaluations": evaluations, **state}))


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ResumeError(f"resume: '{path}' is not a readable checkpoint: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT or not isinstance(saved.get("controller"), dict):
        raise ResumeError(f"resume: '{path}' is not a nas search checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    return saved


def checkpoint_iterations(path: Path) -> int | None:
    """The PPO iterations a resumed search's checkpoint holds (None: no checkpoint yet); checked before any work."""
    return load_checkpoint(path)["controller"].get("iterations") if path.is_file() else None


def check_checkpoint(strategy: Any, path: Path) -> None:
    """After a replay reached the checkpoint's iteration: the replayed networks must be the saved ones."""
    saved = load_checkpoint(path)
    mine = strategy.controller_state()
    theirs = saved["controller"]
    same = all(theirs[net].keys() == mine[net].keys() and all(torch.equal(mine[net][k], v) for k, v in theirs[net].items())
               for net in ("policy", "value"))
    if not same or saved["controller"]["iterations"] != mine["iterations"]:
        raise ResumeError(f"resume: replaying candidates.jsonl did not reproduce {path} (iteration {saved['controller']['iterations']}); "
                          "the config, the code or the files were changed since the search was interrupted")


def read_search_state(output_dir: Path) -> dict[str, Any]:
    path = output_dir / SEARCH_STATE_FILE
    if not output_dir.is_dir():
        raise ResumeError(f"resume: '{output_dir}' is not a directory")
    if not path.is_file():
        raise ResumeError(f"resume: '{output_dir}' has no {SEARCH_STATE_FILE}; is it the output directory of a nas search?")
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResumeError(f"resume: {path} is not valid JSON ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != SEARCH_STATE_FORMAT:
        raise ResumeError(f"resume: {path} is not a nas search state (no '{SEARCH_STATE_FORMAT}' format tag)")
    missing = [k for k in ("parent_run_id", "tracking_uri") if not isinstance(state.get(k), str)]
    if missing:
        raise ResumeError(f"resume: {path} lacks {', '.join(missing)}")
    return state


@dataclasses.dataclass(frozen=True)
class SweepJob:
    """A search that is one job of a Hydra multirun (``nas -m``): its sweep folder and job number (hydra.job.num)."""

    folder: str
    num: int


def run_search(config: Config, output_dir: Path, hydra_dir: Path | None = None, sweep: SweepJob | None = None) -> SearchResult:
    """Run the search ``config`` describes, writing outputs to ``output_dir`` and runs to MLflow.

    With ``config.resume`` set, ``output_dir`` is an interrupted search's: its recorded candidates are
    replayed (not retrained), its MLflow parent run continues, and the search goes on from there.
    """
    validate_config(config)
    try:
        return _run_search(config, output_dir, hydra_dir, sweep)
    finally:
        release_folder(output_dir)


def _run_search(config: Config, output_dir: Path, hydra_dir: Path | None, sweep: SweepJob | None) -> SearchResult:
    resuming = bool(config.resume)
    config = dataclasses.replace(config, task=own_data_settings(config.task))  # the shipped data's class names fit it alone
    seed_everything(config.seed)
    if resuming:
        search_state = read_search_state(output_dir)  # written once when the search started
        lock_folder(output_dir)  # before the records are read: a second resume of this folder stops here
        records = read_candidates(output_dir / "candidates.jsonl")
        replay = [evaluation_of(r) for r in records]
    # Before any work: fail fast, naming the URI.
    check_store(search_state["tracking_uri"] if resuming else config.tracking.uri, must_exist=resuming)
    check_names(config.tracking.experiment_name, config.tracking.run_name, config.tracking.artifact_location)
    check_writable(output_dir)
    if not resuming:
        claim_new_search(output_dir)  # locked for this search; another search's records are never overwritten
    pretrain = config.trainer.pretrain
    corpus_texts = read_corpus(pretrain, config.task.name) if pretrain.steps > 0 else []
    with setup_cache(config.cache_dir):  # the tokenizer and the encoded texts of an earlier search on the same data
        task = make_task(config.task, tokenizer_texts=corpus_texts)
        corpus = None
        if corpus_texts:
            objective_name = pretraining_objective(config.search_space.family)
            corpus = PretrainingCorpus(corpus_texts, task.preprocessor, task.config_fields()["max_position_embeddings"], pretrain)
            corpus.check(objective_name)
    objective = CandidateObjective(task, config, corpus)
    space = build_search_space(config, task, objective.fixed)  # the same task-derived fields the candidates get
    settings = config.strategy_settings
    if config.strategy == "ppo" and settings.init_from:
        settings = dataclasses.replace(settings, init_from=resolve_controller(settings.init_from, config.tracking.uri))
    if config.trainer.num_threads:  # as training sets it: a replay (which trains nothing) then runs PPO's math alike
        torch.set_num_threads(config.trainer.num_threads)
    strategy = make_strategy(config.strategy, space, seed=config.seed, settings=settings, initial=config.search_space.initial)
    controller_path = output_dir / CONTROLLER_FILE
    checkpoint_path = output_dir / CHECKPOINT_FILE
    candidates_path = output_dir / "candidates.jsonl"

    saved_checkpoint = checkpoint_iterations(checkpoint_path) if resuming else None  # only a strategy with a state_dict writes one
    # A resume uses the store the search started in (search.json has it absolute), whatever the working directory.
    uri = search_state["tracking_uri"] if resuming else config.tracking.uri
    tracker = Tracker(uri, config.tracking.experiment_name, config.tracking.artifact_location, config.tracking.retry_seconds,
                      create=not resuming)
    if resuming:
        status_before = tracker.resume_search(search_state["parent_run_id"], search_state, records, str(output_dir))
        settle_unfinished_runs(tracker, records, objective)
        log.info("resuming %s: %d candidates recorded, MLflow run %s", output_dir, len(replay), tracker.parent_id)
    else:
        replay = []
        run_name = config.tracking.run_name or search_run_name(config, sweep)
        sweep_tags = {"sweep": sweep.folder, "hydra.job.num": str(sweep.num)} if sweep else {}
        task_config = config.task
        data = {"train": (task_config.train_file, task_config.train_size), "validation": (task_config.validation_file, task_config.val_size)}
        tracker.start_search(run_name, OmegaConf.to_container(OmegaConf.structured(config), resolve=True),
                             tags={"strategy": config.strategy, "task": task.name, "family": config.search_space.family,
                                   "output_dir": str(output_dir), **sweep_tags}, data=data)
        # What binds this folder to its run: a resume checks the store's run against it before logging anything.
        (output_dir / SEARCH_STATE_FILE).write_text(json.dumps({
            "format": SEARCH_STATE_FORMAT, "parent_run_id": tracker.parent_id, "tracking_uri": tracker.uri,
            "experiment_id": tracker.experiment_id, "experiment_name": config.tracking.experiment_name, "run_name": run_name}, indent=2))
        candidates_path.write_text("")
        checkpoint_path.unlink(missing_ok=True)
    if hydra_dir is not None and not resuming:
        tracker.log_artifact(hydra_dir, ".hydra")
    progress = tqdm(total=progress_total(config), desc=f"{config.strategy} search", unit="cand", disable=not config.progress)
    best = {"value": -float("inf")}
    run_ids: dict[int, Future[str]] = {}  # candidate index -> its child run's id, being created in the background
    unlogged_best = {e.index for e in replay} - tracker.metric_steps("best_reward") if resuming else set()

    def seen(e: Evaluation) -> None:
        objective.observe(e)
        if e.ok and e.value > best["value"]:
            best["value"] = e.value
        if e.index in unlogged_best and best["value"] > -float("inf"):  # replayed, but the kill came before MLflow had it
            tracker.log_metrics({"best_reward": best["value"]}, step=e.index)
        progress.set_postfix(iteration=e.iteration, best=f"{best['value']:.4f}", last=f"{e.value:.4f}" if e.ok else e.status)
        progress.update()

    def on_start(index: int, proposal) -> None:
        # A store that went away stops the search here, before another candidate trains (StoreUnavailable).
        a = proposal.architecture
        run_ids[index] = tracker.start_candidate(index, architecture_key(a), a, proposal.iteration, proposal.episode, proposal.step)

    def on_evaluation(e: Evaluation) -> None:
        # A run that could not be created (StoreUnavailable) stops the search before the candidate is recorded:
        # a resume trains it again, as when the store is found gone before the candidate starts.
        run_id = run_ids.pop(e.index).result()
        append_record(candidates_path, candidate_record(e, run_id))  # first: on disk whatever happens to MLflow
        seen(e)
        try:
            tracker.finish_candidate(run_id, e, _config_json(objective, e.architecture))
            if best["value"] > -float("inf"):
                tracker.log_metrics({"best_reward": best["value"]}, step=e.index)
        except StoreUnavailable:
            pass  # recorded; the batch's other candidates are recorded too, then on_start stops the search

    def on_iteration(stats: dict[str, Any]) -> None:
        if saved_checkpoint is not None and stats["iteration"] + 1 == saved_checkpoint:
            check_checkpoint(strategy, checkpoint_path)
        if stats["iteration"] + 1 <= (saved_checkpoint or 0):
            return  # replayed: logged and saved before the interruption
        if hasattr(strategy, "save_controller"):  # after every update: a later search can warm-start from it
            strategy.save_controller(controller_path)
        save_checkpoint(strategy, checkpoint_path, progress.n)
        try:
            # best_value: the best_reward curve already logged per candidate (one name per metric)
            tracker.log_metrics({k: v for k, v in stats.items() if k not in ("iteration", "best_value") and np.isfinite(v)},
                                step=stats["iteration"])
        except StoreUnavailable:
            pass  # the checkpoint is saved; the search stops at its next candidate
        log.info("iteration %d: %s", stats["iteration"], ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if k != "iteration"))

    status = "FAILED"
    result = None
    evaluator = make_evaluator(config.parallel, objective, config.trainer.num_threads)
    closing = DeferredSignals()
    try:
        with logging_redirect_tqdm():  # log lines above the progress bar, not through it
            result = run_loop(space, strategy, objective, config.budget, on_evaluation, on_iteration, evaluator=evaluator,
                              on_start=on_start, replay=replay, on_replay=seen)
        status = "FINISHED"
    except KeyboardInterrupt:
        closing.hold()  # a second Ctrl-C now would leave the parent run RUNNING
        status = "KILLED"
        log.warning("interrupted: %d candidates are recorded in %s; `nas resume=%s` continues the search",
                    len(read_candidates(candidates_path)), candidates_path, output_dir)
        raise
    except (ReplayError, ResumeError):
        status = status_before if resuming else "FAILED"  # a resume that cannot go on leaves the run as it found it
        raise
    except StoreUnavailable as exc:
        raise SearchStopped(f"{exc}. Every candidate evaluated so far is recorded in {candidates_path}; when the store "
                            f"answers again, `nas resume={output_dir}` finishes the search") from None
    except OSError as exc:  # the search's own files: a full disk, a folder that went away
        what = f"'{exc.filename}'" if exc.filename else f"a file in '{output_dir}'"
        raise SearchStopped(f"cannot write {what}: {exc.strerror or exc}. Every candidate recorded before is in {candidates_path}; "
                            f"once there is room again, `nas resume={output_dir}` continues the search") from None
    finally:
        closing.hold()
        try:
            evaluator.close(abort=status != "FINISHED")
            if status == "FINISHED" and progress.total != progress.n:  # the strategy ended first (its space or rounds ran out)
                progress.total = progress.n
                progress.refresh()
            progress.close()
            records = read_candidates(candidates_path)
            best_record = max((r for r in records if r["status"] == "ok"), key=lambda r: r["reward"], default=None)
            has_best, plots = _write_outputs(best_record, records, objective, task, config, output_dir)
            if tracker.unavailable is None:
                _close_search_run(tracker, status, records, objective, output_dir, has_best, plots, candidates_path, controller_path)
        finally:
            closing.release(raise_pending=status == "FINISHED")  # else the first interruption or error is on its way out

    b = result.best
    log.info("evaluated %d candidates (%d failed)", len(result.history), sum(not e.ok for e in result.history))
    if b is not None:
        log.info("best reward %.4f, metrics %s, %s parameters: %s", b.value, rounded(b.info.get("metrics")), b.info.get("num_parameters"),
                 b.architecture)
        log.info("best architecture: %s", output_dir / "best" / "config.json")
    log.info("MLflow store: %s (experiment '%s', run %s)", tracker.uri, config.tracking.experiment_name, tracker.parent_id)
    return result


def _write_outputs(best_record: dict[str, Any] | None, records: list[dict[str, Any]], objective: CandidateObjective, task: Task,
                   config: Config, output_dir: Path) -> tuple[bool, Any]:
    """best/ (the best architecture's config and preprocessor) and the plots. A full disk here loses neither the
    records nor the MLflow run's status: both are rebuilt from candidates.jsonl by a resume."""
    try:
        if best_record is not None:
            save_folder(output_dir / "best", objective.hf_config(best_record["architecture"]), task.preprocessor)
        plots = write_search_plots(records, config.task.metric, output_dir / "plots",
                                   pareto_costs=["num_parameters"] + (["latency_ms"] if config.objective.cost == "latency_ms" else []))
    except OSError as exc:
        log.warning("could not write the search's outputs in %s: %s; `nas resume=%s` writes them", output_dir, exc, output_dir)
        return False, None
    return best_record is not None, plots


def settle_unfinished_runs(tracker: Tracker, records: list[dict[str, Any]], objective: CandidateObjective) -> None:
    """Child runs left RUNNING by an interruption: completed from their record when the candidate was recorded
    (the interruption came before MLflow had it all), else marked KILLED (it was training; it trains again on resume)."""
    recorded = {r.get("mlflow_run_id"): evaluation_of(r) for r in records}
    for run_id in tracker.unfinished_candidates():
        if run_id in recorded:
            tracker.finish_candidate(run_id, recorded[run_id], _config_json(objective, recorded[run_id].architecture))
        else:
            tracker.mark_killed(run_id)
    tracker.flush()


def _close_search_run(tracker: Tracker, status: str, records: list[dict[str, Any]], objective: CandidateObjective, output_dir: Path,
                      has_best: bool, plots: Any, candidates_path: Path, controller_path: Path) -> None:
    """The parent run's artifacts and status. A store that goes away now stops with SearchStopped (resume finishes it)."""
    try:
        if status != "FINISHED":
            try:
                tracker.flush()  # what the background writer holds goes in before the leftovers are looked for
            except StoreUnavailable:
                raise
            except Exception as exc:  # do not hide why the search ended behind a logging error
                log.warning("MLflow logging failed while the search was ending: %s", exc)
            settle_unfinished_runs(tracker, records, objective)
        if has_best:
            tracker.log_artifact(output_dir / "best" / "config.json", "best")
        tracker.log_artifact(candidates_path)
        tracker.log_artifact(controller_path)
        if plots:
            tracker.log_artifact(output_dir / "plots", "plots")
        tracker.end_search(status)
    except StoreUnavailable as exc:
        if status == "FINISHED":
            raise SearchStopped(f"{exc}. The search is complete in {candidates_path}; when the store answers again, "
                                f"`nas resume={output_dir}` logs the rest") from None


def validate_config(config: Config) -> None:
    """Every setting that can be checked without data, before anything is read or trained."""
    check_settings(config)  # what needs no torch (the command has checked it already, before the heavy imports)
    resolve_device(config.trainer.device)  # a missing GPU fails here, not in every candidate
    config.search_space.validate(config.task.name)


def check_writable(output_dir: Path) -> None:
    """The output directory exists (or can be made) and takes files: found now, not after the first candidate."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory '{output_dir}': {exc.strerror} (set hydra.run.dir=...)") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the output directory '{output_dir}': permission denied (set hydra.run.dir=...)")


class OutputError(ValueError):
    """The output directory cannot be written."""


def _config_json(objective: CandidateObjective, architecture: Architecture) -> str | None:
    try:
        return objective.hf_config(architecture).to_json_string(use_diff=True)
    except Exception:  # the candidate failed because its config cannot be built
        return None
