"""Translation (sequence to sequence): source -> target pairs, greedy decoding, BLEU and chrF.

One tokenizer, trained on the source and target texts of the training subset, serves both sides
(the models share encoder and decoder embeddings). Every sequence ends with the end-of-sequence
token; the decoder starts from the padding token, as T5 and Marian do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sacrebleu
import torch
from transformers import DynamicCache, EncoderDecoderCache

from nas.errors import BadInput
from nas.tasks.base import epoch_batches, eval_split
from nas.tasks.cache import cache_on, cached_tensors, tokenizer_state
from nas.tasks.data import read_table
from nas.tasks.tokenizer import train_tokenizer

METRICS = ("bleu", "chrf")
IGNORE = -100  # label positions the loss skips


class TranslationTask:
    name = "translation"
    seeded_batches = True  # train_batches depends on its generator alone: a search records them once (nas.train.RecordedBatches)

    def __init__(self, train_file: str, validation_file: str, source_column: str, target_column: str,
                 train_size: int | None, val_size: int | None, max_length: int, tokenizer: str, vocab_size: int,
                 metric: str = "chrf", max_new_tokens: int = 48, tokenizer_texts: Sequence[str] = (),
                 test_file: str | None = None, test_size: int | None = None):
        if metric not in METRICS:
            raise BadInput(f"task.metric '{metric}' is not a translation metric; choose one of {list(METRICS)}")
        if max_length < 2:
            raise BadInput(f"task.max_length must be at least 2 tokens (one text token and the end of sequence), not {max_length}")
        if max_new_tokens < 1:
            raise BadInput(f"task.max_new_tokens must be at least 1, not {max_new_tokens}")
        self.metric, self.max_length, self.max_new_tokens = metric, max_length, max_new_tokens
        columns = [source_column, target_column]
        train = read_table(train_file, columns, "task.train_file", nrows=train_size).astype(str)
        held_out = {"validation": read_table(validation_file, columns, "task.validation_file", nrows=val_size).astype(str)}
        if test_file is not None:  # only nas-final evaluates on the test split; a search never reads it
            held_out["test"] = read_table(test_file, columns, "task.test_file", nrows=test_size).astype(str)
        sources, targets = train[source_column].tolist(), train[target_column].tolist()
        # Unlabelled text (tokenizer_texts, e.g. a pre-training corpus) shapes the vocabulary too.
        self.tokenizer = train_tokenizer(tokenizer, [*sources, *targets, *tokenizer_texts], vocab_size)
        tok = self.tokenizer
        self.eos_token_id = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if self.eos_token_id is None or tok.pad_token_id is None:
            raise BadInput(f"task.tokenizer '{tokenizer}' has no end-of-sequence or padding token")
        self.train = self._encode(sources, targets)
        # Held-out pairs sorted by source length: generation then pads little. The order changes no metric.
        self.splits: dict[str, tuple[dict[str, torch.Tensor], list[str]]] = {}
        for split, df in held_out.items():
            order = sorted(range(len(df)), key=lambda i: (len(df[source_column][i]), i))
            references = [df[target_column][i] for i in order]
            self.splits[split] = (self._encode([df[source_column][i] for i in order], references), references)
        self.val, self.val_references = self.splits["validation"]

    def _ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids of each text, truncated to max_length with end-of-sequence last, right-padded: (N, T),
        and the mask of the real tokens."""
        rows = [ids[: self.max_length - 1] + [self.eos_token_id]
                for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        ids = torch.full((len(rows), max(map(len, rows))), self.tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids, mask

    def _encode(self, sources: list[str], targets: list[str]) -> dict[str, torch.Tensor]:
        """Token ids, masks and labels (-100 past each target); from the set-up cache when an earlier search encoded
        the same pairs with the same tokenizer (its calls here set no truncation or padding on it to restore)."""
        parts = ("translation", tokenizer_state(self.tokenizer), sources, targets, self.max_length, self.eos_token_id) if cache_on() else ()
        return cached_tensors(parts, lambda: self._encode_now(sources, targets))

    def _encode_now(self, sources: list[str], targets: list[str]) -> dict[str, torch.Tensor]:
        inputs, mask = self._ids(sources)
        labels, target_mask = self._ids(targets)
        return {"input_ids": inputs, "attention_mask": mask, "labels": labels.masked_fill(target_mask == 0, IGNORE)}

    @property
    def preprocessor(self):
        return self.tokenizer

    def config_fields(self) -> dict[str, Any]:
        """Vocabulary, special tokens and positions for a T5, BART or Marian config (extra keys are harmless)."""
        vocab, pad = len(self.tokenizer), self.tokenizer.pad_token_id
        return {
            "vocab_size": vocab,
            "decoder_vocab_size": vocab,  # Marian: the decoder shares the one vocabulary
            "pad_token_id": pad,
            "eos_token_id": self.eos_token_id,
            "bos_token_id": self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.eos_token_id,
            "decoder_start_token_id": pad,
            "forced_eos_token_id": None,  # BART and Marian default to their pretrained ids: plain greedy decoding
            # Learned (BART) or sinusoidal (Marian) positions: the longest input or label, and the
            # decoder start plus every generated token.
            "max_position_embeddings": max(self.max_length, self.max_new_tokens + 1),
            "is_encoder_decoder": True,
        }

    @staticmethod
    def _batch(data: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        # Trim the padding shared by the whole batch, on both sides.
        source = int(data["attention_mask"][idx].sum(1).max())
        target = int((data["labels"][idx] != IGNORE).sum(1).max())
        return {"input_ids": data["input_ids"][idx, :source], "attention_mask": data["attention_mask"][idx, :source],
                "labels": data["labels"][idx, :target]}

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        for idx in epoch_batches(len(self.train["input_ids"]), batch_size, generator):
            yield self._batch(self.train, idx)

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        """Greedy translations of the split's sources scored against the references, and the split's loss."""
        data, references = eval_split(self.splits, split)
        n, device = len(data["input_ids"]), next(model.parameters()).device
        model.eval()
        hypotheses, loss_sum, tokens = [], 0.0, 0
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = {k: v.to(device) for k, v in self._batch(data, torch.arange(start, min(start + batch_size, n))).items()}
                count = int((batch["labels"] != IGNORE).sum())
                loss_sum += model(**batch).loss.item() * count
                tokens += count
                generated = model.generate(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False,
                    # transformers sizes the decoder's cache by the encoder's layer count, so a decoder
                    # deeper than its encoder fails (IndexError); caches that grow per layer fit any depth.
                    cache=EncoderDecoderCache(DynamicCache(), DynamicCache()),
                )
                hypotheses += self.tokenizer.batch_decode(generated.cpu(), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        hypotheses = [h.strip() for h in hypotheses]
        return {
            "bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
            "loss": loss_sum / tokens,
        }

    def reward(self, metrics: dict[str, float]) -> float:
        return metrics[self.metric]
