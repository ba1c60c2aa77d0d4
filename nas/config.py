"""Config schemas (one dataclass per Hydra group), registered in Hydra's ConfigStore.

A misspelled key or a wrong type then fails at compose time, naming the key. The YAML files in
conf/ hold values only. The settings the library API shares (PPOConfig, TrainerConfig, ...) are in
nas/settings.py; each task's schema (a subclass of TaskConfig, one per task= option) is in nas/tasks/.
Like this module, they import nothing heavy: a config loads without torch.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from nas.errors import BadInput, ResumeError, user_path
from nas.settings import EvaluationConfig, ObjectiveConfig, ParallelConfig, TrainerConfig
from nas.strategies.spec import STRATEGIES, strategy_spec
from nas.tasks import TASKS, TaskConfig, task_spec

_PACKAGE = Path(__file__).resolve().parent
# conf/ and data/ sit beside the package in a checkout and inside it in a wheel.
CONF_DIR = next((p for p in (_PACKAGE / "conf", _PACKAGE.parent / "conf") if p.is_dir()), _PACKAGE.parent / "conf")
DATA_DIR = next((p for p in (_PACKAGE / "data", _PACKAGE.parent / "data") if p.is_dir()), _PACKAGE.parent / "data")


@dataclass
class SearchSpaceConfig:
    family: str = MISSING  # a transformers model_type: bert, gpt2
    dimensions: Dict[str, List[Any]] = MISSING  # config attribute -> ordered choices
    max_params: Optional[int] = None  # parameter budget of the task model, a constraint
    initial: Optional[Dict[str, Any]] = None  # first architecture; default: the middle choice of each dimension
    fixed: Dict[str, Any] = field(default_factory=dict)  # config attributes set for every candidate

    def validate(self, task: str | None = None) -> None:
        """Raise SpaceError (a BadInput) naming the first setting that cannot work, before any data is read: the family
        (and whether it fits ``task``), its attributes, the choice lists, max_params and the initial architecture.
        Constraints that need the task's data (parameter counts) are checked when the space is built."""
        from nas.models import check_attribute_values, get_family, validate_attributes
        from nas.space import SearchSpace, SpaceError, check_dimensions, initial_encoding

        get_family(self.family, task)
        check_dimensions(self.dimensions)
        validate_attributes(self.family, list(self.dimensions), "search_space.dimensions")
        check_attribute_values(self.family, self.dimensions, "search_space.dimensions")  # types, signs, ranges, activations
        validate_attributes(self.family, list(self.fixed), "search_space.fixed")
        check_attribute_values(self.family, self.fixed, "search_space.fixed", choices=False)
        both = sorted(set(self.fixed) & set(self.dimensions))
        if both:  # the architecture's value would win: the fixed one would be silently ignored
            raise SpaceError(f"search_space.fixed: {both} are also search_space.dimensions; set each attribute in one of them")
        if self.max_params is not None and self.max_params < 1:
            raise SpaceError(f"search_space.max_params must be >= 1 (or null: no budget), got {self.max_params}")
        if self.initial is not None:
            initial_encoding(SearchSpace.from_dict(self.dimensions, name=self.family), self.initial)


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///outputs/mlflow.db"  # relative sqlite paths resolve against the working directory
    experiment_name: str = "nas"
    artifact_location: Optional[str] = None  # default: mlartifacts/ beside a sqlite file
    run_name: Optional[str] = None  # parent run name; default: <strategy>-<task>-seed<seed>-<date>-<time> (a sweep job: -<sweep folder>-job<n>)
    # How long the store may stay locked (sqlite) or unreachable (a server) before the search stops; calls are retried
    # with backoff meanwhile, and a stopped search resumes with `nas resume=DIR`.
    retry_seconds: float = 120.0

    def validate(self) -> None:
        if not self.uri:
            raise BadInput("tracking.uri is empty; give an MLflow store (sqlite:///outputs/mlflow.db, http://host:5000)")
        if not self.experiment_name:
            raise BadInput("tracking.experiment_name is empty")
        if not math.isfinite(self.retry_seconds) or self.retry_seconds < 0:
            raise BadInput(f"tracking.retry_seconds must be a finite number >= 0, got {self.retry_seconds}")


