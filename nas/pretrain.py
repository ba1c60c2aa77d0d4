"""Pre-train, then fine-tune: the optional first stage of a candidate's evaluation.

Each candidate's body is first trained without labels on a text corpus (masked LM for encoder
families, causal LM for decoder families: ``nas.models.Family.pretraining``), then copied into the
task model, which is fine-tuned on the (small) labelled subset as usual.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from nas.errors import BadInput
from nas.tasks import TASKS, task_spec
from nas.tasks.base import epoch_batches
from nas.tasks.cache import cached_encoding
from nas.tasks.data import DataError, read_table
from nas.train import PretrainConfig


def read_corpus(config: PretrainConfig, task_name: str) -> list[str]:
    """The unlabelled texts named by ``trainer.pretrain``, for a task whose spec says it can pre-train; checked before anything trains."""
    if not task_spec(task_name).pretraining:
        can = [name for name, spec in TASKS.items() if spec.pretraining]
        raise BadInput(f"trainer.pretrain.steps={config.steps}: pre-training is for text tasks {can}, not '{task_name}'")
    if not config.corpus_file:
        raise BadInput(f"trainer.pretrain.steps={config.steps} needs trainer.pretrain.corpus_file (unlabelled text)")
    column = config.text_column
    return read_table(config.corpus_file, [column], "trainer.pretrain.corpus_file", nrows=config.corpus_size)[column].astype(str).tolist()


class PretrainingCorpus:
    """The corpus encoded once with the task's tokenizer, cut to the task's sequence length."""

    def __init__(self, texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int, config: PretrainConfig):
        self.tokenizer, self.config = tokenizer, config
        enc = cached_encoding(tokenizer, texts, truncation=True, max_length=max_length, padding="max_length")
        self.input_ids, self.attention_mask = enc["input_ids"], enc["attention_mask"]
        if len(self.input_ids) < config.batch_size:
            raise DataError(f"trainer.pretrain.corpus_file: {len(texts)} texts, fewer than trainer.pretrain.batch_size={config.batch_size}")

    def check(self, objective: str) -> None:
        if objective == "mlm" and self.tokenizer.mask_token_id is None:
            raise BadInput("trainer.pretrain: masked-LM pre-training needs a tokenizer with a mask token "
                           "(task.tokenizer=wordpiece has one; byte_bpe does not)")

    def batches(self, objective: str, seed: int) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches for ``objective`` (mlm | clm); the masking is seeded, so candidates see the same masks."""
        collator = DataCollatorForLanguageModeling(self.tokenizer, mlm=objective == "mlm",
                                                   mlm_probability=self.config.mlm_probability, seed=seed)
        for idx in epoch_batches(len(self.input_ids), self.config.batch_size, torch.Generator().manual_seed(seed)):
            length = int(self.attention_mask[idx].sum(1).max())  # trim the padding the whole batch shares
            examples = [{"input_ids": ids[:length], "attention_mask": mask[:length]}
                        for ids, mask in zip(self.input_ids[idx], self.attention_mask[idx])]
            yield collator(examples)


def transfer_body(pretrained: torch.nn.Module, task_model: torch.nn.Module) -> None:
    """Copy the pre-trained body (embeddings and layers) into the task model; its task head stays freshly initialised."""
    source = getattr(pretrained, pretrained.base_model_prefix)
    target = getattr(task_model, task_model.base_model_prefix)
    result = target.load_state_dict(source.state_dict(), strict=False)
    # Only parts the self-supervised model lacks may stay untrained (BERT's pooler).
    untrained = [k for k in result.missing_keys if not k.startswith("pooler.")]
    if untrained or result.unexpected_keys:
        raise RuntimeError(f"pre-trained body does not fit the task model: missing {untrained}, unexpected {result.unexpected_keys}")
