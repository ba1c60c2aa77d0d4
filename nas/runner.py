"""A whole search from typed config: task -> space -> strategy -> evaluate candidates -> outputs + MLflow.

Everything that can be checked cheaply (data files, columns, the search space) is checked before
the first candidate trains. Outputs are written as the search goes, so a crash loses nothing
already evaluated.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable
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
from nas.evaluators import make_evaluator
from nas.export import save_folder
from nas.folders import CONTROLLER_FILE, RunDirectory
from nas.models import make_space, pretraining_objective
from nas.plots import write_search_plots
from nas.pretrain import PretrainingCorpus, read_corpus
from nas.provenance import own_data_settings
from nas.records import CandidateRecord
from nas.search import Evaluation, ReplayError, SearchResult, run_loop
from nas.space import Architecture, SearchSpace, architecture_key
from nas.strategies import Strategy, make_strategy
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
    the start-up candidates, then population_size new ones a round."""
    caps = [config.budget]
    if config.strategy == "ppo" and config.ppo.iterations is not None:
        caps.append(config.ppo.startup_candidates + config.ppo.iterations * config.ppo.population_size)
    return min((c for c in caps if c), default=None)


def build_search_space(config: Config, task: Task, fixed: dict[str, Any]) -> SearchSpace:
    s = config.search_space
    return make_space(s.family, s.dimensions, task.name, fixed, s.max_params, name=s.family)


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
    run_dir = RunDirectory(output_dir)
    try:
        return run_parts(build_search(config, run_dir), hydra_dir, sweep)
    finally:
        run_dir.release()


@dataclasses.dataclass
class SearchParts:
    """What a search runs with, built from its config by ``build_search``; ``run_parts`` runs them. A benchmark or a
    test gives its own part to ``build_search`` (a prepared task, a fixed strategy, an instrumented tracker or loop)
    instead of patching modules."""

    config: Config
    run_dir: RunDirectory
    task: Task
    objective: CandidateObjective
    space: SearchSpace
    strategy: Strategy
    tracker: Tracker
    resume_state: dict[str, Any] | None  # an interrupted search's search.json; None for a new search
    replay: list[CandidateRecord]  # what the interrupted search recorded, replayed before anything trains
    loop: Callable[..., SearchResult] = run_loop
    supernet: Any = None  # evaluation=weight_sharing: the super-network (nas.supernet.SuperNetwork), untrained


def build_search(config: Config, run_dir: RunDirectory, *, task: Task | None = None, strategy: Strategy | None = None,
                 tracker: Tracker | None = None, loop: Callable[..., SearchResult] = run_loop) -> SearchParts:
    """The parts of the search ``config`` describes, each checked before anything trains: the folder claimed (a new
    search) or locked with its records read (a resume), the store reachable, the task's data read, the space and
    the strategy built. No candidate trains and no MLflow run starts here."""
    resuming = bool(config.resume)
    config = dataclasses.replace(config, task=own_data_settings(config.task))  # the shipped data's class names fit it alone
    seed_everything(config.seed)
    resume_state, replay = None, []
    if resuming:
        resume_state = run_dir.read_state()  # written once when the search started
        run_dir.lock()  # before the records are read: a second resume of this folder stops here
        replay = run_dir.read_records()
    # Before any work: fail fast, naming the URI. A resume uses the store the search started in (search.json has it
    # absolute), whatever the working directory.
    uri = resume_state["tracking_uri"] if resuming else config.tracking.uri
    check_store(uri, must_exist=resuming)
    check_names(config.tracking.experiment_name, config.tracking.run_name, config.tracking.artifact_location)
    run_dir.check_writable()
    if not resuming:
        run_dir.claim()  # locked for this search; another search's records are never overwritten
    pretrain = config.trainer.pretrain
    corpus_texts = read_corpus(pretrain, config.task.name) if pretrain.steps > 0 else []
    with setup_cache(config.cache_dir):  # the tokenizer and the encoded texts of an earlier search on the same data
        task = task or make_task(config.task, tokenizer_texts=corpus_texts)
        corpus = None
        if corpus_texts:
            objective_name = pretraining_objective(config.search_space.family)
            corpus = PretrainingCorpus(corpus_texts, task.preprocessor, task.config_fields()["max_position_embeddings"], pretrain)
            corpus.check(objective_name)
    objective = CandidateObjective(task, config, corpus)
    space = build_search_space(config, task, objective.fixed)  # the same task-derived fields the candidates get
    supernet = None
    if config.evaluation.shares_weights:  # a space that cannot share weights is refused here, naming why
        from nas.weight_sharing import build_supernet

        supernet = build_supernet(config, task, space, objective.fixed)
    if strategy is None:
        settings = config.strategy_settings
        if config.strategy == "ppo" and settings.init_from:
            settings = dataclasses.replace(settings, init_from=resolve_controller(settings.init_from, config.tracking.uri))
        if config.trainer.num_threads:  # as training sets it: a replay (which trains nothing) then runs PPO's math alike
            torch.set_num_threads(config.trainer.num_threads)
        strategy = make_strategy(config.strategy, space, seed=config.seed, settings=settings, initial=config.search_space.initial)
    if tracker is None:
        tracker = Tracker(uri, config.tracking.experiment_name, config.tracking.artifact_location, config.tracking.retry_seconds,
                          create=not resuming)
    return SearchParts(config, run_dir, task, objective, space, strategy, tracker, resume_state, replay, loop, supernet)


