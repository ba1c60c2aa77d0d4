"""The tasks nas ships: each one's settings schema and spec (its YAML is conf/task/<name>.yaml, its Task class
nas/tasks/<name>.py). Light on purpose: the Task classes, which need torch, are imported when a task is built."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from nas.errors import BadInput
from nas.tasks.spec import TaskConfig, TaskSpec, check_at_least, register_task

TOKENIZERS = ("wordpiece", "byte_bpe")  # trained on the training subset (nas/tasks/tokenizer.py)


@dataclass
class TokenizedTextConfig(TaskConfig):
    """The settings of a task that reads text through a tokenizer trained on its training subset."""

    max_length: int = 64  # tokens per example (classification, translation) or per block (language modelling)
    tokenizer: str = "wordpiece"  # wordpiece | byte_bpe
    vocab_size: int = 4000  # tokenizer vocabulary size

    def validate(self) -> None:
        super().validate()
        check_at_least(self, 1, "max_length", "vocab_size")
        if self.tokenizer not in TOKENIZERS:
            raise BadInput(f"task.tokenizer must be one of {list(TOKENIZERS)}, got {self.tokenizer!r}")


@dataclass
class TextClassificationConfig(TokenizedTextConfig):
    name: str = "text_classification"
    metric: str = "accuracy"
    text_column: str = "text"
    label_column: str = "label"
    label_names: Optional[Dict[Any, str]] = None  # label value -> class name (the model's id2label); null: the values


@dataclass
class LanguageModelingConfig(TokenizedTextConfig):
    name: str = "language_modeling"
    metric: str = "perplexity"
    text_column: str = "text"

    def validate(self) -> None:
        super().validate()
        if self.max_length < 2:  # a 1-token block has no next token to predict
            raise BadInput(f"task.max_length must be >= 2 for language_modeling (tokens per block), got {self.max_length}")


@dataclass
class TranslationConfig(TokenizedTextConfig):
    name: str = "translation"
    metric: str = "chrf"
    source_column: str = "source"  # the text to translate
    target_column: str = "target"  # its reference translation
    max_new_tokens: int = 48  # greedy-decoding length limit at validation

    def validate(self) -> None:
        super().validate()
        check_at_least(self, 1, "max_new_tokens")


@dataclass
class ImageClassificationConfig(TaskConfig):
    name: str = "image_classification"
    metric: str = "accuracy"
    image_column: str = "image"  # the .npz array of images, (N, H, W) or (N, H, W, C) or (N, C, H, W)
    label_column: str = "label"  # the .npz array of labels
    image_size: int = 28  # height = width in pixels; other sizes are an error
    num_channels: int = 1  # 1 (grey) or 3 (RGB)
    label_names: Optional[Dict[Any, str]] = None  # label value -> class name (the model's id2label); null: the values

    def validate(self) -> None:
        super().validate()
        check_at_least(self, 1, "image_size")
        if self.num_channels not in (1, 3):
            raise BadInput(f"task.num_channels must be 1 (grey) or 3 (RGB), got {self.num_channels!r}")


@dataclass
class AudioClassificationConfig(TaskConfig):
    name: str = "audio_classification"
    metric: str = "accuracy"
    audio_column: str = "audio"  # the .npz array of waveforms (N, samples), any PCM dtype
    label_column: str = "label"  # the .npz array of labels
    sampling_rate: int = 8000  # files at another rate are an error (no silent resampling)
    num_mel_bins: int = 32  # log-mel filter banks per frame
    max_length: int = 64  # spectrogram frames per clip
    # extra evaluation sets, name -> file, reported as <name>_accuracy, never the reward (nas-final: with the test split)
    test_files: Dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        check_at_least(self, 1, "sampling_rate", "num_mel_bins", "max_length")


# Each build function imports its Task class on first use and passes it the settings by name.

def _text_classification(config: TextClassificationConfig, tokenizer_texts: Sequence[str], with_test: bool):
    from nas.tasks.text_classification import TextClassificationTask

    return TextClassificationTask(**config.as_kwargs(with_test), tokenizer_texts=tokenizer_texts)


def _language_modeling(config: LanguageModelingConfig, tokenizer_texts: Sequence[str], with_test: bool):
    from nas.tasks.language_modeling import LanguageModelingTask

    return LanguageModelingTask(**config.as_kwargs(with_test), tokenizer_texts=tokenizer_texts)


def _translation(config: TranslationConfig, tokenizer_texts: Sequence[str], with_test: bool):
    from nas.tasks.translation import TranslationTask

    return TranslationTask(**config.as_kwargs(with_test), tokenizer_texts=tokenizer_texts)


def _image_classification(config: ImageClassificationConfig, tokenizer_texts: Sequence[str], with_test: bool):
    from nas.tasks.image_classification import ImageClassificationTask

    return ImageClassificationTask(**config.as_kwargs(with_test))


def _audio_classification(config: AudioClassificationConfig, tokenizer_texts: Sequence[str], with_test: bool):
    from nas.tasks.audio_classification import AudioClassificationTask

    # The extra sets are test sets: nas-final reports them with the test split; a search never reads them.
    kwargs = config.as_kwargs(with_test)
    if not with_test:
        kwargs["test_files"] = {}
    return AudioClassificationTask(**kwargs, test_files_split="test" if with_test else "validation")


CLASSIFICATION = {"accuracy": True, "macro_f1": True}

register_task(TaskSpec(
    "text_classification", TextClassificationConfig, CLASSIFICATION, "AutoModelForSequenceClassification", _text_classification,
    pipeline=("text-classification", "tokenizer"), pretraining=True, columns=("text_column", "label_column"),
))
register_task(TaskSpec(
    "language_modeling", LanguageModelingConfig, {"perplexity": False}, "AutoModelForCausalLM", _language_modeling,
    pipeline=("text-generation", "tokenizer"), pretraining=True, columns=("text_column",),
))
# transformers 5 has no translation pipeline: nas-final logs the model with the pytorch flavour.
register_task(TaskSpec(
    "translation", TranslationConfig, {"bleu": True, "chrf": True}, "AutoModelForSeq2SeqLM", _translation,
    columns=("source_column", "target_column"),
))
register_task(TaskSpec(
    "image_classification", ImageClassificationConfig, CLASSIFICATION, "AutoModelForImageClassification", _image_classification,
    pipeline=("image-classification", "image_processor"), requirements=("pillow",), columns=("image_column", "label_column"),
))
register_task(TaskSpec(
    "audio_classification", AudioClassificationConfig, CLASSIFICATION, "AutoModelForAudioClassification", _audio_classification,
    pipeline=("audio-classification", "feature_extractor"), columns=("audio_column", "label_column"),
))

__all__ = ["TOKENIZERS", "AudioClassificationConfig", "ImageClassificationConfig", "LanguageModelingConfig",
           "TextClassificationConfig", "TokenizedTextConfig", "TranslationConfig"]
