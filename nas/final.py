"""``nas-final``: a finished search's best architecture as a model.

Reads the search (its output directory or its MLflow parent run: the composed config and
candidates.jsonl), takes the successful candidate with the highest reward, trains that architecture
with a budget of its own (``trainer``, default conf/trainer/final.yaml) on the whole training split,
scores it on the validation and the test split with the task's own metric code, saves model and
preprocessor with ``save_pretrained`` (``AutoModelFor<Task>.from_pretrained(dir)`` loads it), logs a
run with the model to the search's MLflow experiment and registers it. Bad input fails before
anything trains, naming the path or run id.

    nas-final search=outputs/runs/<date>/<time>
    nas-final search=<run id> tracking.uri=sqlite:///outputs/mlflow.db trainer.max_steps=2000 register_as=my-model
"""

from __future__ import annotations

import os

# Before huggingface_hub and mlflow are imported (nas.config imports transformers): nothing here may reach the
# internet. MLflow 3 sends usage telemetry (config.mlflow-telemetry.io) unless told not to; models and tokenizers
# are built locally, so the Hub is never needed.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from nas.config import (  # noqa: E402
    CONF_DIR, Config, FinalConfig, FinalTaskConfig, TaskConfig, TrackingConfig, check_saved_config, register_configs, run_id_of,
    to_typed,
)
from nas.cli import register_help  # noqa: E402
from nas.errors import BadInput, reporting, run_command  # noqa: E402
from nas.records import CandidateRecord, load_records  # noqa: E402

register_configs()
register_help()  # the ${nas_groups:...} of nas-final --help
log = logging.getLogger(__name__)

CONFIG_FILE = ".hydra/config.yaml"
CANDIDATES_FILE = "candidates.jsonl"
METRICS_FILE = "metrics.json"


class FinalError(BadInput):
    """Bad input to nas-final (the search, its candidates, its test split): raised before anything trains."""


# ---------------------------------------------------------------------------------------------- its settings

SEED_MAX = 2**32 - 1  # the search seeds numpy with its seed, which takes [0, 2**32 - 1]; the final seed is a search seed
REGISTERED_NAME_MAX = 256  # MLflow's registered_models.name column (String(256)); longer names fail in MySQL / PostgreSQL stores


def check_registered_name(name: str, key: str = "register_as") -> None:
    """The registered-model names MLflow 3 takes (mlflow.utils.validation._validate_model_name, the file registry's
    extra rules, the database column's length), checked before anything trains: FinalError naming ``key`` otherwise."""
    import posixpath

    if not name.strip():
        raise FinalError(f"{key}={name!r} is empty; give a registered model name, or leave {key} unset for nas-<task>")
    for chars, what in (("/:", "'/' or ':'"), ("%", "'%'")):
        if any(c in name for c in chars):
            raise FinalError(f"{key}={name!r}: MLflow's registered model names cannot contain {what}")
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        raise FinalError(f"{key}={name!r}: MLflow refuses names that resolve to other paths (this one would resolve to {norm!r})")
    if len(name) > REGISTERED_NAME_MAX:
        raise FinalError(f"{key}={name!r}: {len(name)} characters, MLflow keeps at most {REGISTERED_NAME_MAX}")


