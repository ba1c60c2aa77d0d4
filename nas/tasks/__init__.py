"""Tasks: data, tokenizer, batches and metric, one module each, found by name in TASKS (nas/tasks/spec.py).

Importing this package loads no torch: the Task classes load on first use (PEP 562).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.tasks import shipped  # noqa: F401 (registers the shipped tasks)
from nas.tasks.spec import TASKS, TaskConfig, TaskSpec, higher_is_better, register_task, task_spec

__all__ = ["TASKS", "AudioClassificationTask", "DataError", "ImageClassificationTask", "LanguageModelingTask", "Task",
           "TaskConfig", "TaskSpec", "TextClassificationTask", "TranslationTask", "higher_is_better", "make_task",
           "register_task", "task_spec"]


def __getattr__(name: str) -> Any:  # PEP 562: the heavy names load on first use
    if name == "Task":
        from nas.tasks.base import Task as value
    elif name == "DataError":
        from nas.tasks.data import DataError as value
    elif name == "TextClassificationTask":
        from nas.tasks.text_classification import TextClassificationTask as value
    elif name == "LanguageModelingTask":
        from nas.tasks.language_modeling import LanguageModelingTask as value
    elif name == "TranslationTask":
        from nas.tasks.translation import TranslationTask as value
    elif name == "ImageClassificationTask":
        from nas.tasks.image_classification import ImageClassificationTask as value
    elif name == "AudioClassificationTask":
        from nas.tasks.audio_classification import AudioClassificationTask as value
    else:
        raise AttributeError(f"module 'nas.tasks' has no attribute {name!r}")
    return value


def make_task(config: TaskConfig, tokenizer_texts: Sequence[str] = (), with_test: bool = False) -> Any:
    """The Task that ``config`` (a registered task's settings) describes; checks every setting, then reads and checks
    its data files (cheap) and trains its tokenizer (on ``tokenizer_texts`` too: the unlabelled pre-training corpus).

    ``with_test`` (nas-final): also read ``task.test_file`` (the first ``task.test_size`` rows), evaluated
    with ``evaluate(..., split="test")``; audio's ``task.test_files`` are then reported with the test
    split instead of the validation split. A search never reads the test split.
    """
    config.validate()
    return task_spec(config.name).build(config, tokenizer_texts, with_test)
