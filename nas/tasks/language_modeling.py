"""Causal language modelling: perplexity of fixed-length token blocks; reward = -log(perplexity)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from nas.errors import BadInput
from nas.tasks.base import epoch_batches, eval_split
from nas.tasks.data import DataError, read_table
from nas.tasks.tokenizer import train_tokenizer


class LanguageModelingTask:
    name = "language_modeling"
    seeded_batches = True  # train_batches depends on its generator alone: a search records them once (nas.train.RecordedBatches)

    def __init__(self, train_file: str, validation_file: str, text_column: str, train_size: int | None, val_size: int | None,
                 max_length: int, tokenizer: str, vocab_size: int, metric: str = "perplexity", tokenizer_texts: Sequence[str] = (),
                 test_file: str | None = None, test_size: int | None = None):
        if metric != "perplexity":
            raise BadInput(f"task.metric '{metric}' is not a language_modeling metric; use 'perplexity'")
        self.metric = metric
        train = read_table(train_file, [text_column], "task.train_file", nrows=train_size)[text_column].astype(str).tolist()
        val = read_table(validation_file, [text_column], "task.validation_file", nrows=val_size)[text_column].astype(str).tolist()
        # Only nas-final evaluates on the test split; a search never reads it.
        test = None if test_file is None else \
            read_table(test_file, [text_column], "task.test_file", nrows=test_size)[text_column].astype(str).tolist()
        self.tokenizer = train_tokenizer(tokenizer, [*train, *tokenizer_texts], vocab_size)
        self.block_size = max_length
        self.train = self._blocks(train, "task.train_file")
        self.val = self._blocks(val, "task.validation_file")
        self.splits = {"validation": self.val, **({"test": self._blocks(test, "task.test_file")} if test is not None else {})}

    def _blocks(self, texts: list[str], key: str) -> torch.Tensor:
        """Texts joined by end-of-text tokens and cut into blocks of ``block_size`` tokens: (N, T)."""
        eos = self.tokenizer.eos_token_id
        ids = [i for row in self.tokenizer(texts)["input_ids"] for i in (*row, eos)]
        n = len(ids) // self.block_size
        if n == 0:
            raise DataError(f"{key}: fewer than {self.block_size} tokens; lower task.max_length or add text")
        return torch.tensor(ids[: n * self.block_size]).view(n, self.block_size)

    @property
    def preprocessor(self):
        return self.tokenizer

    def config_fields(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {
            "vocab_size": len(tok),
            "max_position_embeddings": self.block_size,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        }

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        for idx in epoch_batches(len(self.train), batch_size, generator):
            blocks = self.train[idx]
            yield {"input_ids": blocks, "labels": blocks}

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        data = eval_split(self.splits, split)
        total, count, device = 0.0, 0, next(model.parameters()).device
        for start in range(0, len(data), batch_size):
            blocks = data[start : start + batch_size].to(device)
            predicted = blocks[:, 1:].numel()  # the model shifts labels: T - 1 predictions per block
            total += model(input_ids=blocks, labels=blocks).loss.item() * predicted
            count += predicted
        loss = total / count
        return {"loss": loss, "perplexity": math.exp(loss) if loss < 700 else math.inf}

    def reward(self, metrics: dict[str, float]) -> float:
        return -metrics["loss"]  # = -log(perplexity)