@dataclass
class FidelityConfig:
    """Multi-fidelity (progressive hurdles): candidates are evaluated at these training steps on the way to
    trainer.max_steps, and only the promising ones keep training. The reward is the metric at the highest
    step reached; each step's metrics are logged at that step in the candidate's MLflow run."""

    steps: List[int] = field(default_factory=list)  # e.g. [25, 50] with max_steps 100; empty: every candidate trains fully
    promote: float = 0.5  # a candidate goes on past a checkpoint when its reward there is in the top `promote` share of the candidates that reached it
    min_peers: int = 3  # everyone goes on until this many earlier candidates reached the checkpoint

    def validate(self, max_steps: int) -> None:
        if any(not 0 < s < max_steps for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise BadInput(f"fidelity.steps must be increasing steps between 0 and trainer.max_steps={max_steps}, got {list(self.steps)}")
        if not 0 < self.promote <= 1:
            raise BadInput(f"fidelity.promote must be in (0, 1], got {self.promote}")
        if self.min_peers < 1:
            raise BadInput(f"fidelity.min_peers must be >= 1, got {self.min_peers}")


@dataclass
class Config:
    seed: int = 0  # seeds the strategy, data order and every candidate's initialisation
    strategy: str = "ppo"  # a registered strategy (nas.strategies.STRATEGIES), chosen by the strategy= option
    budget: Optional[int] = 44  # distinct candidates evaluated at most (cached repeats are free)
    progress: bool = True  # show a progress bar
    task: TaskConfig = MISSING
    search_space: SearchSpaceConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)  # reward = metric, or metric traded against a cost
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)  # multi-fidelity training (off by default)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)  # standalone training, or weight sharing (two stages)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)  # candidates training at once (process pool or Ray)
    resume: Optional[str] = None  # an interrupted search's output directory: `nas resume=DIR` continues it with its own config
    # Trained tokenizers and encoded texts, kept between searches by a digest of their data and settings (nas/tasks/cache.py); null: none.
    cache_dir: Optional[str] = "outputs/cache"
    # The chosen strategy's settings sit under its name (ppo.*, tpe.*): config_schema(strategy) adds that one field.

    @property
    def strategy_settings(self) -> Any:
        """The chosen strategy's settings (its settings dataclass, under the key of its name), or None: it has none."""
        return getattr(self, self.strategy) if strategy_spec(self.strategy).settings is not None else None


_SCHEMAS: dict[str, type] = {}


def config_schema(strategy: str) -> type:
    """The search's schema when ``strategy`` is chosen: Config plus that strategy's settings under the key of its name
    (ppo.*, tpe.*), so a config carries only its own strategy's settings and another's key fails at compose time.
    Stored as _schemas/strategy/<name> (package _global_) in Hydra's ConfigStore, which the option strategy/<name>.yaml extends."""
    spec = strategy_spec(strategy)
    if spec.settings is None:
        return Config
    schema = _SCHEMAS.get(spec.name)
    if schema is None or schema.__dataclass_fields__[spec.name].type is not spec.settings:  # new, or re-registered
        if spec.name in Config.__dataclass_fields__:
            raise ValueError(f"strategy '{spec.name}': its settings would sit under the key '{spec.name}', which the search config already has")
        name = f"Config_{spec.name}"
        schema = dataclasses.make_dataclass(name, [("strategy", str, field(default=spec.name)),
                                                   (spec.name, spec.settings, field(default_factory=spec.settings))], bases=(Config,))
        schema.__module__ = __name__
        setattr(sys.modules[__name__], name, schema)  # importable by name: a config pickles
        _SCHEMAS[spec.name] = schema
    return schema


@dataclass
class FinalTaskConfig:
    """The data of a final training: the search's task (files, columns, tokenizer) with these sizes."""

    train_size: Optional[int] = None  # the first N training examples; null: the whole training split
    val_size: Optional[int] = None  # the first N validation examples; null: the whole validation split
    test_file: Optional[str] = None  # null: the search's task.test_file (or the shipped task's, for a search of shipped data)
    test_size: Optional[int] = None  # the first N test examples; null: the whole test split


@dataclass
class FinalTrackingConfig:
    uri: Optional[str] = None  # null: the search's tracking.uri (searched for a run id: sqlite:///outputs/mlflow.db)


