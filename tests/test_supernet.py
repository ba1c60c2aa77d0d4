"""Weight sharing (nas/supernet.py): a subnet is a real transformers model of its family on slices of the super-network."""

import numpy as np
import pytest
import torch

from nas.models import build_config, build_model
from nas.space import SearchSpace
from nas.supernet import SuperNetwork, WeightSharingError, extremes, largest_architecture, sandwich, train_supernet
from nas.tasks import make_task

from .conftest import compose_config


def tiny_task(overrides):
    return make_task(compose_config([*overrides, "task.train_size=64", "task.val_size=32", "task.vocab_size=300"]).task)


BERT = {"num_hidden_layers": [1, 2], "hidden_size": [16, 32], "num_attention_heads": [1, 2, 4], "intermediate_size": [32, 64],
        "hidden_act": ["gelu", "relu"], "hidden_dropout_prob": [0.0, 0.1]}
GPT2 = {"n_layer": [1, 2], "n_embd": [16, 32], "n_head": [1, 2], "n_inner": [32, 64], "activation_function": ["gelu_new", "relu"]}


def standalone_copy(subnet, task_name):
    """A model built from the subnet's config alone, loaded with the subnet's slices: what the subnet must compute."""
    model = build_model(subnet.config, task_name)
    model.load_state_dict({k: v.detach().clone() for k, v in subnet.tensors().items()}, strict=False)
    return model.eval()


@pytest.mark.parametrize("family,dims,overrides,task_name", [
    ("bert", BERT, ["task=text_classification"], "text_classification"),
    ("gpt2", GPT2, ["task=language_modeling"], "language_modeling"),
])
def test_a_subnet_computes_what_a_standalone_model_with_its_slices_computes(family, dims, overrides, task_name):
    task = tiny_task(overrides)
    space = SearchSpace.from_dict(dims)
    supernet = SuperNetwork(space, family, task_name, task.config_fields(), seed=0)
    batch = next(task.train_batches(4, torch.Generator().manual_seed(0)))
    rng = np.random.default_rng(0)
    for _ in range(4):
        architecture = space.decode(tuple(int(rng.integers(n)) for n in space.sizes))
        if "num_attention_heads" in architecture and architecture["hidden_size"] % architecture["num_attention_heads"]:
            continue
        subnet = supernet.subnet(architecture).eval()
        with torch.no_grad():
            shared = subnet(**batch)
            alone = standalone_copy(subnet, task_name)(**batch)
        assert torch.allclose(shared.logits, alone.logits, atol=1e-5), architecture
        assert torch.allclose(shared.loss, alone.loss, atol=1e-5)


def test_a_subnets_gradients_land_in_the_shared_tensors_slice_only():
    task = tiny_task(["task=text_classification"])
    space = SearchSpace.from_dict(BERT)
    supernet = SuperNetwork(space, "bert", "text_classification", task.config_fields())
    small = {"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
             "hidden_dropout_prob": 0.0}
    batch = next(task.train_batches(4, torch.Generator().manual_seed(0)))
    supernet.subnet(small)(**batch).loss.backward()
    params = dict(supernet.model.named_parameters())
    grad = params["bert.encoder.layer.0.intermediate.dense.weight"].grad  # [64, 32] shared; the subnet uses [:32, :16]
    assert grad[:32, :16].abs().sum() > 0 and grad[32:].abs().sum() == 0 and grad[:, 16:].abs().sum() == 0
    assert params["bert.encoder.layer.1.attention.self.query.weight"].grad is None  # the second layer was not used


def test_a_space_that_cannot_share_weights_is_refused_naming_the_dimension():
    task = make_task(compose_config(["task=image_classification", "task.train_size=16", "task.val_size=8"]).task)
    dims = {"patch_size": [4, 7], "hidden_size": [16, 32], "num_attention_heads": [1, 2], "num_hidden_layers": [1]}
    with pytest.raises(WeightSharingError, match="patch_size"):
        SuperNetwork(SearchSpace.from_dict(dims), "vit", "image_classification", task.config_fields())
    SuperNetwork(SearchSpace.from_dict({**dims, "patch_size": [7]}), "vit", "image_classification", task.config_fields())


def test_the_largest_architecture_and_the_sandwich():
    space = SearchSpace.from_dict(BERT)
    assert largest_architecture(space) == {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 1, "intermediate_size": 64,
                                           "hidden_act": "gelu", "hidden_dropout_prob": 0.1}
    size = lambda a: a["num_hidden_layers"] * a["hidden_size"] * a["intermediate_size"]  # noqa: E731
    big, small = extremes(space, size)
    assert size(big) == 2 * 32 * 64 and size(small) == 16 * 32
    picks = sandwich(space, np.random.default_rng(0), (big, small), random=2)
    assert picks[:2] == [big, small] and len(picks) == 4


def test_training_the_supernet_lowers_every_subnets_loss_and_repeats_for_a_seed():
    task = tiny_task(["task=text_classification"])
    space = SearchSpace.from_dict(BERT)

    def run():
        supernet = SuperNetwork(space, "bert", "text_classification", task.config_fields(), seed=0)
        ends = extremes(space, lambda a: a["num_hidden_layers"] * a["hidden_size"] * a["intermediate_size"])
        rng = np.random.default_rng(0)
        losses = train_supernet(supernet, task.train_batches(16, torch.Generator().manual_seed(0)), 30, 3e-3,
                                lambda step: sandwich(space, rng, ends))
        return supernet, losses

    torch.manual_seed(0)
    supernet, losses = run()
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    _, again = run()
    assert losses == again


def test_uniform_sampling_draws_valid_architectures_by_the_seed():
    from nas.supernet import uniform

    space = SearchSpace.from_dict(BERT)
    first = uniform(space, np.random.default_rng(3), 4)
    assert len(first) == 4 and all(space.is_valid_encoding(space.encode(a)) for a in first)
    assert first == uniform(space, np.random.default_rng(3), 4)
