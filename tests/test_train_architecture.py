"""nas.candidate.train_architecture: how an architecture trains, in the search (CandidateObjective) and in nas-final alike.

The search feeds it recorded streams (nas.train.RecordedBatches) and nas-final fresh ones; both must train the
same model. nas-final's own tests (test_final.py) run it end to end.
"""

import functools

import pytest
import torch

from nas.candidate import CandidateObjective, train_architecture
from nas.models import pretraining_objective
from nas.pretrain import PretrainingCorpus, read_corpus
from nas.tasks import make_task

from .conftest import TINY, compose_config

pytestmark = pytest.mark.slow

ARCHITECTURE = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                "hidden_act": "gelu", "hidden_dropout_prob": 0.1}
PRETRAIN = ["trainer=pretrain_finetune", "trainer.max_steps=4", "trainer.batch_size=8", "trainer.log_every=2",
            "trainer.pretrain.steps=4", "trainer.pretrain.corpus_size=200", "trainer.pretrain.batch_size=8"]


@pytest.fixture(scope="module")
def two_stage():
    config = compose_config([*TINY, *PRETRAIN])
    texts = read_corpus(config.trainer.pretrain, config.task.name)
    task = make_task(config.task, tokenizer_texts=texts)
    corpus = PretrainingCorpus(texts, task.preprocessor, task.config_fields()["max_position_embeddings"], config.trainer.pretrain)
    corpus.check(pretraining_objective(config.search_space.family))
    return config, task, corpus


def _fresh(config, task, corpus):
    """nas-final's way: the corpus's and the task's batches made afresh, no recorded streams."""
    objective = CandidateObjective(task, config)  # for its HF config only
    return train_architecture(objective.hf_config(ARCHITECTURE), task, config.trainer, config.seed, ARCHITECTURE,
                              pretrain_batches=functools.partial(corpus.batches, seed=config.seed))


def test_the_final_path_trains_what_the_search_recorded(two_stage):
    config, task, corpus = two_stage
    outcome = CandidateObjective(task, config, corpus)(ARCHITECTURE)
    assert outcome.status == "ok", outcome.error
    assert outcome.info["pretrain_objective"] == "mlm" and outcome.info["pretrain_losses"]
    model, trained, info = _fresh(config, task, corpus)
    assert info["pretrain_losses"] == outcome.info["pretrain_losses"]
    assert trained.losses == outcome.info["losses"] and trained.metrics == outcome.info["metrics"]
    assert trained.steps == outcome.info["steps"] == config.trainer.max_steps
    again, _, _ = _fresh(config, task, corpus)  # the same (seed, architecture): the same weights
    weights = again.state_dict()
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())


def test_a_fine_tuning_that_fails_keeps_what_the_pre_training_recorded(two_stage):
    config, task, corpus = two_stage

    def broken():
        raise RuntimeError("no batches")
        yield

    info = {"num_parameters": 1}
    objective = CandidateObjective(task, config)
    with pytest.raises(RuntimeError, match="no batches"):
        train_architecture(objective.hf_config(ARCHITECTURE), task, config.trainer, config.seed, ARCHITECTURE,
                           pretrain_batches=functools.partial(corpus.batches, seed=config.seed), batches=broken(), info=info)
    assert info["num_parameters"] == 1 and info["pretrain_objective"] == "mlm" and len(info["pretrain_losses"]) == 2


def test_eval_every_keeps_the_weights_of_the_best_validation_and_reports_that_steps_metrics():
    """trainer.eval_every (nas-final's default 100): the model that comes back holds the best evaluated weights by
    the task's reward (an earlier step only when strictly better than the last), and its metrics are that step's."""
    from nas.train import evaluate

    restored = 0
    for learning_rate in (0.01, 0.1, 0.5, 1.0):  # the larger rates overshoot, so an earlier step is sometimes the best
        config = compose_config([*TINY, "task.val_size=200", "trainer.max_steps=12", "trainer.eval_every=3",
                                 f"trainer.learning_rate={learning_rate}"])
        task = make_task(config.task)
        objective = CandidateObjective(task, config)
        model, trained, _ = train_architecture(objective.hf_config(ARCHITECTURE), task, config.trainer, config.seed, ARCHITECTURE)
        assert [step for step, _ in trained.checkpoints] == [3, 6, 9, 12] and trained.steps == 12
        rewards = {step: task.reward(m) for step, m in trained.checkpoints}
        earlier = max((3, 6, 9), key=lambda s: (rewards[s], -s))  # the first of the best
        expected = earlier if rewards[earlier] > rewards[12] else 12
        assert trained.best_step == expected and trained.metrics == dict(trained.checkpoints)[expected]
        assert evaluate(model, task, config.trainer.eval_batch_size) == trained.metrics  # the weights are that step's
        restored += expected < 12
    assert restored >= 1  # the restoring path ran


def test_without_eval_every_the_last_steps_weights_and_metrics_come_back():
    config = compose_config([*TINY, "trainer.max_steps=6"])
    task = make_task(config.task)
    objective = CandidateObjective(task, config)
    _, trained, _ = train_architecture(objective.hf_config(ARCHITECTURE), task, config.trainer, config.seed, ARCHITECTURE)
    assert trained.best_step is None and [step for step, _ in trained.checkpoints] == [6]
