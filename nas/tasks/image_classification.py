"""Image classification: arrays of images and labels (.npz), accuracy and macro-F1 on the validation set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers import ViTImageProcessorPil

from nas.errors import BadInput
from nas.tasks.base import eval_split, label_fields, logit_metrics, tensor_batches
from nas.tasks.data import DataError, check_class_labels, check_data_file, check_npz, warn_if_short

METRICS = ("accuracy", "macro_f1")


def read_images(path: str, image_key: str, label_key: str, n: int | None, image_size: int, num_channels: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images as (N, C, H, W) uint8 and their labels; checks shape against the task."""
    file = check_data_file(path, key)
    check_npz(file, key, f"'{image_key}' and '{label_key}'")
    try:
        with np.load(file) as arrays:
            missing = [k for k in (image_key, label_key) if k not in arrays.files]
            if missing:
                raise DataError(f"{key}: '{file}' has no array {missing} (arrays: {arrays.files})")
            images, labels = arrays[image_key], arrays[label_key][:n]
    except DataError:
        raise
    except Exception as exc:  # not a zip, pickled objects, a truncated file...
        raise DataError(f"{key}: cannot read '{file}': {exc}") from exc
    warn_if_short(len(images), n, file, key)
    images = images[:n]
    if len(images) == 0:
        raise DataError(f"{key}: '{file}' has no images")
    if images.ndim == 3:  # (N, H, W): one channel
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    expected = (num_channels, image_size, image_size)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise DataError(f"{key}: '{file}' holds images of shape {images.shape[1:]} (C, H, W), but the task says {expected} "
                        f"(task.num_channels, task.image_size)")
    if len(labels) != len(images):
        raise DataError(f"{key}: '{file}' has {len(images)} images but {len(labels)} labels")
    return images, labels


class ImageClassificationTask:
    name = "image_classification"
    seeded_batches = True  # train_batches depends on its generator alone: a search records them once (nas.train.RecordedBatches)

    def __init__(self, train_file: str, validation_file: str, image_column: str, label_column: str, train_size: int | None,
                 val_size: int | None, image_size: int, num_channels: int, metric: str, test_file: str | None = None,
                 test_size: int | None = None, label_names: dict[Any, str] | None = None):
        if metric not in METRICS:
            raise BadInput(f"task.metric '{metric}' is not an image_classification metric; choose one of {list(METRICS)}")
        self.metric, self.label_names = metric, label_names
        self.image_size, self.num_channels = image_size, num_channels
        train_x, train_y = read_images(train_file, image_column, label_column, train_size, image_size, num_channels, "task.train_file")
        held_out = {"validation": ("task.validation_file", read_images(
            validation_file, image_column, label_column, val_size, image_size, num_channels, "task.validation_file"))}
        if test_file is not None:  # only nas-final evaluates on the test split; a search never reads it
            held_out["test"] = ("task.test_file", read_images(test_file, image_column, label_column, test_size, image_size, num_channels,
                                                              "task.test_file"))
        check_class_labels(train_y.tolist(), label_column, train_file, "task.train_file", what="label array")
        self.labels = sorted(np.unique(train_y).tolist())
        for key, (_, y) in held_out.values():
            unseen = sorted(set(np.unique(y).tolist()) - set(self.labels))
            if unseen:
                raise DataError(f"{key}: labels {unseen} do not occur in the training subset")
        label_id = {label: i for i, label in enumerate(self.labels)}
        # Normalise with the training subset's statistics: no per-dataset constants in the config.
        train_f = torch.from_numpy(train_x).float() / 255
        self.mean, self.std = train_f.mean().item(), train_f.std().item() or 1.0
        self.train = {"pixel_values": (train_f - self.mean) / self.std, "labels": torch.tensor([label_id[y] for y in train_y.tolist()])}
        self.splits = {split: {"pixel_values": (torch.from_numpy(x).float() / 255 - self.mean) / self.std,
                               "labels": torch.tensor([label_id[y] for y in y_.tolist()])}
                       for split, (_, (x, y_)) in held_out.items()}
        self.val = self.splits["validation"]
        # Saved beside the best architecture: the same rescale and normalisation for inference.
        self.preprocessor = ViTImageProcessorPil(
            do_resize=True, size={"height": image_size, "width": image_size}, do_rescale=True,
            image_mean=[self.mean] * num_channels, image_std=[self.std] * num_channels,
        )

    def config_fields(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "num_channels": self.num_channels,
            **label_fields(self.labels, self.label_names),
        }

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        return tensor_batches(self.train, batch_size, generator)

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        data = eval_split(self.splits, split)
        device = next(model.parameters()).device
        pixels = data["pixel_values"]
        logits = torch.cat([model(pixel_values=pixels[i : i + batch_size].to(device)).logits for i in range(0, len(pixels), batch_size)])
        return logit_metrics(data["labels"].to(device), logits, len(self.labels))

    def reward(self, metrics: dict[str, float]) -> float:
        return metrics[self.metric]