def validate_final(config: FinalConfig) -> None:
    """Every setting of nas-final, before the search is read, anything trains or anything is logged: ValueError
    naming the key and its value. The data sizes are TaskConfig.validate's (make_task, before any work too)."""
    from nas.tracking import MAX_RUN_NAME, check_store
    from nas.train import resolve_device

    if not str(config.search).strip():
        raise FinalError("search is empty; give a search's output directory or its MLflow parent run id")
    if config.seed is not None and not 0 <= config.seed <= SEED_MAX:
        raise FinalError(f"seed must be an integer in [0, {SEED_MAX}] (or null: the search's), got {config.seed}")
    config.trainer.validate()
    resolve_device(config.trainer.device)  # a device this machine trains on
    if config.trainer.pretrain.corpus_file is not None and not config.trainer.pretrain.corpus_file.strip():
        raise FinalError("trainer.pretrain.corpus_file is empty; name a text file, or null for the task's training texts")
    if config.task.test_file is not None and not config.task.test_file.strip():
        raise FinalError("task.test_file is empty; name the test split's data file, or null for the search's")
    if config.tracking.uri is not None:
        if not config.tracking.uri.strip():
            raise FinalError("tracking.uri is empty; give the MLflow store, or null for the search's")
        check_store(config.tracking.uri)  # the forms MLflow takes, a server that answers, a sqlite file that can be written
    if config.register_as is not None:
        check_registered_name(config.register_as)
    if config.run_name is not None:
        if not config.run_name.strip():
            raise FinalError("run_name is empty; give an MLflow run name, or null for final-<task>-<search run id>-<date>-<time>")
        if len(config.run_name) > MAX_RUN_NAME:
            raise FinalError(f"run_name={config.run_name!r}: {len(config.run_name)} characters, MLflow keeps at most {MAX_RUN_NAME}")


@dataclass
class Search:
    """A finished search as nas-final reads it."""

    config: Config
    raw: DictConfig  # the composed config as the search saved it (interpolations unresolved)
    records: list[CandidateRecord]  # candidates.jsonl
    where: str  # how messages name it: its directory, or its MLflow run
    tracking_uri: str  # the MLflow store the final run goes to
    run_id: str | None = None  # the search's parent run, when the store has it
    experiment_id: str | None = None


@dataclass
class FinalResult:
    output_dir: Path
    architecture: dict[str, Any]
    metrics: dict[str, float]  # val_* and test_*, as logged
    num_parameters: int
    mlflow: dict[str, Any] = field(default_factory=dict)  # run_id, model_uri, registered_name, registered_version, ...


# ---------------------------------------------------------------------------------------------- reading the search


def load_search(search: str, tracking_uri: str | None = None) -> Search:
    """The search ``search`` names: an output directory or an MLflow parent run id (``runs:/<id>`` too)."""
    text = str(search).strip()
    path = Path(text)
    if path.is_dir():
        return _search_from_directory(path, tracking_uri)
    run_id = run_id_of(text)
    if run_id:
        return _search_from_run(run_id, tracking_uri or TrackingConfig.uri)
    if path.exists():
        raise FinalError(f"search: '{text}' is a file; give a search's output directory or its MLflow parent run id")
    raise FinalError(f"search: directory '{text}' does not exist (nor is it an MLflow run id)")


def _typed(raw: DictConfig, where: str) -> Config:
    try:
        check_saved_config(raw, f"search: {where}")
        return to_typed(raw)
    except Exception as exc:
        raise FinalError(f"search: cannot read the search's config {where}: {exc}") from exc


def _records(path: Path, where: str) -> list[CandidateRecord]:
    try:
        return load_records(path)
    except ValueError as exc:
        raise FinalError(f"search: {where}: {exc}") from exc


def _search_from_directory(path: Path, tracking_uri: str | None) -> Search:
    from nas import registry

    config_file, candidates = path / CONFIG_FILE, path / CANDIDATES_FILE
    if not config_file.is_file():
        raise FinalError(f"search: '{path}' has no {CONFIG_FILE}; is it the output directory of a nas search?")
    if not candidates.is_file():
        raise FinalError(f"search: '{path}' has no {CANDIDATES_FILE}; is it the output directory of a nas search?")
    raw = OmegaConf.load(config_file)
    config = _typed(raw, f"'{config_file}'")
    search = Search(config, raw, _records(candidates, f"'{path}'"), f"'{path}'", tracking_uri or config.tracking.uri)
    # The parent run: the one every candidate's run is nested in.
    run_ids = [r.mlflow_run_id for r in search.records if r.mlflow_run_id]
    if run_ids:
        try:
            run = registry.get_run(search.tracking_uri, run_ids[0])
            search.run_id, search.experiment_id = registry.parent_run_id(run), run.info.experiment_id
        except registry.RunNotFound:
            pass
    return search


