"""A task from outside nas/: one module (its settings, spec and Task class, here) plus one YAML, and a real search with it.

The toy task reads texts and asks whether each mentions a keyword (a setting of its own); it is scored by its error
rate, a metric where lower is better. Nothing under nas/ knows about it: it is registered like the shipped tasks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient

from nas.config import register_configs
from nas.models import FAMILIES, auto_model, get_family, tasks_of
from nas.pareto import maximised
from nas.runner import run_search
from nas.tasks import TASKS, TaskConfig, TaskSpec, register_task
from nas.tasks.base import label_fields, tensor_batches
from nas.tasks.data import read_table
from nas.tasks.tokenizer import train_tokenizer

from .conftest import TINY, compose_config


@dataclass
class KeywordConfig(TaskConfig):
    name: str = "keyword"
    metric: str = "error_rate"
    keyword: str = "good"  # a text that mentions it is class 1
    text_column: str = "text"
    max_length: int = 16  # tokens per text
    vocab_size: int = 200


class KeywordTask:
    name = "keyword"

    def __init__(self, train_file: str, validation_file: str, train_size: int | None, val_size: int | None, test_file: str | None,
                 test_size: int | None, metric: str, keyword: str, text_column: str, max_length: int, vocab_size: int):
        self.metric = metric
        read = {"columns": [text_column]}
        train = read_table(train_file, key="task.train_file", nrows=train_size, **read)[text_column].astype(str).tolist()
        val = read_table(validation_file, key="task.validation_file", nrows=val_size, **read)[text_column].astype(str).tolist()
        self.tokenizer = train_tokenizer("wordpiece", train, vocab_size)
        self.max_length, self.keyword = max_length, keyword
        self.train, self.val = self._encode(train), self._encode(val)

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding="max_length", return_tensors="pt")
        labels = torch.tensor([int(self.keyword in text.split()) for text in texts])
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}

    @property
    def preprocessor(self):
        return self.tokenizer

    def config_fields(self) -> dict[str, Any]:
        return {"vocab_size": len(self.tokenizer), "max_position_embeddings": self.max_length,
                "pad_token_id": self.tokenizer.pad_token_id, **label_fields(["absent", "present"])}

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        return tensor_batches(self.train, batch_size, generator)

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        data = self.val
        with torch.no_grad():
            logits = model(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits
        return {"error_rate": float((logits.argmax(-1) != data["labels"]).float().mean())}

    def reward(self, metrics: dict[str, float]) -> float:
        return -metrics["error_rate"]


SPEC = TaskSpec(
    "keyword", KeywordConfig, {"error_rate": False}, "AutoModelForSequenceClassification",
    build=lambda config, tokenizer_texts, with_test: KeywordTask(**config.as_kwargs(with_test)),
    pipeline=("text-classification", "tokenizer"), columns=("text_column",), families=("bert",),
)

WORDS = ["the", "a", "film", "plot", "actor", "scene", "long", "short", "dull", "bright", "story", "music"]


@pytest.fixture
def keyword_task(tmp_path: Path) -> Iterator[list[str]]:
    """The toy task registered, its data files and its YAML written: the overrides that choose it."""
    register_task(SPEC)
    register_configs()  # _schemas/task/keyword in Hydra's ConfigStore
    rng = torch.Generator().manual_seed(0)
    for split, n in (("train", 96), ("validation", 48)):
        rows = [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (5,), generator=rng).tolist()) for _ in range(n)]
        rows = [f"{row} good" if i % 2 else row for i, row in enumerate(rows)]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": row}) + "\n" for row in rows))
    (tmp_path / "conf" / "task").mkdir(parents=True)
    (tmp_path / "conf" / "task" / "keyword.yaml").write_text(
        f"defaults:\n  - /_schemas/task/keyword\n  - _self_\n\ntrain_file: {tmp_path / 'train.jsonl'}\nvalidation_file: {tmp_path / 'validation.jsonl'}\n")
    yield [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "task=keyword"]
    del TASKS["keyword"]


@pytest.mark.slow
def test_a_task_registered_from_outside_runs_a_real_search(tmp_path, sqlite_uri, keyword_task):
    config = compose_config([*keyword_task, *TINY, "strategy=random", f"tracking.uri={sqlite_uri}"])
    assert isinstance(config.task, KeywordConfig) and config.task.keyword == "good"
    assert get_family("bert", "keyword")  # the task's spec names the family
    result = run_search(config, tmp_path / "run")

    assert len(result.history) == 5 and all(e.ok for e in result.history), [e.error for e in result.history]
    for e in result.history:
        assert e.value == -e.info["metrics"]["error_rate"]
    assert not maximised("error_rate", None)  # its direction comes from its spec
    client = MlflowClient(sqlite_uri)
    runs = client.search_runs([client.get_experiment_by_name("nas").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    task_params = {k for k in parent.data.params if k.startswith("task.")}
    assert task_params == {f"task.{k}" for k in KeywordConfig.__dataclass_fields__}  # its own settings, no other task's
    assert all(any(k.endswith("error_rate") for k in r.data.metrics) for r in runs if r is not parent)
    assert (tmp_path / "run" / "best" / "config.json").is_file()


def test_a_task_setting_misspelled_fails_at_compose_time_naming_it(keyword_task):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([*keyword_task, "task.keywrd=bad"])
    assert "keywrd" in str(err.value) + str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException):
        compose_config([*keyword_task, "task.image_size=28"])  # another task's setting


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_keeps_its_spec(name):
    # The contract every task meets: its YAML composes against its own schema, its metric is one it reports,
    # its Auto class exists and some family has a head for it.
    spec = TASKS[name]
    config = compose_config([f"task={name}"]).task
    assert type(config) is spec.schema and config.name == name
    assert config.metric in spec.metrics and all(getattr(config, column) for column in spec.columns)
    assert auto_model(name).__name__ == spec.auto_model
    assert [family for family in FAMILIES.values() if name in tasks_of(family)]
