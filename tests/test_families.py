"""Any transformers model type as a family: the shipped generic spaces (RoBERTa, DistilBERT, DeBERTa-v2, Llama, Qwen2)
search end to end on their tasks; attribute names and head counts are checked before any training; meta-device
parameter counts equal the built model's."""

import pytest
import torch
from transformers import AutoConfig

from nas.models import FAMILIES, auto_model, build_config, build_model, get_family, make_space, parameter_count
from nas.runner import run_search
from nas.space import SpaceError

from .conftest import TINY, compose_config

TEXT_FIELDS = {"vocab_size": 300, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 48, "num_labels": 2}
LM_FIELDS = {k: v for k, v in TEXT_FIELDS.items() if k != "num_labels"}

GENERIC_RUNS = [  # (search space, family, task)
    ("roberta_small", "roberta", "text_classification"),
    ("distilbert_small", "distilbert", "text_classification"),
    ("deberta_v2_small", "deberta-v2", "text_classification"),
    ("llama_small", "llama", "language_modeling"),
    ("llama_small", "llama", "text_classification"),
    ("qwen2_small", "qwen2", "language_modeling"),
    ("qwen2_small", "qwen2", "text_classification"),
]


def test_any_transformers_model_type_is_a_family():
    assert not {"roberta", "distilbert", "deberta-v2", "llama", "qwen2"} & set(FAMILIES)  # generic, not hand-written
    assert get_family("roberta").tasks == ("text_classification",)  # an encoder: no causal LM (it would see the next token)
    assert set(get_family("llama").tasks) == {"text_classification", "language_modeling"}
    assert get_family("llama").pretraining == "clm" and get_family("distilbert").pretraining == "mlm"
    assert [name for name, _ in get_family("distilbert").constraints] == ["n_heads divides dim"]  # the config's own names
    with pytest.raises(SpaceError, match=r"'robreta' is not a transformers model type \(did you mean 'roberta'"):
        get_family("robreta")
    with pytest.raises(SpaceError, match=r"'llama' does not fit task 'image_classification'"):
        get_family("llama", "image_classification")


@pytest.mark.slow
@pytest.mark.parametrize("space, family, task", GENERIC_RUNS, ids=[f"{s}-{t}" for s, _, t in GENERIC_RUNS])
def test_generic_family_runs_a_real_search_end_to_end(tmp_path, sqlite_uri, space, family, task):
    config = compose_config([*TINY, "budget=2", f"task={task}", f"search_space={space}", "strategy=random", f"tracking.uri={sqlite_uri}"])
    assert config.search_space.family == family
    result = run_search(config, tmp_path)
    assert len(result.history) == 2 and all(e.ok for e in result.history), [e.error for e in result.history]
    hf_config = AutoConfig.from_pretrained(tmp_path / "best")
    assert hf_config.model_type == family
    assert auto_model(task).from_config(hf_config).num_parameters() == result.best.info["num_parameters"]


def test_a_misspelled_attribute_is_refused_before_training_naming_it():
    with pytest.raises(SpaceError, match=r"\['num_key_value_head'\] are not attributes of a 'llama' config"):
        compose_config(["task=language_modeling", "search_space=llama_small",
                        "+search_space.dimensions.num_key_value_head=[1,2]"]).search_space.validate("language_modeling")
    with pytest.raises(SpaceError, match=r"\['hiden_size'\] are not attributes of a 'roberta' config"):
        make_space("roberta", {"hiden_size": [32, 64]}, "text_classification", TEXT_FIELDS)


def test_key_value_heads_must_divide_the_heads():
    dims = {"hidden_size": [48], "num_attention_heads": [6], "num_key_value_heads": [4]}  # 6 heads in 4 groups: no
    with pytest.raises(SpaceError, match="num_key_value_heads divides num_attention_heads"):
        make_space("qwen2", dims, "language_modeling", LM_FIELDS)
    space = make_space("qwen2", {**dims, "num_key_value_heads": [4, 3, 2]}, "language_modeling", LM_FIELDS)
    assert [space.is_valid({**{k: v[0] for k, v in dims.items()}, "num_key_value_heads": n}) for n in (4, 3, 2)] == [False, True, True]


def test_heads_must_divide_the_width_whatever_the_config_calls_them():
    with pytest.raises(SpaceError, match="n_heads divides dim"):
        make_space("distilbert", {"dim": [30], "n_heads": [4]}, "text_classification", TEXT_FIELDS)
    with pytest.raises(SpaceError, match="num_attention_heads divides hidden_size"):
        make_space("llama", {"hidden_size": [30], "num_attention_heads": [4]}, "language_modeling", LM_FIELDS)


@pytest.mark.parametrize("family, task, architecture", [
    ("roberta", "text_classification", {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}),
    ("distilbert", "text_classification", {"n_layers": 2, "dim": 32, "n_heads": 2, "hidden_dim": 64}),
    ("deberta-v2", "text_classification", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "relative_attention": True}),
    ("llama", "language_modeling", {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2}),
    ("qwen2", "text_classification", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 1}),
])
def test_meta_device_count_equals_the_built_models(family, task, architecture):
    fields = TEXT_FIELDS if task == "text_classification" else LM_FIELDS
    config = build_config(family, architecture, fields)
    assert parameter_count(config, task) == build_model(config, task).num_parameters()


def test_roberta_embeds_a_full_length_input():
    # RoBERTa numbers positions from pad_token_id + 1: the task's 48 positions need 48 + 1 + pad_token_id embeddings.
    config = build_config("roberta", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64},
                          TEXT_FIELDS)
    model = build_model(config, "text_classification")
    assert model(input_ids=torch.randint(3, 300, (2, 48))).logits.shape == (2, 2)


def test_a_saved_roberta_tokenizer_cuts_inputs_to_what_the_model_embeds():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from nas.export import fitted_preprocessor

    backend = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")
    config = build_config("roberta", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64},
                          TEXT_FIELDS)
    fitted = fitted_preprocessor(tokenizer, config)
    assert fitted.model_max_length == 48  # the task's positions, not the 48 + pad_token_id + 1 embeddings
    ids = fitted(["a " * 100], truncation=True, return_tensors="pt")["input_ids"]
    model = build_model(config, "text_classification").eval()
    assert ids.shape == (1, 48) and model(input_ids=ids).logits.shape == (1, 2)
