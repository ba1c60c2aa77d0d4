"""Pre-train, then fine-tune: corpus batches, the body transfer, and the two-stage candidate end to end."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from nas.config import shipped_data
from nas.models import build_config, build_model, build_pretraining_model
from nas.pretrain import PretrainingCorpus, read_corpus, transfer_body
from nas.runner import run_search
from nas.tasks.data import DataError
from nas.tasks.tokenizer import train_tokenizer
from nas.train import PretrainConfig

from .conftest import TINY, compose_config

TEXTS = ["a tender and funny film", "the plot never comes alive", "an unforgettable performance", "dull, slow and far too long"] * 20
FIELDS = {"vocab_size": 120, "max_position_embeddings": 16, "pad_token_id": 0, "num_labels": 2}


@pytest.mark.parametrize(
    "family, arch",
    [
        ("bert", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}),
        ("gpt2", {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_inner": 64}),
    ],
)
def test_the_pretrained_body_is_copied_into_the_task_model(family, arch):
    config = build_config(family, arch, FIELDS)
    objective, pretrained = build_pretraining_model(config)
    assert objective == {"bert": "mlm", "gpt2": "clm"}[family]
    with torch.no_grad():
        for p in pretrained.parameters():
            p.add_(1.0)  # make the pre-trained weights recognisable
    model = build_model(config, "text_classification")
    transfer_body(pretrained, model)
    source = dict(getattr(pretrained, pretrained.base_model_prefix).named_parameters())
    target = dict(getattr(model, model.base_model_prefix).named_parameters())
    shared = set(source) & set(target)
    assert shared == set(source) and all(torch.equal(source[k], target[k]) for k in shared)
    assert set(target) - shared <= {"pooler.dense.weight", "pooler.dense.bias"}  # BERT's pooler only


def test_a_family_without_a_self_supervised_objective_is_refused():
    config = build_config("vit", {"hidden_size": 32, "num_attention_heads": 2}, {"image_size": 28, "num_channels": 1})
    with pytest.raises(Exception, match="family 'vit' has no self-supervised objective"):
        build_pretraining_model(config)


def test_mlm_and_clm_batches_are_seeded_and_labelled():
    tokenizer = train_tokenizer("wordpiece", TEXTS, 120)
    corpus = PretrainingCorpus(TEXTS, tokenizer, 16, PretrainConfig(steps=1, batch_size=8, mlm_probability=0.3))
    mlm = [next(corpus.batches("mlm", seed=1)) for _ in range(2)]
    assert all(torch.equal(mlm[0][k], mlm[1][k]) for k in mlm[0])  # same seed, same masks
    batch = mlm[0]
    masked = batch["labels"] != -100
    assert masked.any() and (batch["input_ids"][masked] == tokenizer.mask_token_id).any()
    assert not masked[batch["attention_mask"] == 0].any()  # padding is never a target
    other = next(corpus.batches("mlm", seed=2))
    assert not torch.equal(other["labels"], batch["labels"])
    clm = next(corpus.batches("clm", seed=1))
    real = clm["attention_mask"] == 1
    assert torch.equal(clm["labels"][real], clm["input_ids"][real]) and (clm["labels"][~real] == -100).all()


def test_mlm_needs_a_tokenizer_with_a_mask_token():
    corpus = PretrainingCorpus(TEXTS, train_tokenizer("byte_bpe", TEXTS, 300), 16, PretrainConfig(steps=1, batch_size=8))
    corpus.check("clm")
    with pytest.raises(ValueError, match="masked-LM pre-training needs a tokenizer with a mask token"):
        corpus.check("mlm")


def test_corpus_errors_name_the_key():
    with pytest.raises(ValueError, match="needs trainer.pretrain.corpus_file"):
        read_corpus(PretrainConfig(steps=5), "text_classification")
    with pytest.raises(ValueError, match="pre-training is for text tasks"):
        read_corpus(PretrainConfig(steps=5, corpus_file="x.csv"), "image_classification")
    with pytest.raises(DataError, match="trainer.pretrain.corpus_file: .* has no column \\['review'\\]"):
        read_corpus(PretrainConfig(steps=5, corpus_file=shipped_data("rotten_tomatoes/train.csv.gz"), text_column="review"), "text_classification")


@pytest.mark.slow
@pytest.mark.parametrize("space", ["bert_small", "gpt2_small"])
def test_a_two_stage_search_logs_both_stages(tmp_path, sqlite_uri, space):
    config = compose_config([*TINY, "budget=3", "trainer=pretrain_finetune", "trainer.max_steps=4", "trainer.log_every=2",
                             "trainer.pretrain.steps=6", "trainer.pretrain.corpus_size=200", "trainer.pretrain.batch_size=16",
                             f"search_space={space}", f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    assert len(result.history) == 3 and all(e.ok for e in result.history)
    assert all(e.info["pretrain_seconds"] > 0 and e.info["pretrain_objective"] == {"bert_small": "mlm", "gpt2_small": "clm"}[space]
               for e in result.history)
    client = MlflowClient(sqlite_uri)
    children = client.search_runs([client.get_experiment_by_name("nas").experiment_id], "tags.status = 'ok'")
    assert len(children) == 3
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "pretrain_loss")] == [2, 4, 6]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [2, 4]
        assert "pretrain_seconds" in child.data.metrics


@pytest.mark.slow
def test_pretraining_for_an_image_task_is_refused_before_training(tmp_path, sqlite_uri):
    config = compose_config([*TINY, "task=image_classification", "trainer=pretrain_finetune", f"tracking.uri={sqlite_uri}"])
    with pytest.raises(ValueError, match="pre-training is for text tasks"):
        run_search(config, tmp_path)
    assert not (tmp_path / "candidates.jsonl").exists()
