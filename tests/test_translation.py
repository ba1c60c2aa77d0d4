"""The translation task on the shipped English -> Spanish Bible pairs, with real tiny T5, BART and Marian models."""

import math

import pandas as pd
import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from nas.config import DATA_DIR
from nas.tasks.data import DataError
from nas.tasks.translation import TranslationTask

DATA = DATA_DIR / "bible_en_es"
ARGS = dict(source_column="en", target_column="es", train_size=256, val_size=16, max_length=32,
            tokenizer="byte_bpe", vocab_size=400, metric="chrf", max_new_tokens=8)
TINY = {
    "t5": dict(d_model=32, d_kv=16, num_heads=2, d_ff=64, num_layers=1, num_decoder_layers=1),
    "bart": dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                 encoder_ffn_dim=64, decoder_ffn_dim=64),
    "marian": dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                   encoder_ffn_dim=64, decoder_ffn_dim=64),
}


def make_task(train=DATA / "train.csv.gz", val=DATA / "validation.csv.gz", **kw) -> TranslationTask:
    return TranslationTask(str(train), str(val), **{**ARGS, **kw})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Models this small run fastest on one thread, and two threads crawl when the cores are busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task() -> TranslationTask:
    return make_task()


def build(task: TranslationTask, family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(family, **task.config_fields(), **TINY[family]))


def train(model: torch.nn.Module, task: TranslationTask, steps: int, lr: float = 3e-3) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    batches, losses = task.train_batches(16, torch.Generator().manual_seed(0)), []
    for _ in range(steps):
        loss = model(**next(batches)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_shipped_pairs_batches_and_config_fields(task):
    assert len(task.train["input_ids"]) == 256 and len(task.val_references) == 16
    fields = task.config_fields()
    tok = task.tokenizer
    assert fields["vocab_size"] == fields["decoder_vocab_size"] == len(tok)
    assert fields["pad_token_id"] == fields["decoder_start_token_id"] == tok.pad_token_id != fields["eos_token_id"]
    assert fields["max_position_embeddings"] >= 32
    batch = next(task.train_batches(8, torch.Generator().manual_seed(0)))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"].shape[0] == 8
    assert batch["input_ids"].shape[1] <= 32 and batch["labels"].shape[1] <= 32
    # Shared padding is trimmed; every sequence ends with end-of-sequence, label padding is -100.
    assert batch["attention_mask"][:, -1].any() and (batch["labels"][:, -1] != -100).any()
    for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        assert ids[mask.bool()][-1] == fields["eos_token_id"]
        real = labels[labels != -100]
        assert real[-1] == fields["eos_token_id"] and (labels[len(real):] == -100).all()
    assert task.preprocessor is tok and tok.decode(task.val["input_ids"][0][:-1]).strip()


def test_t5_learns_and_is_deterministic(task):
    model = build(task, "t5")
    losses = train(model, task, 30)
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses
    metrics = task.evaluate(model, batch_size=8)
    assert set(metrics) == {"bleu", "chrf", "loss"} and math.isfinite(metrics["loss"])
    assert 0 <= metrics["bleu"] <= 100 and 0 <= metrics["chrf"] <= 100
    assert task.reward(metrics) == metrics["chrf"]
    again = build(task, "t5")
    train(again, task, 30)
    assert task.evaluate(again, batch_size=16) == pytest.approx(metrics, abs=1e-4)  # batch size changes no metric


@pytest.mark.parametrize("family", ["bart", "marian"])
def test_bart_and_marian_train_and_generate(task, family):
    model = build(task, family)
    assert model.config.forced_eos_token_id is None
    losses = train(model, task, 5)
    assert all(math.isfinite(x) for x in losses)
    metrics = task.evaluate(model, batch_size=16)
    assert 0 <= metrics["bleu"] <= 100 and 0 <= metrics["chrf"] <= 100 and math.isfinite(metrics["loss"])


def test_bleu_reward_and_bad_settings(tmp_path):
    pairs = pd.read_csv(DATA / "validation.csv.gz").head(40)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    small = dict(train_size=40, val_size=8, vocab_size=300)
    assert make_task(tmp_path / "pairs.csv", tmp_path / "pairs.csv", metric="bleu", **small).reward({"bleu": 1.5, "chrf": 9.0}) == 1.5
    with pytest.raises(DataError, match=r"task.train_file: '.*pairs.csv' has no column \['english'\]"):
        make_task(tmp_path / "pairs.csv", tmp_path / "pairs.csv", source_column="english", **small)
    with pytest.raises(ValueError, match="task.metric 'accuracy'"):
        make_task(tmp_path / "pairs.csv", tmp_path / "pairs.csv", metric="accuracy", **small)
    with pytest.raises(ValueError, match="task.max_new_tokens"):
        make_task(tmp_path / "pairs.csv", tmp_path / "pairs.csv", max_new_tokens=0, **small)
    (tmp_path / "empty.csv").write_text("en,es,reference\n")
    with pytest.raises(DataError, match="task.validation_file: '.*empty.csv' has no rows"):
        make_task(tmp_path / "pairs.csv", tmp_path / "empty.csv", **small)


@pytest.mark.parametrize("family, depths", [("t5", {"num_layers": 1, "num_decoder_layers": 2}), ("bart", {"encoder_layers": 1, "decoder_layers": 2})])
def test_a_decoder_deeper_than_its_encoder_decodes(task, family, depths):
    # transformers sizes the generation cache by the encoder's depth; found by a real search.
    tiny = {"t5": {"d_model": 32, "num_heads": 2, "d_kv": 8, "d_ff": 64},
            "bart": {"d_model": 32, "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64}}
    config = AutoConfig.for_model(family, **task.config_fields(), **tiny[family], **depths)
    model = AutoModelForSeq2SeqLM.from_config(config)
    metrics = task.evaluate(model, batch_size=64)
    assert 0 <= metrics["chrf"] <= 100
