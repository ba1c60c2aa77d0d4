"""Text classification: labelled texts, accuracy and macro-F1 on the validation set."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from nas.errors import BadInput
from nas.tasks.base import LocalCache, epoch_batches, eval_split, first_rows, label_fields, logit_metrics
from nas.tasks.cache import cached_encoding
from nas.tasks.data import DataError, check_class_labels, check_label_types, check_same_label_kinds, read_table
from nas.tasks.tokenizer import train_tokenizer

METRICS = ("accuracy", "macro_f1")


class TextClassificationTask:
    name = "text_classification"
    seeded_batches = True  # train_batches depends on its generator alone: a search records them once (nas.train.RecordedBatches)

    def __init__(self, train_file: str, validation_file: str, text_column: str, label_column: str | None,
                 train_size: int | None, val_size: int | None, max_length: int, tokenizer: str, vocab_size: int, metric: str,
                 tokenizer_texts: Sequence[str] = (), test_file: str | None = None, test_size: int | None = None,
                 label_names: dict[Any, str] | None = None):
        if metric not in METRICS:
            raise BadInput(f"task.metric '{metric}' is not a text_classification metric; choose one of {list(METRICS)}")
        if not label_column:
            raise BadInput("task.label_column must name the label column for text_classification")
        self.metric, self.label_names = metric, label_names
        train = read_table(train_file, [text_column, label_column], "task.train_file", nrows=train_size)
        val = read_table(validation_file, [text_column, label_column], "task.validation_file", nrows=val_size)
        check_label_types(train[label_column], label_column, train_file, "task.train_file")
        check_label_types(val[label_column], label_column, validation_file, "task.validation_file")
        check_class_labels(train[label_column], label_column, train_file, "task.train_file")
        self.labels = sorted(train[label_column].unique().tolist(), key=str)
        if len(self.labels) < 2:
            raise DataError(f"task.train_file: '{train_file}' has a single label {self.labels} in its {first_rows(train_size)}")
        held_out = {"validation": ("task.validation_file", val)}
        if test_file is not None:  # only nas-final evaluates on the test split; a search never reads it
            test = read_table(test_file, [text_column, label_column], "task.test_file", nrows=test_size)
            check_label_types(test[label_column], label_column, test_file, "task.test_file")
            held_out["test"] = ("task.test_file", test)
        for key, df in held_out.values():
            check_same_label_kinds(train[label_column], df[label_column], label_column, key)
            unseen = sorted(set(df[label_column]) - set(self.labels), key=str)
            if unseen:
                raise DataError(f"{key}: labels {unseen} do not occur in the training subset")
        label_id = {label: i for i, label in enumerate(self.labels)}
        texts = train[text_column].astype(str).tolist()
        # Unlabelled pre-training text (tokenizer_texts) shapes the vocabulary too.
        self.tokenizer = train_tokenizer(tokenizer, [*texts, *tokenizer_texts], vocab_size)
        self.train = self._encode(texts, train[label_column].map(label_id).tolist(), max_length)
        self.splits = {split: self._encode(df[text_column].astype(str).tolist(), df[label_column].map(label_id).tolist(), max_length)
                       for split, (_, df) in held_out.items()}
        self.val = self.splits["validation"]
        self._eval_cache = LocalCache()

    def _encode(self, texts: list[str], labels: list[int], max_length: int) -> dict[str, torch.Tensor]:
        enc = cached_encoding(self.tokenizer, texts, truncation=True, max_length=max_length, padding="max_length")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": torch.tensor(labels)}

    @property
    def preprocessor(self):
        return self.tokenizer

    def config_fields(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {
            "vocab_size": len(tok),
            "max_position_embeddings": self.train["input_ids"].shape[1],
            "pad_token_id": tok.pad_token_id,
            "bos_token_id": tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id,
            "eos_token_id": tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id,
            **label_fields(self.labels, self.label_names),
        }

    @staticmethod
    def _batch(data: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        # Trim the padding shared by the whole batch: the snippets are much shorter than max_length.
        length = int(data["attention_mask"][idx].sum(1).max())
        return {k: (v[idx, :length] if v.dim() == 2 else v[idx]) for k, v in data.items()}

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        for idx in epoch_batches(len(self.train["labels"]), batch_size, generator):
            yield self._batch(self.train, idx)

    def _eval_batches(self, split: str, batch_size: int, device: torch.device) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
        """The split's batches (padding trimmed) and labels on ``device``: made at the first evaluation, then reused."""
        key = (split, batch_size, str(device))
        if key not in self._eval_cache:
            data = eval_split(self.splits, split)
            n = len(data["labels"])
            batches = []
            for start in range(0, n, batch_size):
                batch = self._batch(data, torch.arange(start, min(start + batch_size, n)))
                batch.pop("labels")
                batches.append({k: v.to(device) for k, v in batch.items()})
            self._eval_cache[key] = batches, data["labels"].to(device)
        return self._eval_cache[key]

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        batches, y_true = self._eval_batches(split, batch_size, next(model.parameters()).device)
        logits = torch.cat([model(**batch).logits for batch in batches])
        return logit_metrics(y_true, logits, len(self.labels))

    def reward(self, metrics: dict[str, float]) -> float:
        return metrics[self.metric]
