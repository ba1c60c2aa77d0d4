"""Audio classification: arrays of clips and labels (.npz), log-mel spectrograms, accuracy and macro-F1.

Features are computed once, at construction, by transformers' ``ASTFeatureExtractor`` (its numpy
path: no torchaudio needed), normalised with the training subset's statistics. Extra evaluation
sets (``test_files``) are reported as ``<name>_accuracy`` but never give the reward.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
from transformers import ASTFeatureExtractor

from nas.errors import BadInput
from nas.tasks.base import classification_metrics, eval_split, label_fields, logit_metrics, tensor_batches
from nas.tasks.data import DataError, check_class_labels, check_data_file, check_npz, warn_if_short

METRICS = ("accuracy", "macro_f1")


def read_audio(path: str, audio_key: str, label_key: str, n: int | None, sampling_rate: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` clips as (N, samples) float32 in [-1, 1] and their labels; checks the sampling rate."""
    file = check_data_file(path, key)
    check_npz(file, key, f"'{audio_key}', '{label_key}', 'sampling_rate'")
    try:
        with np.load(file) as arrays:
            missing = [k for k in (audio_key, label_key, "sampling_rate") if k not in arrays.files]
            if missing:
                raise DataError(f"{key}: '{file}' has no array {missing} (arrays: {arrays.files})")
            audio, labels, rate = arrays[audio_key], arrays[label_key][:n], arrays["sampling_rate"]
            clips, audio = len(audio), audio[:n]
    except DataError:
        raise
    except Exception as exc:  # not a zip, pickled objects, a 0-d array...
        raise DataError(f"{key}: cannot read '{file}': {exc}") from exc
    warn_if_short(clips, n, file, key)
    try:
        rate_ok = rate.size == 1 and int(rate) == sampling_rate
    except (TypeError, ValueError):
        rate_ok = False
    if not rate_ok:
        raise DataError(f"{key}: '{file}' is sampled at {rate.tolist()} Hz but task.sampling_rate is {sampling_rate} "
                        f"(resample the file: the task does not)")
    if len(audio) == 0:
        raise DataError(f"{key}: '{file}' has no clips")
    if audio.ndim != 2:
        raise DataError(f"{key}: '{file}' array '{audio_key}' has shape {audio.shape}; expected (clips, samples) mono audio")
    if len(labels) != len(audio):
        raise DataError(f"{key}: '{file}' has {len(audio)} clips but {len(labels)} labels")
    if np.issubdtype(audio.dtype, np.signedinteger):  # PCM: int8, int16, int32
        audio = audio.astype(np.float32) / (np.iinfo(audio.dtype).max + 1)
    elif np.issubdtype(audio.dtype, np.unsignedinteger):  # offset-binary PCM (8-bit WAV is uint8)
        half = (np.iinfo(audio.dtype).max + 1) / 2
        audio = ((audio.astype(np.float64) - half) / half).astype(np.float32)
    elif np.issubdtype(audio.dtype, np.floating):
        audio = audio.astype(np.float32)
    else:
        raise DataError(f"{key}: '{file}' array '{audio_key}' has dtype {audio.dtype}; expected integer PCM or float samples")
    return audio, labels


