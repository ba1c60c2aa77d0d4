"""Tasks: data, tokenizer, batches and metric, one module each."""

from __future__ import annotations

from collections.abc import Sequence

from nas.tasks.audio_classification import AudioClassificationTask
from nas.tasks.base import Task
from nas.tasks.data import DataError
from nas.tasks.image_classification import ImageClassificationTask
from nas.tasks.language_modeling import LanguageModelingTask
from nas.tasks.text_classification import TextClassificationTask
from nas.tasks.translation import TranslationTask

TASKS = {
    "text_classification": TextClassificationTask,
    "language_modeling": LanguageModelingTask,
    "translation": TranslationTask,
    "image_classification": ImageClassificationTask,
    "audio_classification": AudioClassificationTask,
}

__all__ = ["TASKS", "AudioClassificationTask", "DataError", "ImageClassificationTask", "LanguageModelingTask", "Task",
           "TextClassificationTask", "TranslationTask", "make_task"]


def make_task(config, tokenizer_texts: Sequence[str] = (), with_test: bool = False) -> Task:
    """The task a TaskConfig describes; reads and checks its data files (cheap) and trains its tokenizer
    (on ``tokenizer_texts`` too: the unlabelled pre-training corpus).

    ``with_test`` (nas-final): also read ``task.test_file`` (the first ``task.test_size`` rows), evaluated
    with ``evaluate(..., split="test")``; audio's ``task.test_files`` are then reported with the test
    split instead of the validation split. A search never reads the test split.
    """
    if callable(getattr(config, "validate", None)):  # a TaskConfig: every setting, before any file is read
        config.validate()
    name = getattr(config.name, "value", config.name)
    test = {"test_file": getattr(config, "test_file", None), "test_size": getattr(config, "test_size", None)} if with_test else {}
    if name == "image_classification":
        return ImageClassificationTask(
            train_file=config.train_file, validation_file=config.validation_file, image_column=config.image_column,
            label_column=config.label_column, train_size=config.train_size, val_size=config.val_size,
            image_size=config.image_size, num_channels=config.num_channels, metric=config.metric, **test,
        )
    if name == "audio_classification":
        return AudioClassificationTask(
            train_file=config.train_file, validation_file=config.validation_file, audio_column=config.audio_column,
            label_column=config.label_column, train_size=config.train_size, val_size=config.val_size,
            sampling_rate=config.sampling_rate, num_mel_bins=config.num_mel_bins, max_length=config.max_length,
            metric=config.metric, test_files=dict(config.test_files), test_files_split="test" if with_test else "validation", **test,
        )
    if name == "translation":
        return TranslationTask(
            train_file=config.train_file, validation_file=config.validation_file, source_column=config.source_column,
            target_column=config.target_column, train_size=config.train_size, val_size=config.val_size,
            max_length=config.max_length, tokenizer=config.tokenizer, vocab_size=config.vocab_size, metric=config.metric,
            max_new_tokens=config.max_new_tokens, tokenizer_texts=tokenizer_texts, **test,
        )
    common = dict(
        train_file=config.train_file, validation_file=config.validation_file, text_column=config.text_column,
        train_size=config.train_size, val_size=config.val_size, max_length=config.max_length,
        tokenizer=config.tokenizer, vocab_size=config.vocab_size, metric=config.metric, tokenizer_texts=tokenizer_texts, **test,
    )
    if name == "text_classification":
        return TextClassificationTask(label_column=config.label_column, **common)
    if name == "language_modeling":
        return LanguageModelingTask(**common)
    raise ValueError(f"task.name '{name}' is unknown; choose one of {sorted(TASKS)}")
