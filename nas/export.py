"""What a user ships: a folder that ``transformers`` loads, whose preprocessor agrees with its model.

The search's ``best/`` (the best architecture's config and preprocessor) and ``nas-final``'s model
folder (weights too) are both written here. A task's tokenizer is trained with no length limit
(``model_max_length`` ~1e30) while the model has as many positions as the searched ``task.max_length``:
saved as it is, ``pipeline(..., truncation=True)`` would pass a long text through untruncated and the
model would fail on it. The saved preprocessor therefore carries the model's own limits.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.image_processing_utils import BaseImageProcessor
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

MODEL_CARD = "README.md"  # the Hugging Face Hub's model card file name


def fitted_preprocessor(preprocessor: Any, config: PretrainedConfig) -> Any:
    """A copy of ``preprocessor`` whose limits are the model's: a tokenizer's ``model_max_length`` is the
    model's positions (BERT ``max_position_embeddings``, GPT-2 ``n_positions``; T5, whose positions are relative,
    keeps the length the search built it for), an image processor resizes to the model's ``image_size``, a
    feature extractor pads or cuts to the model's ``max_length`` frames."""
    fitted = copy.deepcopy(preprocessor)  # the task keeps encoding its splits as it did
    if isinstance(fitted, PreTrainedTokenizerBase):
        from nas.models import model_positions  # GPT-2's n_positions; RoBERTa's, less the ones it skips

        positions = model_positions(config)
        if positions:
            fitted.model_max_length = int(positions)
    elif isinstance(fitted, BaseImageProcessor):
        fitted.size = {"height": config.image_size, "width": config.image_size}
    elif isinstance(fitted, SequenceFeatureExtractor):
        fitted.max_length = config.max_length
    return fitted


def accepting_rgb(model: Any, preprocessor: Any) -> tuple[Any, Any]:
    """(model, image processor) that take colour images, for a grey (``num_channels=1``) image model; else both unchanged.

    ``pipeline("image-classification")`` turns every image it loads into RGB (``transformers.image_utils.load_image``),
    which a 1-channel model refuses. A grey image in RGB is three equal channels, so the patch projection's weights
    spread over three channels, a third each, give the grey model's outputs (to float rounding); a colour image is
    seen as the mean of its channels. The processor converts every input to RGB, grey arrays included."""
    import torch

    if getattr(model.config, "num_channels", None) != 1 or not isinstance(preprocessor, BaseImageProcessor):
        return model, preprocessor
    model = copy.deepcopy(model)
    grey = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels == 1]
    if len(grey) != 1:  # not one patch projection: leave the model as it was trained
        return model, preprocessor
    (projection,) = grey
    with torch.no_grad():
        projection.weight = torch.nn.Parameter(projection.weight.repeat(1, 3, 1, 1) / 3)
    projection.in_channels = 3
    for module in model.modules():  # ViT's patch embedding checks the channels it is given against its own count
        if getattr(module, "num_channels", None) == 1:
            module.num_channels = 3
    model.config.num_channels = 3
    preprocessor = copy.deepcopy(preprocessor)
    preprocessor.image_mean = list(preprocessor.image_mean) * 3 if len(preprocessor.image_mean) == 1 else preprocessor.image_mean
    preprocessor.image_std = list(preprocessor.image_std) * 3 if len(preprocessor.image_std) == 1 else preprocessor.image_std
    preprocessor.do_convert_rgb = True
    return model, preprocessor


def shippable(model: Any, preprocessor: Any) -> tuple[Any, Any]:
    """The trained model and its preprocessor as ``nas-final`` ships them: a grey image model takes colour images
    (``accepting_rgb``), and the preprocessor carries the model's limits (``fitted_preprocessor``)."""
    model, preprocessor = accepting_rgb(model, preprocessor)
    return model, fitted_preprocessor(preprocessor, model.config)


def save_folder(output_dir: Path, config: PretrainedConfig, preprocessor: Any, model: Any = None, card: str | None = None) -> None:
    """``output_dir`` with the config (and the model's weights when ``model`` is given), the preprocessor fitted to
    the model's limits and a model card: ``AutoConfig`` / ``AutoModelFor<Task>`` and ``pipeline`` load it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save_pretrained(output_dir)
    else:
        config.save_pretrained(output_dir)
    fitted_preprocessor(preprocessor, config).save_pretrained(output_dir)
    if card is not None:
        (output_dir / MODEL_CARD).write_text(card)


def model_card(title: str, summary: str, task: str, family: str, auto_class: str, architecture: Mapping[str, Any],
               data: Mapping[str, Any], metrics: Mapping[str, float], notes: list[str] = ()) -> str:
    """A Hugging Face model card (``README.md``): what the model is, what it was trained and scored on, how it was found."""
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    data_rows = "\n".join(f"| {k} | `{v}` |" for k, v in data.items() if v is not None)
    note_lines = "".join(f"\n> {line}\n" for line in notes)
    return (f"---\nlibrary_name: transformers\ntags:\n- nas\n- {task.replace('_', '-')}\n---\n# {title}\n\n"
            f"{summary}\n{note_lines}\n"
            f"- task: `{task}`\n- family: `{family}` (load with `{auto_class}.from_pretrained(<this folder>)` "
            f"or `transformers.pipeline`)\n\n"
            f"## Data\n\n| split | file |\n|---|---|\n{data_rows}\n\n"
            f"## Metrics\n\n| metric | value |\n|---|---|\n{rows}\n\n"
            f"## Architecture\n\n```json\n{json.dumps(dict(architecture), indent=2, sort_keys=True)}\n```\n")