def _search_from_run(run_id: str, tracking_uri: str) -> Search:
    from nas import registry
    from nas.tracking import download_run_artifact, resolve_uri

    where = f"MLflow run '{run_id}' in {resolve_uri(tracking_uri)}"
    try:
        run = registry.get_run(tracking_uri, run_id)
    except registry.RunNotFound as exc:
        raise FinalError(f"search: {exc}; give tracking.uri=... where the search logged it") from None
    parent = registry.parent_run_id(run)
    if parent:
        raise FinalError(f"search: {where} is a candidate of the search run '{parent}'; give that run id")
    local = Path(tempfile.mkdtemp(prefix="nas-final-"))
    files = {}
    for artifact in (CONFIG_FILE, CANDIDATES_FILE):
        try:
            files[artifact] = download_run_artifact(tracking_uri, run_id, artifact, local)
        except Exception as exc:
            raise FinalError(f"search: {where} has no artifact {artifact}; is it the parent run of a nas search "
                             f"started by the nas command? ({type(exc).__name__})") from exc
    raw = OmegaConf.load(files[CONFIG_FILE])
    config = _typed(raw, where)
    return Search(config, raw, _records(files[CANDIDATES_FILE], where), where,
                  tracking_uri, run_id, run.info.experiment_id)


def best_candidate(search: Search) -> CandidateRecord:
    """The successful candidate with the highest reward (the earliest of equals)."""
    ok = [r for r in search.records if r.ok and isinstance(r.reward, (int, float)) and math.isfinite(r.reward)]
    if not ok:
        raise FinalError(f"search: no successful candidate in {search.where} "
                         f"({len(search.records)} candidates, none with status 'ok' and a finite reward)")
    return max(ok, key=lambda r: r.reward)


@dataclass(frozen=True)
class SearchData:
    """The data a search trained and validated on, as nas-final names it and picks its test split."""

    shipped: bool  # the task's shipped train and validation files
    test_file: str | None  # a test split of that same data, or None
    test_files: dict[str, str]  # audio's extra test sets of that same data
    note: str | None = None  # why there is no test split (said in the output, metrics.json and the MLflow run)


def data_digest(paths: list[str], length: int = 8) -> str:
    """A short SHA-256 of the files' digests: the same data gives the same digest, wherever its files are."""
    import hashlib

    from nas.provenance import file_digest

    return hashlib.sha256("".join(file_digest(p, 64) for p in paths).encode()).hexdigest()[:length]


def search_data(search: Search, final: FinalTaskConfig) -> SearchData:
    """Which data the search used, and the test split that belongs to it: the shipped task's test split only for a
    search of the shipped train and validation files; for a search of the user's own files, only a test file given
    for them (the search's task.test_file when it is not the shipped one, or nas-final's task.test_file)."""
    from nas.provenance import on_shipped_data, own_data_settings, shipped_task, shipped_value

    shipped = on_shipped_data(search.config.task)
    task = own_data_settings(search.config.task)
    test_file, test_files = task.test_file, dict(getattr(task, "test_files", {}))  # audio's: other tasks have none
    if shipped and test_file is None:  # a search from before task.test_file existed: its data's own test split
        test_file = shipped_value(shipped_task(task.name), "test_file")
    test_file = final.test_file or test_file
    note = None
    if test_file is None and not test_files:
        why = "the search used its own data and no test file was given for it" if not shipped else "the search's task has none"
        note = f"no test split ({why}; give one with task.test_file=PATH): validation metrics only"
    return SearchData(shipped, test_file, test_files, note)


def _stem(path: str, length: int = 48) -> str:
    """A file's name without its suffixes, in the characters a registered model name takes."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).name.split(".")[0])[:length] or "data"


def registered_name(task: TaskConfig, data: SearchData) -> str:
    """nas-<task> for the shipped data; nas-<task>-<train file>-<digest of the train and validation files> for the
    user's own (read after make_task has checked the files): their models never become versions of a shipped model."""
    base = f"nas-{task.name.replace('_', '-')}"
    return base if data.shipped else f"{base}-{_stem(task.train_file)}-{data_digest([task.train_file, task.validation_file])}"