class AudioClassificationTask:
    name = "audio_classification"
    seeded_batches = True  # train_batches depends on its generator alone: a search records them once (nas.train.RecordedBatches)

    def __init__(self, train_file: str, validation_file: str, audio_column: str, label_column: str, train_size: int | None,
                 val_size: int | None, sampling_rate: int, num_mel_bins: int, max_length: int, metric: str,
                 test_files: Mapping[str, str] | None = None, test_file: str | None = None, test_size: int | None = None,
                 test_files_split: str = "validation"):
        """``test_files_split``: the split whose metrics report the ``test_files`` sets, ``validation`` (a search:
        reported, never the reward) or ``test`` (nas-final, with the ``test_file`` split when there is one)."""
        if metric not in METRICS:
            raise BadInput(f"task.metric '{metric}' is not an audio_classification metric; choose one of {list(METRICS)}")
        if test_files_split not in ("validation", "test"):
            raise ValueError(f"test_files_split must be 'validation' or 'test', not {test_files_split!r}")
        self.test_files_split = test_files_split
        self.metric = metric
        self.sampling_rate, self.num_mel_bins, self.max_length = sampling_rate, num_mel_bins, max_length
        read = {"audio_key": audio_column, "label_key": label_column, "sampling_rate": sampling_rate}
        splits = {"train": read_audio(train_file, n=train_size, key="task.train_file", **read),
                  "val": read_audio(validation_file, n=val_size, key="task.validation_file", **read)}
        if test_file is not None:  # only nas-final evaluates on the test split; a search never reads it
            splits["test"] = read_audio(test_file, n=test_size, key="task.test_file", **read)
        for name, path in (test_files or {}).items():
            splits[f"test:{name}"] = read_audio(path, n=None, key=f"task.test_files.{name}", **read)
        check_class_labels(splits["train"][1].tolist(), label_column, train_file, "task.train_file", what="label array")
        self.labels = sorted(np.unique(splits["train"][1]).tolist())
        for split, (_, y) in splits.items():
            unseen = sorted(set(np.unique(y).tolist()) - set(self.labels))
            if unseen:
                key = {"val": "task.validation_file", "test": "task.test_file"}.get(split, f"task.test_files.{split[5:]}")
                raise DataError(f"{key}: labels {unseen} do not occur in the training subset")
        label_id = {label: i for i, label in enumerate(self.labels)}

        # Log-mel filter banks of every clip, once; then normalised with the training subset's statistics.
        self.preprocessor = ASTFeatureExtractor(sampling_rate=sampling_rate, num_mel_bins=num_mel_bins,
                                                max_length=max_length, do_normalize=False)
        features = {split: self._features(x) for split, (x, _) in splits.items()}
        train = features["train"]
        self.preprocessor.mean, self.preprocessor.std = float(train.mean()), float(train.std()) or 1.0
        self.preprocessor.do_normalize = True  # saved beside the best architecture: the same features for inference
        self.data = {
            split: {"input_values": torch.from_numpy(self.preprocessor.normalize(f)),
                    "labels": torch.tensor([label_id[y] for y in splits[split][1].tolist()])}
            for split, f in features.items()
        }
        self.train, self.val = self.data["train"], self.data["val"]
        self.tests = {split[5:]: d for split, d in self.data.items() if split.startswith("test:")}

    def _features(self, audio: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=1, user_api="blas"):  # small per-clip products: threads only contend (3x slower on a busy machine)
            out = self.preprocessor(list(audio), sampling_rate=self.sampling_rate, return_tensors="np")
        return np.asarray(out["input_values"], dtype=np.float32)  # (N, max_length, num_mel_bins)

    def config_fields(self) -> dict[str, Any]:
        return {
            "num_mel_bins": self.num_mel_bins,
            "max_length": self.max_length,
            **label_fields(self.labels),
        }

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        return tensor_batches(self.train, batch_size, generator)

    @staticmethod
    def _logits(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
        device = next(model.parameters()).device
        return torch.cat([model(input_values=inputs[i : i + batch_size].to(device)).logits for i in range(0, len(inputs), batch_size)])

    def evaluate(self, model: torch.nn.Module, batch_size: int, split: str = "validation") -> dict[str, float]:
        main = {"validation": self.val, "test": self.data.get("test")}
        extras = self.tests if split == self.test_files_split else {}
        if main.get(split) is None and not extras:
            eval_split({k: v for k, v in main.items() if v is not None}, split)  # raises, naming the splits there are
        metrics = {}
        classes = len(self.labels)
        if main[split] is not None:
            logits = self._logits(model, main[split]["input_values"], batch_size)
            metrics = logit_metrics(main[split]["labels"].to(logits.device), logits, classes)
        for name, data in extras.items():  # reported, never the reward
            y_pred = self._logits(model, data["input_values"], batch_size).argmax(-1)
            metrics[f"{name}_accuracy"] = classification_metrics(data["labels"].to(y_pred.device), y_pred, classes)["accuracy"]
        return metrics

    def reward(self, metrics: dict[str, float]) -> float:
        return metrics[self.metric]
