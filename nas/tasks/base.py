"""What every task provides to the runner and the trainer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch


class Task(Protocol):
    name: str  # its registered name (nas.tasks.TASKS): the spec names its Auto model class
    metric: str  # the validation metric the reward comes from
    preprocessor: Any  # a transformers tokenizer or image processor, saved next to the best architecture

    def config_fields(self) -> dict[str, Any]:
        """Task-derived config attributes: vocabulary size, special token ids, labels, positions."""

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """An endless stream of training batches (keyword arguments of the model's forward, with labels)."""

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        """Metrics of a trained model on the validation split (the search) or the test split (``nas-final``;
        only when the task was built with a test split). One metric code for both."""

    def reward(self, metrics: dict[str, float]) -> float:
        """The number to maximise."""


def eval_split(splits: dict[str, Any], split: str) -> Any:
    """The evaluation data of ``split``, or an error naming the splits the task has."""
    if split not in splits:
        hint = " (the task was built without a test split: set task.test_file)" if split == "test" else ""
        raise ValueError(f"no '{split}' split to evaluate on{hint}; the task has {sorted(splits)}")
    return splits[split]


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
        raise ValueError(f"task.label_names: two classes would have one name ({dict(zip(map(str, labels), named))}); give each its own")
    return {"num_labels": len(labels), "id2label": dict(enumerate(named)), "label2id": {name: i for i, name in enumerate(named)}}


def tensor_batches(data: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches of fixed-size examples (every tensor indexed by example), seeded by ``generator``."""
    for idx in epoch_batches(len(data["labels"]), batch_size, generator):
        yield {k: v[idx] for k, v in data.items()}
