"""Saved models work on inputs longer than the searched length: the preprocessor carries the model's limits.

Every shipped family, as a real tiny model of its task, saved by the product's own code (nas.export.save_folder,
which writes the search's best/ and nas-final's model folder), then loaded the way a user loads it:
``transformers.pipeline`` (``generate`` for translation: transformers 5 has no translation pipeline).
"""

import numpy as np
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

from nas.export import save_folder, shippable
from nas.models import build_config, build_model
from nas.tasks import make_task

from .conftest import compose_config

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(["a gripping, funny and far too long film about the sea"] * 30)  # ~350 tokens, the models have <= 64 positions

TINY = {  # case -> (task overrides, family, tiny architecture)
    "bert text_classification": (["task=text_classification"], "bert",
                                 {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}),
    "gpt2 text_classification": (["task=text_classification", "search_space=gpt2_small", "task.tokenizer=byte_bpe"], "gpt2",
                                 {"n_embd": 16, "n_layer": 1, "n_head": 2}),
    "gpt2 language_modeling": (["task=language_modeling"], "gpt2", {"n_embd": 16, "n_layer": 1, "n_head": 2}),
    "t5 translation": (["task=translation"], "t5", {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2}),
    "bart translation": (["task=translation", "search_space=bart_small"], "bart",
                         {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                          "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32}),
    "marian translation": (["task=translation", "search_space=marian_small"], "marian",
                           {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                            "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32}),
    "vit image_classification": (["task=image_classification"], "vit",
                                 {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                                  "patch_size": 7}),
    "ast audio_classification": (["task=audio_classification"], "audio-spectrogram-transformer",
                                 {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                                  "patch_size": 8, "frequency_stride": 8, "time_stride": 8}),
}


def saved(case: str, tmp_path):
    """A tiny model of the case's task, saved as nas-final saves one; (folder, its config, the task)."""
    overrides, family, architecture = TINY[case]
    text = [] if family in ("vit", "audio-spectrogram-transformer") else ["task.vocab_size=300"]
    task = make_task(compose_config([*overrides, "task.train_size=64", "task.val_size=8", *text]).task)
    torch.manual_seed(0)
    model = build_model(build_config(family, architecture, task.config_fields()), task.name).eval()
    shipped, preprocessor = shippable(model, task.preprocessor)  # what nas-final saves
    save_folder(tmp_path / "model", shipped.config, preprocessor, shipped)
    return tmp_path / "model", shipped.config, task, model


@pytest.mark.parametrize("case", [c for c in TINY if "translation" not in c and "language_modeling" not in c and c.split()[1] ==
                                  "text_classification"])
def test_text_classification_pipeline_truncates_a_long_text(case, tmp_path):
    folder, config, _, _ = saved(case, tmp_path)
    classify = pipeline("text-classification", model=str(folder))
    assert classify.tokenizer.model_max_length == config.max_position_embeddings == 48  # the task's max_length: its positions
    assert len(classify.tokenizer(LONG_TEXT)["input_ids"]) > 48
    [prediction] = classify(LONG_TEXT, truncation=True)
    assert prediction["label"] in config.label2id


def test_language_model_generates_after_a_prompt_longer_than_its_positions(tmp_path):
    folder, config, _, _ = saved("gpt2 language_modeling", tmp_path)
    generate = pipeline("text-generation", model=str(folder))
    assert generate.tokenizer.model_max_length == config.n_positions == 64
    # "hole": the pipeline keeps the prompt's end, leaving room for the new tokens within model_max_length.
    [out] = generate(LONG_TEXT, max_new_tokens=4, do_sample=False, handle_long_generation="hole")
    assert out["generated_text"].startswith(LONG_TEXT)


@pytest.mark.parametrize("case", [c for c in TINY if "translation" in c])
def test_translation_model_generates_from_a_long_text(case, tmp_path):
    folder, config, task, _ = saved(case, tmp_path)
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    # T5's positions are relative: the limit is the length its search built it for (the config says so too).
    assert tokenizer.model_max_length == config.max_position_embeddings == max(task.max_length, task.max_new_tokens + 1)
    inputs = tokenizer(LONG_TEXT, truncation=True, return_tensors="pt")
    assert inputs["input_ids"].shape[1] == tokenizer.model_max_length
    output = model.generate(**inputs, max_new_tokens=task.max_new_tokens, do_sample=False)
    assert output.shape[1] <= task.max_new_tokens + 1


def test_image_pipeline_takes_grey_and_colour_images_of_any_size(tmp_path):
    from PIL import Image

    folder, config, task, grey_model = saved("vit image_classification", tmp_path)
    classify = pipeline("image-classification", model=str(folder), top_k=config.num_labels)
    assert classify.image_processor.size == {"height": config.image_size, "width": config.image_size}
    # The pipeline turns every image it loads into RGB: the saved model takes 3 channels and scores a grey image as the
    # 1-channel model it was trained as does.
    assert config.num_channels == 3 and grey_model.config.num_channels == 1
    grey = np.random.default_rng(0).integers(0, 256, (90, 70), dtype=np.uint8)  # larger than the 28 x 28 searched
    as_grey, as_rgb, as_array = (classify(x) for x in (Image.fromarray(grey, "L"), Image.fromarray(np.stack([grey] * 3, -1), "RGB"),
                                                       grey[..., None]))
    assert as_grey == as_rgb == as_array
    assert {p["label"] for p in as_grey} == set(config.label2id)
    with torch.no_grad():
        trained = grey_model(**task.preprocessor(images=[grey[..., None]], return_tensors="pt")).logits.softmax(-1)[0]
    scores = {p["label"]: p["score"] for p in as_grey}
    assert [scores[config.id2label[i]] for i in range(config.num_labels)] == pytest.approx(trained.tolist(), abs=1e-6)


def test_audio_pipeline_takes_a_longer_clip(tmp_path):
    folder, config, task, _ = saved("ast audio_classification", tmp_path)
    classify = pipeline("audio-classification", model=str(folder))
    assert classify.feature_extractor.max_length == config.max_length
    clip = np.random.default_rng(0).normal(0, 0.1, task.sampling_rate * 3).astype(np.float32)  # 3 s; the model has 1 s of frames
    assert classify({"raw": clip, "sampling_rate": task.sampling_rate})[0]["label"] in config.label2id