def run_parts(parts: SearchParts, hydra_dir: Path | None = None, sweep: SweepJob | None = None) -> SearchResult:
    """Run a built search to its end: candidates trained and recorded, the MLflow runs written, best/ and plots saved."""
    config, run_dir, task, objective, strategy, tracker = parts.config, parts.run_dir, parts.task, parts.objective, parts.strategy, parts.tracker
    resuming = parts.resume_state is not None
    replay = [r.to_evaluation() for r in parts.replay]
    saved_checkpoint = run_dir.checkpoint_iterations() if resuming else None  # only a strategy with a state_dict writes one
    if resuming:
        status_before = tracker.resume_search(parts.resume_state["parent_run_id"], parts.resume_state, parts.replay, str(run_dir))
        settle_unfinished_runs(tracker, parts.replay, objective)
        log.info("resuming %s: %d candidates recorded, MLflow run %s", run_dir, len(replay), tracker.parent_id)
    else:
        run_name = config.tracking.run_name or search_run_name(config, sweep)
        sweep_tags = {"sweep": sweep.folder, "hydra.job.num": str(sweep.num)} if sweep else {}
        task_config = config.task
        data = {"train": (task_config.train_file, task_config.train_size), "validation": (task_config.validation_file, task_config.val_size)}
        tracker.start_search(run_name, OmegaConf.to_container(OmegaConf.structured(config), resolve=True),
                             tags={"strategy": config.strategy, "task": task.name, "family": config.search_space.family,
                                   "output_dir": str(run_dir), **sweep_tags}, data=data)
        run_dir.start({"parent_run_id": tracker.parent_id, "tracking_uri": tracker.uri, "experiment_id": tracker.experiment_id,
                       "experiment_name": config.tracking.experiment_name, "run_name": run_name})
        if hydra_dir is not None:
            tracker.log_artifact(hydra_dir, ".hydra")
    shares_weights = parts.supernet is not None
    budget = config.evaluation.top_k if shares_weights else config.budget  # weight sharing: the shortlist trains standalone
    progress = tqdm(total=budget if shares_weights else progress_total(config), unit="cand", disable=not config.progress,
                    desc=f"top {budget} standalone" if shares_weights else f"{config.strategy} search")
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
        record = CandidateRecord.from_evaluation(e, tracker.result(run_ids.pop(e.index)))
        run_dir.append(record)  # first: on disk whatever happens to MLflow
        seen(e)
        try:
            tracker.finish_candidate(record, _config_json(objective, e.architecture))
            if best["value"] > -float("inf"):
                tracker.log_metrics({"best_reward": best["value"]}, step=e.index)
        except StoreUnavailable:
            pass  # recorded; the batch's other candidates are recorded too, then on_start stops the search

    def on_iteration(stats: dict[str, Any]) -> None:
        if saved_checkpoint is not None and stats["iteration"] + 1 == saved_checkpoint:
            run_dir.check_checkpoint(strategy)
        if stats["iteration"] + 1 <= (saved_checkpoint or 0):
            return  # replayed: logged and saved before the interruption
        if hasattr(strategy, "save_controller"):  # after every update: a later search can warm-start from it
            strategy.save_controller(run_dir.controller)
        run_dir.save_checkpoint(strategy, progress.n)
        try:
            # best_value: the best_reward curve already logged per candidate (one name per metric)
            tracker.log_metrics({k: v for k, v in stats.items() if k not in ("iteration", "best_value") and np.isfinite(v)},
                                step=stats["iteration"])
        except StoreUnavailable:
            pass  # the checkpoint is saved; the search stops at its next candidate
        log.info("iteration %d: %s", stats["iteration"], ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if k != "iteration"))

    status = "FAILED"
    result = None
    evaluator = make_evaluator(config.parallel, objective, config.trainer.num_threads, config.trainer.device)
    closing = DeferredSignals()
    try:
        with logging_redirect_tqdm():  # log lines above the progress bar, not through it
            candidates = strategy
            if shares_weights:  # stages one and two: the super-network, then the strategy over its scores
                from nas.weight_sharing import search_shared

                candidates = search_shared(parts.supernet, config, task, parts.space, strategy, run_dir, tracker, on_iteration,
                                           objective.corpus)
            result = parts.loop(parts.space, candidates, objective, budget, on_evaluation, on_iteration, evaluator=evaluator,
                                on_start=on_start, replay=replay, on_replay=seen)
        status = "FINISHED"
    except KeyboardInterrupt:
        closing.hold()  # a second Ctrl-C now would leave the parent run RUNNING
        status = "KILLED"
        scored = f" and {len(run_dir.read_scores())} weight-sharing scores in {run_dir.scores}" if shares_weights else ""
        log.warning("interrupted: %d candidates are recorded in %s%s; `nas resume=%s` continues the search",
                    len(run_dir.read_records()), run_dir.candidates, scored, run_dir)
        raise
    except (ReplayError, ResumeError):
        status = status_before if resuming else "FAILED"  # a resume that cannot go on leaves the run as it found it
        raise
    except StoreUnavailable as exc:
        raise SearchStopped(f"{exc}. Every candidate evaluated so far is recorded in {run_dir.candidates}; when the store "
                            f"answers again, `nas resume={run_dir}` finishes the search") from None
    except OSError as exc:  # the search's own files: a full disk, a folder that went away
        what = f"'{exc.filename}'" if exc.filename else f"a file in '{run_dir}'"
        raise SearchStopped(f"cannot write {what}: {exc.strerror or exc}. Every candidate recorded before is in {run_dir.candidates}; "
                            f"once there is room again, `nas resume={run_dir}` continues the search") from None
    finally:
        closing.hold()
        try:
            evaluator.close(abort=status != "FINISHED")
            if status == "FINISHED" and progress.total != progress.n:  # the strategy ended first (its space or rounds ran out)
                progress.total = progress.n
                progress.refresh()
            progress.close()
            records = run_dir.read_records()
            best_record = max((r for r in records if r.ok), key=lambda r: r.reward, default=None)
            has_best, plots = _write_outputs(best_record, records, objective, task, config, run_dir)
            if tracker.unavailable is None:
                _close_search_run(tracker, status, records, objective, run_dir, has_best, plots)
        finally:
            closing.release(raise_pending=status == "FINISHED")  # else the first interruption or error is on its way out

    b = result.best
    log.info("evaluated %d candidates (%d failed)", len(result.history), sum(not e.ok for e in result.history))
    if b is not None:
        log.info("best reward %.4f, metrics %s, %s parameters: %s", b.value, rounded(b.info.get("metrics")), b.info.get("num_parameters"),
                 b.architecture)
        log.info("best architecture: %s", run_dir.best / "config.json")
    log.info("MLflow store: %s (experiment '%s', run %s)", tracker.uri, config.tracking.experiment_name, tracker.parent_id)
    return result


