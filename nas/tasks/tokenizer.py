"""Tokenizers trained locally on the training subset: nothing is downloaded."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

from nas.errors import BadInput
from nas.tasks.cache import cache_on, cached, digest
from nas.tasks.shipped import TOKENIZERS  # the names task.tokenizer accepts, checked with the settings

# How each kind's trained tokenizer is wrapped for transformers: its special tokens.
SPECIAL_TOKENS = {
    "wordpiece": {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"},
    "byte_bpe": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>"},
}


def train_tokenizer(kind: str, texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A ``kind`` tokenizer trained on ``texts``; from the set-up cache (nas.tasks.cache) when it holds one trained
    on the same texts with the same settings (a tokenizer's JSON holds all of it: the same tokenizer)."""
    if kind not in SPECIAL_TOKENS:
        raise BadInput(f"task.tokenizer '{kind}' is unknown; choose one of {list(TOKENIZERS)}")
    key = digest(kind, vocab_size, texts) if cache_on() else ""
    trained = cached("tokenizer", key + ".json", lambda data: Tokenizer.from_str(data.decode()), lambda tok: tok.to_str().encode(),
                     lambda: _train(kind, texts, vocab_size))
    return PreTrainedTokenizerFast(tokenizer_object=trained, **SPECIAL_TOKENS[kind])


def _train(kind: str, texts: list[str], vocab_size: int) -> Tokenizer:
    if kind == "wordpiece":  # BERT-style: lower-cased WordPiece with [CLS]/[SEP] around each text
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        normalizer = normalizers.BertNormalizer(lowercase=True)
        tok = _wordpiece(normalizer, models.WordPiece(unk_token="[UNK]"), [])
        # The trainer numbers continuation pieces ("##e") in hash-map order, which changes from one process
        # to the next, and breaks merge ties by those numbers: the vocabulary itself then differs between
        # runs (huggingface/tokenizers#1794). Registering every "##<char>" up front numbers them in a fixed
        # order, so the same texts always give the same vocabulary.
        chars = sorted({c for text in texts for c in normalizer.normalize_str(text) if not c.isspace()})
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[*special, *(f"##{c}" for c in chars)]))
        learned = sorted(t for t in tok.get_vocab() if t not in special)  # canonical ids: specials, then sorted
        vocab = {t: i for i, t in enumerate([*special, *learned])}
        tok = _wordpiece(normalizer, models.WordPiece(vocab, unk_token="[UNK]"), special)  # the "##<char>" are plain pieces again
        tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        return tok
    if kind == "byte_bpe":  # GPT-2-style byte-level BPE: no unknown tokens
        special = ["<|endoftext|>", "<|pad|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        return tok
    raise ValueError(f"task.tokenizer '{kind}' is unknown; choose one of {list(TOKENIZERS)}")


def _wordpiece(normalizer, model, special: list[str]) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(special)
    return tok