@dataclass
class FinalConfig:
    """``nas-final``: train a finished search's best architecture longer, on the full data, and ship it."""

    search: str = MISSING  # the search's output directory (outputs/runs/<date>/<time>) or its MLflow parent run id
    seed: Optional[int] = None  # null: the search's seed (the model starts from the searched candidate's initialisation)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # the final training budget (conf/trainer/final.yaml)
    task: FinalTaskConfig = field(default_factory=FinalTaskConfig)
    tracking: FinalTrackingConfig = field(default_factory=FinalTrackingConfig)
    register_as: Optional[str] = None  # registered model name; null: nas-<task>, e.g. nas-text-classification
    run_name: Optional[str] = None  # MLflow run name; null: final-<task>-<search run id>


def shipped_data(relative: str) -> str:
    path = DATA_DIR / relative
    if not path.exists():
        raise BadInput(f"shipped data file '{relative}' not found under {DATA_DIR}")
    return str(path)


def register_configs() -> None:
    """Register the schemas and the ${nas_data:...} resolver (idempotent)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("nas_data"):
        OmegaConf.register_new_resolver("nas_data", shipped_data)
    cs = ConfigStore.instance()
    # Schemas live in the _schemas/ group, which no option list offers: `task=`, `strategy=` and completion name
    # only conf/'s options. Each option's YAML extends its schema: defaults: [/_schemas/<group>/<name>, _self_].
    for name in STRATEGIES:  # strategy=<name>: the search schema with that strategy's settings only
        cs.store(group="_schemas/strategy", name=name, node=config_schema(name), package="_global_")
    for name, spec in TASKS.items():  # task=<name> composes against its own schema: only its settings
        cs.store(group="_schemas/task", name=name, node=spec.schema, package="task")
    cs.store(group="_schemas", name="search_space", node=SearchSpaceConfig, package="search_space")
    cs.store(group="_schemas", name="trainer", node=TrainerConfig, package="trainer")
    cs.store(group="_schemas", name="tracking", node=TrackingConfig, package="tracking")
    cs.store(group="_schemas", name="evaluation", node=EvaluationConfig, package="evaluation")
    cs.store(name="base_final", node=FinalConfig)


# The keys of the one flat task schema that every task shared until each task had its own. A saved config holding
# all of them was written then: the keys its task does not read are dropped, so the search still resumes.
FLAT_TASK_KEYS = frozenset({
    "name", "train_file", "validation_file", "text_column", "label_column", "train_size", "val_size", "test_file",
    "test_size", "max_length", "tokenizer", "vocab_size", "metric", "image_column", "image_size", "num_channels",
    "source_column", "target_column", "max_new_tokens", "audio_column", "sampling_rate", "num_mel_bins", "test_files",
})


# The strategy settings every saved config held until each strategy= option brought only its own: a saved config
# holding all of them was written then, and the sections its strategy does not read are dropped, so it still resumes.
FLAT_STRATEGY_SECTIONS = frozenset({"ppo", "evolution", "tpe"})


def to_typed(cfg: Any, schema: type = Config) -> Any:
    """Composed DictConfig -> Config (or ``schema``, e.g. FinalConfig): the schema of its strategy (config_schema),
    the task's settings typed by the schema its task.name registered. Merging into the schema again rejects keys
    added with ``+group.key=...``, which Hydra lets through and OmegaConf.to_object would silently drop."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=False)  # drops the flags that let the extra key in
    if schema is Config:
        strategy = str(plain.get("strategy", "ppo"))
        schema = config_schema(strategy)
        if FLAT_STRATEGY_SECTIONS <= plain.keys():
            plain = {k: v for k, v in plain.items() if k not in FLAT_STRATEGY_SECTIONS or k == strategy}
    typed = OmegaConf.structured(schema)
    task = plain.get("task") if issubclass(schema, Config) else None
    if isinstance(task, dict) and isinstance(task.get("name"), str):
        task_schema = task_spec(task["name"]).schema  # the task's own: only its settings are accepted
        typed.task = OmegaConf.structured(task_schema)
        if FLAT_TASK_KEYS <= task.keys():
            own = {f.name for f in dataclasses.fields(task_schema)}
            plain["task"] = {k: v for k, v in task.items() if k in own}
    return OmegaConf.to_object(OmegaConf.merge(typed, plain))


