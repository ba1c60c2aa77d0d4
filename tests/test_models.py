"""Config building for every choice of every shipped search space, and parameter counts that match real models."""

import itertools
from pathlib import Path

import pytest
import torch
import yaml

from nas.config import CONF_DIR
from nas.models import FAMILIES, _FieldView, build_config, build_model, config_fields, get_family, make_space, parameter_count
from nas.space import SpaceError

SPACES = sorted((Path(CONF_DIR) / "search_space").glob("*.yaml"))
TASK_FIELDS = {"vocab_size": 500, "max_position_embeddings": 48, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3, "num_labels": 3}
TASKS = {"bert": ["text_classification"], "gpt2": ["text_classification", "language_modeling"], "vit": ["image_classification"],
         "t5": ["translation"], "bart": ["translation"], "marian": ["translation"], "audio-spectrogram-transformer": ["audio_classification"],
         # generic families (any transformers model type): the tasks whose Auto class has a head for them
         "roberta": ["text_classification"], "distilbert": ["text_classification"], "deberta-v2": ["text_classification"],
         "llama": ["text_classification", "language_modeling"], "qwen2": ["text_classification", "language_modeling"]}
IMAGE_FIELDS = {"image_size": 28, "num_channels": 1, "num_labels": 10}
SEQ2SEQ_FIELDS = {"vocab_size": 500, "decoder_vocab_size": 500, "max_position_embeddings": 48, "pad_token_id": 1,
                  "eos_token_id": 0, "decoder_start_token_id": 1, "forced_eos_token_id": None}
AUDIO_FIELDS = {"num_mel_bins": 32, "max_length": 48, "num_labels": 10}
FIELDS = {"vit": IMAGE_FIELDS, "t5": SEQ2SEQ_FIELDS, "bart": SEQ2SEQ_FIELDS, "marian": SEQ2SEQ_FIELDS, "audio-spectrogram-transformer": AUDIO_FIELDS}


def load(path):
    return yaml.safe_load(path.read_text())


def one_choice_at_a_time(space):
    """For every (dimension, choice): the default architecture with that one choice swapped in, when valid."""
    base = space.default_encoding()
    for d, n in enumerate(space.sizes):
        for c in range(n):
            enc = base[:d] + (c,) + base[d + 1 :]
            yield (enc if space.is_valid_encoding(enc) else None), space.names[d], space.dimensions[space.names[d]][c]


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_choice_builds_a_model_with_the_predicted_parameter_count(path):
    spec = load(path)
    fields = FIELDS.get(spec["family"], TASK_FIELDS)
    for task in TASKS[spec["family"]]:
        space = make_space(spec["family"], spec["dimensions"], task, fields, spec.get("max_params"))
        built = 0
        for enc, dim, choice in one_choice_at_a_time(space):
            if enc is None:
                continue
            arch = space.decode(enc)
            cfg = build_config(spec["family"], arch, fields)
            assert getattr(cfg, dim) == choice
            with torch.device("meta"):
                model = build_model(cfg, task)
            assert model.num_parameters() == parameter_count(cfg, task), (task, arch)
            built += 1
        assert built >= sum(space.sizes) // 2


ON_FIELDS = [p for p in SPACES if FAMILIES.get(load(p)["family"]) and FAMILIES[load(p)["family"]].checks_on_fields]


@pytest.mark.parametrize("path", ON_FIELDS, ids=[p.stem for p in ON_FIELDS])
def test_a_family_checked_on_its_fields_gets_the_answers_of_its_built_configs(path):
    """checks_on_fields: the space's constraints and parameter count read unbuilt fields; for every architecture of the
    shipped space (and the task's fields) they must say exactly what they say of the built config."""
    spec = load(path)
    family_name, fields = spec["family"], FIELDS.get(spec["family"], TASK_FIELDS)
    names = list(spec["dimensions"])
    for task in TASKS[family_name]:
        family = get_family(family_name, task)
        checked = 0
        for combo in itertools.product(*spec["dimensions"].values()):
            arch = dict(zip(names, combo, strict=True))
            view, cfg = _FieldView(family_name, config_fields(family_name, arch, fields)), build_config(family_name, arch, fields)
            assert [check(view) for _, check in family.constraints] == [check(cfg) for _, check in family.constraints], arch
            if all(check(cfg) for _, check in family.constraints):
                assert family.parameter_count(view, task) == parameter_count(cfg, task), (task, arch)
            checked += 1
        assert checked >= 100


def test_a_built_model_runs_forward_and_backward():
    cfg = build_config("bert", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}, TASK_FIELDS)
    model = build_model(cfg, "text_classification")
    out = model(input_ids=torch.randint(0, 500, (2, 8)), labels=torch.tensor([0, 2]))
    out.loss.backward()
    assert out.logits.shape == (2, 3)


def test_unknown_attribute_for_the_family_is_rejected():
    with pytest.raises(SpaceError, match=r"\['n_embd'\] are not attributes of a 'bert' config"):
        make_space("bert", {"n_embd": [32, 64]}, "text_classification", TASK_FIELDS)


def test_family_must_fit_the_task_and_exist():
    with pytest.raises(SpaceError, match="'bert' does not fit task 'language_modeling'"):
        make_space("bert", {"hidden_size": [32]}, "language_modeling", TASK_FIELDS)
    with pytest.raises(SpaceError, match=r"family 'llama3' is not a transformers model type \(did you mean 'llama'"):
        make_space("llama3", {"hidden_size": [32]}, "language_modeling", TASK_FIELDS)


def test_heads_must_divide_hidden_and_budget_is_enforced():
    space = make_space("bert", {"hidden_size": [30, 32], "num_attention_heads": [4]}, "text_classification", TASK_FIELDS)
    assert space.violations({"hidden_size": 30, "num_attention_heads": 4}) == ["num_attention_heads divides hidden_size"]
    assert space.is_valid({"hidden_size": 32, "num_attention_heads": 4})
    with pytest.raises(SpaceError, match="no architecture satisfying"):
        make_space("bert", {"hidden_size": [64, 128]}, "text_classification", TASK_FIELDS, max_params=1000)


def test_vit_patches_must_tile_the_image():
    dims = {"patch_size": [4, 5, 7], "hidden_size": [32], "num_attention_heads": [2]}
    space = make_space("vit", dims, "image_classification", IMAGE_FIELDS)
    assert space.violations({"patch_size": 5, "hidden_size": 32, "num_attention_heads": 2}) == ["patch_size divides image_size"]
    assert space.is_valid({"patch_size": 7, "hidden_size": 32, "num_attention_heads": 2})