def _write_outputs(best_record: CandidateRecord | None, records: list[CandidateRecord], objective: CandidateObjective, task: Task,
                   config: Config, run_dir: RunDirectory) -> tuple[bool, Any]:
    """best/ (the best architecture's config and preprocessor) and the plots. A full disk here loses neither the
    records nor the MLflow run's status: both are rebuilt from candidates.jsonl by a resume."""
    try:
        if best_record is not None:
            save_folder(run_dir.best, objective.hf_config(best_record.architecture), task.preprocessor)
        plots = write_search_plots(records, config.task.metric, run_dir.plots,
                                   pareto_costs=["num_parameters"] + (["latency_ms"] if config.objective.cost == "latency_ms" else []))
    except OSError as exc:
        log.warning("could not write the search's outputs in %s: %s; `nas resume=%s` writes them", run_dir, exc, run_dir)
        return False, None
    return best_record is not None, plots


def settle_unfinished_runs(tracker: Tracker, records: list[CandidateRecord], objective: CandidateObjective) -> None:
    """Child runs left RUNNING by an interruption: completed from their record when the candidate was recorded
    (the interruption came before MLflow had it all), else marked KILLED (it was training; it trains again on resume)."""
    recorded = {r.mlflow_run_id: r for r in records}
    for run_id in tracker.unfinished_candidates():
        if run_id in recorded:
            tracker.finish_candidate(recorded[run_id], _config_json(objective, recorded[run_id].architecture))
        else:
            tracker.mark_killed(run_id)
    tracker.flush()


def _close_search_run(tracker: Tracker, status: str, records: list[CandidateRecord], objective: CandidateObjective, run_dir: RunDirectory,
                      has_best: bool, plots: Any) -> None:
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
            tracker.log_artifact(run_dir.best / "config.json", "best")
        tracker.log_artifact(run_dir.candidates)
        tracker.log_artifact(run_dir.scores)  # evaluation=weight_sharing: every score (the table artifact shows them too)
        tracker.log_artifact(run_dir.controller)
        if plots:
            tracker.log_artifact(run_dir.plots, "plots")
        tracker.end_search(status)
    except StoreUnavailable as exc:
        if status == "FINISHED":
            raise SearchStopped(f"{exc}. The search is complete in {run_dir.candidates}; when the store answers again, "
                                f"`nas resume={run_dir}` logs the rest") from None


def validate_config(config: Config) -> None:
    """Every setting that can be checked without data, before anything is read or trained."""
    check_settings(config)  # what needs no torch (the command has checked it already, before the heavy imports)
    resolve_device(config.trainer.device)  # a missing GPU fails here, not in every candidate
    config.search_space.validate(config.task.name)


def _config_json(objective: CandidateObjective, architecture: Architecture) -> str | None:
    try:
        return objective.hf_config(architecture).to_json_string(use_diff=True)
    except Exception:  # the candidate failed because its config cannot be built
        return None
