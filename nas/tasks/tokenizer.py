"""Tokenizers trained locally on the training subset: nothing is downloaded."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

TOKENIZERS = ("wordpiece", "byte_bpe")


def train_tokenizer(kind: str, texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    if kind == "wordpiece":  # BERT-style: lower-cased WordPiece with [CLS]/[SEP] around each text
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
        # The trainer breaks frequency ties in hash order, which changes between processes: the token
        # set is stable but the ids are not. Re-number canonically (specials, then sorted) so that the
        # same seed gives the same embeddings, hence the same metrics, in every process.
        learned = sorted(t for t in tok.get_vocab() if t not in special)
        tok.model = models.WordPiece({t: i for i, t in enumerate([*special, *learned])}, unk_token="[UNK]")
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
        )
    if kind == "byte_bpe":  # GPT-2-style byte-level BPE: no unknown tokens
        special = ["<|endoftext|>", "<|pad|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|pad|>")
    raise ValueError(f"task.tokenizer '{kind}' is unknown; choose one of {list(TOKENIZERS)}")