def final_task_config(search: Search, final: FinalTaskConfig, data: SearchData) -> TaskConfig:
    """The search's task with the final sizes and the test split that belongs to its data (none: validation only)."""
    from nas.provenance import own_data_settings

    extra_sets = {"test_files": data.test_files} if hasattr(search.config.task, "test_files") else {}  # audio's setting
    return dataclasses.replace(own_data_settings(search.config.task), train_size=final.train_size, val_size=final.val_size, test_file=data.test_file,
                               test_size=final.test_size, **extra_sets)


# ---------------------------------------------------------------------------------------------- the final model


def final_data(task: TaskConfig) -> dict[str, tuple[str, int | None]]:
    """The files the final run reads (context -> (file, rows used)): its MLflow dataset inputs."""
    data = {"train": (task.train_file, task.train_size), "validation": (task.validation_file, task.val_size)}
    if task.test_file:
        data["test"] = (task.test_file, task.test_size)
    for name, path in getattr(task, "test_files", {}).items():  # audio's extra test sets
        data[f"test.{name}"] = (path, None)
    return data


def version_description(task: TaskConfig, data: SearchData, metrics: dict[str, float], search: Search, best: CandidateRecord) -> str:
    """What a registry version says of itself: its data, its metrics, the search that found it."""
    scores = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    sets = [task.test_file] if task.test_file else list(getattr(task, "test_files", {}).values())
    test = f"test {', '.join(sets)}" if sets else data.note
    return (f"{task.name} on {task.train_file} (validation {task.validation_file}; {test}). {scores}. "
            f"Found by search {search.run_id or search.where}, candidate {best.index}.")


def kept(trained) -> str:
    """The model card's words for which weights ship (trainer.eval_every)."""
    if trained.best_step is None:
        return ""
    if trained.best_step == trained.steps:
        return " (the last step's weights: no earlier validation was better)"
    return f" (the weights of step {trained.best_step}, its best validation)"


