"""What every task provides to the runner and the trainer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch

from nas.errors import BadInput


class Task(Protocol):
    name: str  # its registered name (nas.tasks.TASKS): the spec names its Auto model class
    metric: str  # the validation metric the reward comes from
    preprocessor: Any  # a transformers tokenizer or image processor, saved next to the best architecture

    def config_fields(self) -> dict[str, Any]:
        """Task-derived config attributes: vocabulary size, special token ids, labels, positions."""

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """An endless stream of training batches (keyword arguments of the model's forward, with labels).
        A task whose stream depends on ``generator`` alone (no global random state) says so with a class attribute
        ``seeded_batches = True``: a search then makes the stream once and replays it to every candidate."""

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        """Metrics of a trained model on the validation split (the search) or the test split (``nas-final``;
        only when the task was built with a test split). One metric code for both."""

    def reward(self, metrics: dict[str, float]) -> float:
        """The number to maximise."""


def eval_split(splits: dict[str, Any], split: str) -> Any:
    """The evaluation data of ``split``, or an error naming the splits the task has."""
    if split not in splits:
        hint = " (the task was built without a test split: set task.test_file)" if split == "test" else ""
        raise BadInput(f"no '{split}' split to evaluate on{hint}; the task has {sorted(splits)}")
    return splits[split]


class LocalCache(dict):
    """What an object keeps for reuse in this process (evaluation batches on the model's device, configs), by key. Never
    pickled: a copy sent to a worker process fills its own (on its own device)."""

    def __reduce__(self):
        return (LocalCache, ())


def classification_metrics(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 of class ids, from one confusion count on the tensors' device (one transfer), with
    scikit-learn's arithmetic, so the values are its to the last bit: the classes that occur in either tensor, F1 =
    2 tp / (2 tp + fp + fn) in float64 (0 where no class member was predicted or present), averaged with
    numpy.nanmean."""
    counts = torch.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).view(num_classes, num_classes).cpu().numpy()
    tp = np.diagonal(counts)
    true_sum, pred_sum = counts.sum(1), counts.sum(0)
    present = (true_sum + pred_sum) > 0  # scikit-learn's labels: those in y_true or y_pred
    denominator = (true_sum + pred_sum)[present].astype(np.float64)
    f1 = 2.0 * tp[present].astype(np.float64) / denominator
    return {"accuracy": float(tp.sum() / len(y_true)), "macro_f1": float(np.nanmean(f1))}


def logit_metrics(y_true: torch.Tensor, logits: torch.Tensor, num_classes: int) -> dict[str, float]:
    """``classification_metrics`` of the logits' predictions, and ``loss``: their mean cross-entropy in nats (the
    validation loss; a continuous score that ranks weight-sharing subnets better than their accuracy does)."""
    loss = torch.nn.functional.cross_entropy(logits.float(), y_true)
    return {**classification_metrics(y_true, logits.argmax(-1), num_classes), "loss": float(loss)}


def first_rows(n: int | None) -> str:
    """How error messages name a subset: 'first 2000 rows' or 'rows'."""
    return "rows" if n is None else f"first {n} rows"


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless index batches: a fresh permutation every epoch, seeded by ``generator``."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[start : start + batch_size]


def label_fields(labels: list, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The classification head's config attributes for ``labels`` (label ids are their positions), each class called
    by its name in ``names`` (label value as text -> name) when it has one, else by its value."""
    by_text = {str(value): name for value, name in (names or {}).items()}  # 1 on the command line, "1" in a CSV: one label
    named = [by_text.get(str(label), str(label)) for label in labels]
    if len(set(named)) < len(named):
        raise BadInput(f"task.label_names: two classes would have one name ({dict(zip(map(str, labels), named))}); give each its own")
    return {"num_labels": len(labels), "id2label": dict(enumerate(named)), "label2id": {name: i for i, name in enumerate(named)}}


def tensor_batches(data: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches of fixed-size examples (every tensor indexed by example), seeded by ``generator``."""
    for idx in epoch_batches(len(data["labels"]), batch_size, generator):
        yield {k: v[idx] for k, v in data.items()}
