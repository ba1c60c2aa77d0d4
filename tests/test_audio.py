"""audio_classification on the shipped spoken digits: features, a real tiny AST, and clear errors on bad data."""

import numpy as np
import pytest
import torch
from transformers import ASTFeatureExtractor, AutoConfig, AutoModelForAudioClassification

from nas.config import DATA_DIR
from nas.tasks import DataError
from nas.tasks.audio_classification import AudioClassificationTask

DIGITS = DATA_DIR / "spoken_digits"
TESTS = {"unseen": str(DIGITS / "unseen.npz"), "human": str(DIGITS / "human.npz")}
TINY_AST = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
            "patch_size": 8, "frequency_stride": 8, "time_stride": 8}


def make_task(train=DIGITS / "train.npz", val=DIGITS / "validation.npz", **kw):
    args = {"audio_column": "audio", "label_column": "label", "train_size": 200, "val_size": 60, "sampling_rate": 8000,
            "num_mel_bins": 32, "max_length": 48, "metric": "accuracy", "test_files": TESTS}
    return AudioClassificationTask(str(train), str(val), **{**args, **kw})


@pytest.fixture(scope="module")
def task():
    return make_task()


def write(path, n=20, **override):
    """A small .npz in the shipped layout (real clips), with arrays replaced or dropped (None)."""
    with np.load(DIGITS / "train.npz") as src:
        arrays = {k: src[k][:n] if src[k].ndim else src[k] for k in src.files}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_shipped_splits_are_split_by_voice():
    speakers = {}
    for split in ("train", "validation", "unseen", "human"):
        with np.load(DIGITS / f"{split}.npz") as f:
            assert f["audio"].ndim == 2 and int(f["sampling_rate"]) == 8000
            assert sorted(set(f["label"].tolist())) == list(range(10))
            speakers[split] = set(f["speaker"].tolist())
    assert not speakers["train"] & speakers["validation"]
    voices = {split: [s.removeprefix("espeak-ng:").split("+") for s in speakers[split]] for split in ("train", "validation")}
    for part in (0, 1):  # neither the accent nor the variant of a validation voice occurs in training
        assert not {v[part] for v in voices["train"]} & {v[part] for v in voices["validation"]}
    assert all(s.startswith("flite:") for s in speakers["unseen"]) and speakers["human"] == {"asterisk:allison"}


def test_task_loads_features_and_config_fields(task):
    assert task.train["input_values"].shape == (200, 48, 32) and task.val["input_values"].shape == (60, 48, 32)
    assert set(task.tests) == {"unseen", "human"} and task.tests["human"]["labels"].shape == (10,)
    assert task.labels == list(range(10))
    x = task.train["input_values"]
    assert x.dtype == torch.float32 and abs(x.mean().item()) < 1e-3 and x.std().item() == pytest.approx(0.5, abs=1e-3)
    fields = task.config_fields()
    assert fields["num_mel_bins"] == 32 and fields["max_length"] == 48 and fields["num_labels"] == 10
    assert fields["id2label"][7] == "7" and fields["label2id"]["7"] == 7
    batch = next(task.train_batches(16, torch.Generator().manual_seed(0)))
    assert batch["input_values"].shape == (16, 48, 32) and batch["labels"].shape == (16,)


def test_saved_preprocessor_reproduces_the_features(task, tmp_path):
    task.preprocessor.save_pretrained(tmp_path)
    loaded = ASTFeatureExtractor.from_pretrained(tmp_path)
    with np.load(DIGITS / "human.npz") as f:
        audio = f["audio"].astype(np.float32) / 128
    features = loaded(list(audio), sampling_rate=8000, return_tensors="np")["input_values"]
    assert np.allclose(features, task.tests["human"]["input_values"].numpy(), atol=1e-5)


@pytest.fixture
def one_thread():
    # A tiny model gains nothing from more threads, and they spin against each other on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiny_ast_trains_and_evaluates(task, one_thread):
    config = AutoConfig.for_model("audio-spectrogram-transformer", **task.config_fields(), **TINY_AST)
    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_config(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batches = task.train_batches(32, torch.Generator().manual_seed(0))
    losses = []
    for _ in range(30):
        loss = model(**next(batches)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, 64)
    assert set(metrics) == {"accuracy", "macro_f1", "loss", "unseen_accuracy", "human_accuracy"}
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k != "loss") and metrics["loss"] > 0
    assert task.reward(metrics) == metrics["accuracy"]


def test_wrong_sampling_rate_names_the_file(tmp_path):
    path = write(tmp_path / "fast.npz", sampling_rate=np.int64(16000))
    with pytest.raises(DataError, match=r"task.validation_file: '.*fast.npz' is sampled at 16000 Hz but task.sampling_rate is 8000"):
        make_task(val=path)
    with pytest.raises(DataError, match=r"task.test_files.human: '.*fast.npz' is sampled at 16000"):
        make_task(test_files={"human": str(path)})


def test_missing_array_names_the_file_and_key(tmp_path):
    with pytest.raises(DataError, match=r"task.train_file: '.*nolabel.npz' has no array \['label'\]"):
        make_task(train=write(tmp_path / "nolabel.npz", label=None))
    with pytest.raises(DataError, match=r"task.validation_file: '.*norate.npz' has no array \['sampling_rate'\]"):
        make_task(val=write(tmp_path / "norate.npz", sampling_rate=None))
    with pytest.raises(DataError, match=r"task.train_file: '.*clips.npz' has no array \['wave'\]"):
        make_task(train=write(tmp_path / "clips.npz"), audio_column="wave")


def test_empty_missing_and_bad_splits(tmp_path):
    empty = write(tmp_path / "empty.npz", n=0)
    with pytest.raises(DataError, match=r"task.validation_file: '.*empty.npz' has no clips"):
        make_task(val=empty)
    with pytest.raises(DataError, match=r"task.test_files.unseen: data file '.*nope.npz' does not exist"):
        make_task(test_files={"unseen": str(tmp_path / "nope.npz")})
    with np.load(DIGITS / "train.npz") as f:
        low = f["label"] < 5
        few = write(tmp_path / "low.npz", n=None, audio=f["audio"][low][:20], label=f["label"][low][:20],
                    speaker=f["speaker"][low][:20])
    with pytest.raises(DataError, match=r"task.validation_file: labels \[.*\] do not occur in the training subset"):
        make_task(train=few)
    with pytest.raises(ValueError, match="task.metric 'bleu'"):
        make_task(metric="bleu")
