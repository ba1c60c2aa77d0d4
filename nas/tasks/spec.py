"""What a task is, declared: its name, settings schema, metrics, model class and pipeline; and the registry of tasks.

This module imports nothing heavy (a config loads without torch): a spec names its ``transformers`` Auto class
as a string, and its ``build`` function imports the Task class that reads and scores the data when it is called.
The shipped tasks are declared in nas/tasks/shipped.py; another task registers itself the same way::

    register_task(TaskSpec(name="my_task", schema=MyTaskConfig, metrics={"accuracy": True}, ...))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Optional

from omegaconf import MISSING

from nas.errors import BadInput


@dataclass
class TaskConfig:
    """The settings every task has. Each task's schema subclasses it with only the settings that apply to it
    (registered in Hydra's ConfigStore as ``task/base_<name>``), so a misspelled key fails at compose time."""

    name: str = MISSING  # the registered task (nas.tasks.TASKS) that reads the data and scores a model
    train_file: str = MISSING  # CSV / TSV / JSON lines / Parquet / text (.npz for images and audio); ${nas_data:...} names a shipped file
    validation_file: str = MISSING
    train_size: Optional[int] = 2000  # the first N training examples (rows) form the training subset; null: all of them
    val_size: Optional[int] = 500  # the first N validation examples; null: all of them
    test_file: Optional[str] = None  # the held-out test split: only nas-final reads it (a search never does)
    test_size: Optional[int] = None  # the first N test examples; null: all of them
    metric: str = MISSING  # the metric the reward comes from: one of the task's metrics

    def validate(self) -> None:
        """Raise BadInput naming the first setting that cannot work (before any data is read).
        nas.tasks.make_task calls it; the files themselves are checked as they are read.
        A subclass checks its own settings after these."""
        spec = task_spec(self.name)
        for key in ("train_file", "validation_file"):
            if not getattr(self, key):
                raise BadInput(f"task.{key} is empty; name a data file")
        for key in ("train_size", "val_size", "test_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise BadInput(f"task.{key} must be >= 1 (the first N examples) or null (all of them), got {value}")
        if self.metric not in spec.metrics:
            raise BadInput(f"task.metric '{self.metric}' is not a {spec.name} metric; choose one of {list(spec.metrics)}")
        for key in spec.columns:
            if not getattr(self, key):
                raise BadInput(f"task.{key} is empty; {spec.name} needs it to name a column of the data files")
        for i, key in enumerate(spec.columns):  # one column read twice
            for other in spec.columns[i + 1:]:
                if getattr(self, key) == getattr(self, other):
                    raise BadInput(f"task.{key} and task.{other} both name column '{getattr(self, key)}'; "
                                   "they must name two different columns")

    def as_kwargs(self, with_test: bool) -> dict[str, Any]:
        """The settings as keyword arguments of the task's class (every field but ``name``); without ``with_test``
        the test split is left out: a search never reads it."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}
        if not with_test:
            kwargs.update(test_file=None, test_size=None)
        return kwargs


def check_at_least(config: Any, minimum: int, *keys: str) -> None:
    """Each of ``keys`` (settings of ``config``) is at least ``minimum``, or a BadInput names the first that is not."""
    for key in keys:
        if getattr(config, key) < minimum:
            raise BadInput(f"task.{key} must be >= {minimum}, got {getattr(config, key)!r}")


@dataclass(frozen=True)
class TaskSpec:
    """A task, declared. ``build(config, tokenizer_texts, with_test)`` returns its Task (nas.tasks.base.Task): it reads
    and checks the data files and trains the tokenizer on the training texts and ``tokenizer_texts`` (a pre-training
    corpus); ``with_test`` (nas-final) reads the test split too."""

    name: str  # the task= option and task.name
    schema: type[TaskConfig]  # its settings: TaskConfig plus those that apply to it (task/base_<name> in Hydra's ConfigStore)
    metrics: Mapping[str, bool]  # what evaluate() reports -> whether higher is better; task.metric picks the reward's
    auto_model: str  # the transformers Auto class that builds its models, e.g. "AutoModelForSequenceClassification"
    build: Callable[[Any, Sequence[str], bool], Any]  # imports the Task class on first use (it needs torch)
    pipeline: Optional[tuple[str, str]] = None  # (transformers pipeline, its preprocessor's name) for nas-final's
    # transformers-flavour model; None: the model is logged with the pytorch flavour
    requirements: tuple[str, ...] = ()  # pip packages a logged model needs beside torch, transformers and tokenizers
    # trainer.pretrain works: the model's body is first trained on unlabelled text (masked or causal LM, per family)
    # encoded with the task's tokenizer, which is trained on that text too
    pretraining: bool = False
    columns: tuple[str, ...] = ()  # settings that name data columns: each must be set, no two the same
    families: tuple[str, ...] = ()  # model families with a head for it, beside those whose Family.tasks names it


# name -> spec: what make_task, nas.models, nas.registry, nas.pretrain and nas.pareto look tasks up in.
TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to TASKS (again: replaced). Its metrics must agree on their direction with every other task's,
    since plots and Pareto fronts look a metric's direction up by its name alone."""
    if not issubclass(spec.schema, TaskConfig):
        raise TypeError(f"task '{spec.name}': schema {spec.schema.__name__} must subclass nas.tasks.TaskConfig")
    if not spec.metrics:
        raise ValueError(f"task '{spec.name}' declares no metric")
    for other in TASKS.values():
        for metric, higher in other.metrics.items():
            if other.name != spec.name and spec.metrics.get(metric, higher) != higher:
                raise ValueError(f"task '{spec.name}': metric '{metric}' is {'lower' if higher else 'higher'} is better, "
                                 f"but task '{other.name}' says the opposite")
    TASKS[spec.name] = spec
    return spec


def task_spec(name: str) -> TaskSpec:
    spec = TASKS.get(name)
    if spec is None:
        raise BadInput(f"task.name '{name}' is unknown; choose one of {sorted(TASKS)}")
    return spec


def higher_is_better(metric: str) -> bool | None:
    """Whether a higher ``metric`` is better, as the task that reports it says; None when no task reports it."""
    for spec in TASKS.values():
        if metric in spec.metrics:
            return spec.metrics[metric]
    return None