_RESOLVER = re.compile(r"\$\{\s*([\w.]+)\s*:")
SAVED_CONFIG_RESOLVERS = {"nas_data"}


def check_saved_config(raw: Any, where: str) -> None:
    """A config read back from a run (a folder or a tracking server's artifact) may name no resolver but ${nas_data:...}:
    ${oc.env:SECRET} in a tampered file would copy this machine's environment into params logged to a shared store."""
    from omegaconf import OmegaConf

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for text in strings(OmegaConf.to_container(raw, resolve=False)):
        foreign = set(_RESOLVER.findall(text)) - SAVED_CONFIG_RESOLVERS
        if foreign:
            raise BadInput(f"{where}: the saved config uses the resolver {sorted(foreign)} in '{text}'; "
                           f"a saved search config may only use {sorted(SAVED_CONFIG_RESOLVERS)}")


_RUN_REFERENCE = re.compile(r"^(?:runs:/)?([0-9a-f]{32})/?$")


def run_id_of(reference: str) -> str | None:
    """The MLflow run id that ``reference`` names (``<id>`` or ``runs:/<id>``), or None: the one parser for
    ``ppo.init_from`` and ``nas-final search=``."""
    match = _RUN_REFERENCE.match(str(reference).strip())
    return match.group(1) if match else None


def check_settings(config: Config) -> None:
    """The settings checked without torch, transformers or data: a bad one is reported before those load."""
    config.trainer.validate()
    settings = config.strategy_settings
    if settings is not None and hasattr(settings, "validate"):
        settings.validate()
    config.objective.validate()
    config.fidelity.validate(config.trainer.max_steps)
    config.evaluation.validate()
    if config.evaluation.shares_weights:
        check_weight_sharing(config)
    config.parallel.validate()
    config.tracking.validate()
    if config.budget is not None and config.budget < 1:
        raise BadInput(f"budget must be >= 1 (or null: until ppo.iterations are done), got {config.budget}")
    if config.budget is None and (config.strategy != "ppo" or config.ppo.iterations is None):
        raise BadInput("budget is null: set budget=N, or strategy=ppo with ppo.iterations=N, or the search never ends")
    config.task.validate()


def check_weight_sharing(config: Config) -> None:
    """What evaluation=weight_sharing cannot combine with, named before anything loads (the space itself is checked
    when its super-network is built, before it trains)."""
    clashes = [
        (config.fidelity.steps, f"fidelity.steps={list(config.fidelity.steps)}: multi-fidelity stops standalone trainings early; "
                                "weight-sharing scores need no training. Drop one of them"),
        (config.objective.cost == "latency_ms", "objective.cost=latency_ms: weight-sharing scores do not measure latency; use "
                                                "objective.cost=num_parameters or evaluation=standalone"),
    ]
    for clash, why in clashes:
        if clash:
            raise BadInput(f"evaluation.mode=weight_sharing cannot be combined with {why}")


def saved_config(run_dir: str, overrides: list[str] = ()) -> Config:
    """The config a search in ``run_dir`` ran with (its .hydra/config.yaml), to resume it.

    A resume changes nothing: ``overrides`` other than ``resume`` are refused, since a search
    replayed under another config would not propose what was recorded.
    """
    from omegaconf import OmegaConf

    if overrides:
        raise ResumeError(f"resume={run_dir} continues the search with its saved config; drop the other overrides: {' '.join(overrides)}")
    if not Path(run_dir).is_dir():
        raise ResumeError(f"resume: '{run_dir}' is not a directory; resume takes the output directory of a search started with `nas`")
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ResumeError(f"resume: '{path}' does not exist; resume takes the output directory of a search started with `nas`")
    with user_path("resume"):
        raw = OmegaConf.load(path)
    check_saved_config(raw, f"resume: '{path}'")
    config = to_typed(raw)
    config.resume = str(run_dir)
    return config


def __getattr__(name: str) -> type:
    """PEP 562: a strategy's schema by its name (Config_<strategy>), made on first use, so a config pickled in one
    process (a worker pool, a Hydra launcher's job) loads in another."""
    if name.startswith("Config_"):
        try:
            return config_schema(name.removeprefix("Config_"))
        except ValueError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