def run_final(config: FinalConfig, output_dir: Path) -> FinalResult:
    """Train, score, save and register the best architecture of ``config.search``; outputs in ``output_dir``."""
    from nas import registry
    from nas.candidate import train_architecture
    from nas.models import auto_model, build_config, parameter_count, pretraining_objective
    from nas.pretrain import PretrainingCorpus, read_corpus
    from nas.export import model_card, save_folder, shippable
    from nas.runner import rounded
    from nas.tasks import make_task
    from nas.tracking import flatten, log_dataset_inputs, open_store, resolve_uri
    from nas.train import evaluate

    # Everything that can fail on bad input, before anything trains: the settings, then the search they name.
    validate_final(config)
    search = load_search(config.search, config.tracking.uri)
    best = best_candidate(search)
    architecture = best.architecture
    search_config = search.config
    data = search_data(search, config.task)
    task_config = final_task_config(search, config.task, data)
    task_name = task_config.name
    family = search_config.search_space.family
    seed = search_config.seed if config.seed is None else config.seed
    trainer = config.trainer
    if search.run_id is None:
        log.warning("the search's MLflow run (%s) is not in %s: the final run goes to experiment '%s' without a search_run_id tag",
                    search.where, resolve_uri(search.tracking_uri), search_config.tracking.experiment_name)
        search.experiment_id = registry.experiment_id(search.tracking_uri, search_config.tracking.experiment_name)
    experiment = open_store(search.tracking_uri).get_experiment(search.experiment_id)
    if experiment.lifecycle_stage != "active":  # MLflow would refuse the final run only after the training
        raise FinalError(f"the search's MLflow experiment '{experiment.name}' (id {experiment.experiment_id}) is deleted in "
                         f"{resolve_uri(search.tracking_uri)}: restore it (mlflow experiments restore --experiment-id "
                         f"{experiment.experiment_id}) for the final run to be logged there")
    if search_config.trainer.pretrain.steps > 0 and trainer.pretrain.steps == 0:
        log.warning("the search pre-trained every candidate (trainer.pretrain.steps=%d); this final training does not "
                    "(give trainer=pretrain_finetune or trainer.pretrain.steps=...)", search_config.trainer.pretrain.steps)
    pretrain = trainer.pretrain
    corpus_texts = read_corpus(pretrain, task_name) if pretrain.steps > 0 else []
    task = make_task(task_config, tokenizer_texts=corpus_texts, with_test=True)
    register_as = config.register_as or registered_name(task_config, data)  # the files are checked: their digest can be read
    check_registered_name(register_as, "register_as" if config.register_as else "the registered name from task.train_file")
    if data.note:
        log.warning("%s", data.note)
    corpus = None
    if corpus_texts:
        corpus = PretrainingCorpus(corpus_texts, task.preprocessor, task.config_fields()["max_position_embeddings"], pretrain)
        corpus.check(pretraining_objective(family))
    hf_config = build_config(family, architecture, {**task.config_fields(), **search_config.search_space.fixed})
    num_parameters = parameter_count(hf_config, task_name)
    log.info("best candidate %s of %s (reward %.4f): %s, %s parameters", best.index, search.where, best.reward, architecture,
             f"{num_parameters:,}")

    # Train as the search trained its candidates (nas.candidate.train_architecture: the same initialisation, pre-training and
    # data order), with the final's own: its trainer (budget, and pre-training settings), the whole training split, its
    # corpus's batches made here, no fidelity checkpoints, no recorded batches.
    log.info("training %d steps (batch %d) on %s training examples%s", trainer.max_steps, trainer.batch_size,
             "all" if task_config.train_size is None else f"the first {task_config.train_size}",
             f", after {pretrain.steps} pre-training steps" if corpus is not None else "")
    model, trained, info = train_architecture(hf_config, task, trainer, seed, architecture,
                                              pretrain_batches=functools.partial(corpus.batches, seed=seed) if corpus is not None else None)
    pretrain_seconds = info.get("pretrain_seconds", 0.0)
    if trained.best_step is not None and trained.best_step < trained.steps:
        log.info("kept the weights of step %d, the best validation %s of every %d steps (step %d: %s)", trained.best_step,
                 task_config.metric, trainer.eval_every, trained.steps, rounded(trained.checkpoints[-1][1]))
    start = time.perf_counter()
    test = evaluate(model, task, trainer.eval_batch_size, split="test") if data.note is None else None
    test_seconds = time.perf_counter() - start
    metrics = {**{f"val_{k}": v for k, v in trained.metrics.items()}, **{f"test_{k}": v for k, v in (test or {}).items()}}
    log.info("validation %s; %s", rounded(trained.metrics), f"test {rounded(test)}" if test is not None else data.note)

    # Save: AutoModelFor<Task>.from_pretrained(output_dir), AutoTokenizer / AutoImageProcessor / AutoFeatureExtractor and
    # transformers.pipeline load it; the preprocessor carries the model's limits (MLflow gets the same one).
    model.to("cpu").eval()
    trained_channels = getattr(model.config, "num_channels", None)
    model, preprocessor = shippable(model, task.preprocessor)
    notes = [data.note] if data.note else []
    if trained_channels == 1 and model.config.num_channels == 3:
        notes.append("Trained on grey images; saved to take colour ones too (the image-classification pipeline converts every image "
                     "to RGB): its patch projection spreads the grey weights over three channels, a third each, so a grey image "
                     "scores as it did and a colour one is seen as its channels' mean.")
    auto_class = auto_model(task_name).__name__
    card = model_card(
        register_as,
        f"A `{family}` model ({num_parameters:,} parameters) whose architecture a `nas` {search_config.strategy} search found "
        f"(search {search.where}, MLflow run `{search.run_id}`; candidate {best.index}, search reward {best.reward:.4f}), "
        f"trained by `nas-final` for {trained.steps} steps{kept(trained)}, scored with the task's metric `{task_config.metric}`.",
        task_name, family, auto_class, architecture,
        {"train": task_config.train_file, "validation": task_config.validation_file, "test": task_config.test_file,
         **{f"test ({k})": v for k, v in data.test_files.items()}},
        metrics, notes)
    save_folder(output_dir, model.config, preprocessor, model, card)
    # Config and preprocessor files (not the weights): shipped beside a model MLflow logs with the pytorch flavour.
    small_files = sorted(p for p in output_dir.iterdir()
                         if p.is_file() and p.suffix in (".json", ".txt", ".model", ".md") and p.name != METRICS_FILE)
    summary: dict[str, Any] = {
        "task": task_name, "family": family, "auto_class": auto_class, "architecture": architecture,
        "num_parameters": num_parameters, "metrics": metrics, "validation": trained.metrics, "test": test, "test_split": data.note or "",
        "train_seconds": trained.train_seconds, "eval_seconds": trained.eval_seconds, "test_seconds": test_seconds,
        "pretrain_seconds": pretrain_seconds, "steps": trained.steps, "best_step": trained.best_step, "seed": seed,
        "checkpoints": [{"step": step, "metrics": m} for step, m in trained.checkpoints],
        "search": {"where": search.where, "run_id": search.run_id, "candidate": best.index, "reward": best.reward,
                   "metrics": best.metrics, "mlflow_run_id": best.mlflow_run_id},
        "trainer": OmegaConf.to_container(OmegaConf.structured(trainer)),
        "task_config": OmegaConf.to_container(OmegaConf.structured(task_config), enum_to_str=True),
    }
    metrics_path = output_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n")  # before MLflow: a store that fails loses nothing

    # MLflow: a run in the search's experiment, the model logged in it and registered.
    search_ref = str(Path(config.search).absolute()) if Path(str(config.search)).is_dir() else str(config.search).strip()
    tags = {"search_run_id": search.run_id or "", "search": search_ref, "task": task_name, "family": family,
            "output_dir": str(output_dir), "stage": "final", "data": "shipped" if data.shipped else "own",
            "test_split": data.note or (task_config.test_file or ", ".join(data.test_files.values()))}
    params = {**architecture, "family": family, "seed": seed, "search_candidate": best.index,
              **flatten({"trainer": summary["trainer"], "task": summary["task_config"]})}
    scalars = {**metrics, "num_parameters": num_parameters, "train_seconds": trained.train_seconds,
               "eval_seconds": trained.eval_seconds, "search_reward": best.reward, **({"test_seconds": test_seconds} if test is not None else {}),
               **({"best_step": trained.best_step} if trained.best_step is not None else {})}
    run_name = config.run_name or f"final-{task_name}" + (f"-{search.run_id[:8]}" if search.run_id else "") + f"-{datetime.now():%Y%m%d-%H%M%S}"
    logged = registry.log_final_model(resolve_uri(search.tracking_uri), search.experiment_id, run_name, tags, params, scalars,
                                      trained.losses, model, preprocessor, task_name, small_files, register_as, card,
                                      version_description(task_config, data, metrics, search, best))
    log_dataset_inputs(search.tracking_uri, logged.run_id, final_data(task_config))
    summary["mlflow"] = {"tracking_uri": resolve_uri(search.tracking_uri), **dataclasses.asdict(logged)}
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n")

    log.info("final model: %s (%s.from_pretrained)", output_dir, summary["auto_class"])
    log.info("metrics: %s%s", ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), f" ({data.note})" if data.note else "")
    log.info("MLflow: run %s (experiment %s, %s, %s flavour); registered model '%s' version %s", logged.run_id, logged.experiment_id,
             summary["mlflow"]["tracking_uri"], logged.flavour, logged.registered_name, logged.registered_version)
    return FinalResult(output_dir, architecture, metrics, num_parameters, summary["mlflow"])


# ---------------------------------------------------------------------------------------------- the command


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="final")
def final_command(cfg: DictConfig) -> None:
    from nas.cli import quiet_libraries, rejected_runs_discarded

    with reporting("nas-final"), rejected_runs_discarded():
        quiet_libraries()
        config: FinalConfig = to_typed(cfg, FinalConfig)
        run_final(config, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    """The ``nas-final`` console script; bad input (FinalError, DataError...) is one message, exit 2."""
    from nas.cli import print_version

    print_version("nas-final")
    run_command(final_command, "nas-final")


if __name__ == "__main__":
    main()
