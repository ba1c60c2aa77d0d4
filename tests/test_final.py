"""nas-final end to end: a real tiny search, then its best architecture trained, scored, saved, logged and registered.

One sqlite store for the module; the searches run in this process (their .hydra/config.yaml written
as the nas command writes it); the final command runs from the search's directory (run_final) and from
the search's MLflow run id (the command's Hydra app), both in this process: a subprocess would pay
the ~10 s of imports again. Nothing may look up a remote host.
"""

import json
import logging
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from transformers import AutoImageProcessor, AutoModelForImageClassification, AutoModelForSequenceClassification, AutoTokenizer

import nas.candidate
import nas.final
import nas.train
from nas.config import CONF_DIR, DATA_DIR, Config, FinalConfig, to_typed
from nas.final import FinalError, run_final
from nas.runner import run_search
from nas.tasks import DataError

from .conftest import TINY, compose_config

pytestmark = pytest.mark.slow

FINAL_TINY = ["trainer=tiny", "trainer.max_steps=12"]  # the whole training split, a dozen steps


def compose_raw(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def final_config(overrides: list[str]) -> FinalConfig:
    return to_typed(compose_raw("final", overrides), FinalConfig)


def search(root: Path, name: str, overrides: list[str]) -> SimpleNamespace:
    """A real search, with its output directory as the nas command leaves it (.hydra/config.yaml included)."""
    cfg = compose_raw("config", overrides)
    out = root / name
    (out / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    config: Config = to_typed(cfg)
    result = run_search(config, out, out / ".hydra")
    client = MlflowClient(config.tracking.uri)
    [parent] = client.search_runs([client.get_experiment_by_name("nas").experiment_id], f"tags.output_dir = '{out}'")
    return SimpleNamespace(dir=out, run_id=parent.info.run_id, experiment_id=parent.info.experiment_id, best=result.best)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("final")
    return SimpleNamespace(root=root, uri=f"sqlite:///{root / 'mlflow.db'}")


@pytest.fixture(scope="module")
def text_search(store) -> SimpleNamespace:
    return search(store.root, "text-search", [*TINY, "budget=2", f"tracking.uri={store.uri}"])


@pytest.fixture(scope="module")
def text_final(store, text_search) -> SimpleNamespace:
    result = run_final(final_config([f"search={text_search.dir}", *FINAL_TINY]), store.root / "text-final")
    return SimpleNamespace(result=result, summary=json.loads((result.output_dir / "metrics.json").read_text()))


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Nothing in this process may look a remote host up (the Hugging Face Hub, MLflow's telemetry...)."""
    lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert lookups == []


def registered(uri: str, name: str):
    client = MlflowClient(uri, registry_uri=uri)
    return client, client.search_model_versions(f"name = '{name}'")


class _uris:
    """mlflow's fluent API pointed at one store for a block."""

    def __init__(self, uri):
        self.uri = uri

    def __enter__(self):
        self.previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)

    def __exit__(self, *exc):
        mlflow.set_tracking_uri(self.previous[0])
        mlflow.set_registry_uri(self.previous[1])


def test_final_model_loads_from_its_folder_and_predicts_what_was_logged(text_final, text_search):
    out, summary = text_final.result.output_dir, text_final.summary
    assert summary["architecture"] == text_search.best.architecture
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json"} <= {p.name for p in out.iterdir()}
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    # The raw test split, through the saved tokenizer and model only: the accuracy the command reported
    # (in batches of the command's size, padded to their longest text as the task pads them: the same tensors).
    test = pd.read_csv(DATA_DIR / "rotten_tomatoes" / "test.csv.gz")
    texts, batch = test["text"].astype(str).tolist(), summary["trainer"]["eval_batch_size"]
    ids = []
    for start in range(0, len(texts), batch):
        enc = tokenizer(texts[start : start + batch], truncation=True, max_length=48, padding=True, return_tensors="pt")
        with torch.no_grad():
            ids += model(**enc).logits.argmax(-1).tolist()
    # The classes by the data's own names (data/README.md: label 1 = fresh, 0 = rotten), in label order.
    assert model.config.id2label == {0: "rotten", 1: "fresh"}
    predicted = np.array([{"rotten": 0, "fresh": 1}[model.config.id2label[i]] for i in ids])
    assert len(test) == 1000
    assert float((predicted == test["label"].to_numpy()).mean()) == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-9)
    assert summary["metrics"].keys() == {"val_accuracy", "val_macro_f1", "val_loss", "test_accuracy", "test_macro_f1", "test_loss"}
    assert summary["task_config"]["train_size"] is None and summary["steps"] == 12


def test_final_run_is_logged_in_the_search_experiment_and_registered(text_final, text_search, store):
    info = text_final.result.mlflow
    client, versions = registered(store.uri, "nas-text-classification")
    run = client.get_run(info["run_id"])
    assert run.info.experiment_id == text_search.experiment_id and run.info.status == "FINISHED"
    assert run.data.tags["search_run_id"] == text_search.run_id and "mlflow.parentRunId" not in run.data.tags
    assert run.data.params["hidden_size"] == str(text_final.summary["architecture"]["hidden_size"])
    assert run.data.params["trainer.max_steps"] == "12"
    for key, value in text_final.summary["metrics"].items():
        assert run.data.metrics[key] == pytest.approx(value)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [2, 4, 6, 8, 10, 12]

    [version] = versions
    assert (str(version.version), version.run_id, version.tags["search_run_id"]) == ("1", run.info.run_id, text_search.run_id)
    # The version's source resolves to the logged model: the transformers flavour, loadable as components.
    with _uris(store.uri):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(store.root / "dl")))
        components = mlflow.transformers.load_model(f"models:/nas-text-classification/{version.version}", return_type="components")
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["transformers"]["task"] == "text-classification"
    assert (local / "requirements.txt").read_text().count("==") >= 3  # pinned, not inferred
    saved = AutoModelForSequenceClassification.from_pretrained(text_final.result.output_dir).eval()
    enc = components["tokenizer"](["a gripping, funny film", "dull and far too long"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(components["model"].eval()(**enc).logits, saved(**enc).logits)


def test_eval_every_ships_the_best_validated_weights_and_says_which(text_search, store):
    """nas-final validates every trainer.eval_every steps (its default: 100 of 1,000) and ships the best of those
    weights: an earlier step's only when strictly better than the last's."""
    assert final_config(["search=x"]).trainer.eval_every == 100
    result = run_final(final_config([f"search={text_search.dir}", *FINAL_TINY, "trainer.eval_every=4", "register_as=best-step"]),
                       store.root / "best-step-final")
    summary = json.loads((result.output_dir / "metrics.json").read_text())
    by_step = {c["step"]: c["metrics"] for c in summary["checkpoints"]}
    assert list(by_step) == [4, 8, 12] and summary["steps"] == 12
    earlier = max((4, 8), key=lambda s: (by_step[s]["accuracy"], -s))  # the first of the best
    expected = earlier if by_step[earlier]["accuracy"] > by_step[12]["accuracy"] else 12
    assert summary["best_step"] == expected and summary["validation"] == by_step[expected]
    assert summary["metrics"]["val_accuracy"] == by_step[expected]["accuracy"]
    card = (result.output_dir / "README.md").read_text()
    assert ("the last step's weights" if expected == 12 else f"the weights of step {expected}") in card
    assert MlflowClient(store.uri).get_run(result.mlflow["run_id"]).data.metrics["best_step"] == expected


def run_cli(monkeypatch, *args: str) -> None:
    """The nas-final command (its Hydra app), in this process: a subprocess would pay the imports again."""
    monkeypatch.setattr(sys, "argv", ["nas-final", *args])
    GlobalHydra.instance().clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        nas.final.main()
    finally:  # Hydra configured logging for its job (console and a log file): give the rest of the session its own back
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


def test_cli_from_the_search_run_id(text_search, store, monkeypatch):
    out = store.root / "cli-final"
    # The search's own budget and data sizes (TINY): the final training is then the searched candidate's training.
    run_cli(monkeypatch, f"search={text_search.run_id}", f"tracking.uri={store.uri}", "trainer=tiny", "task.train_size=64",
            "task.val_size=32", "task.test_size=200", "register_as=nas-from-run-id", f"hydra.run.dir={out}")
    [log_file] = out.glob("*.log")  # what the command printed: where the model is, the MLflow run and version
    assert f"final model: {out}" in log_file.read_text() and "registered model 'nas-from-run-id' version 1" in log_file.read_text()
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["architecture"] == text_search.best.architecture and summary["search"]["run_id"] == text_search.run_id
    assert summary["validation"] == text_search.best.info["metrics"]  # same initialisation, data order and budget: same model
    assert (out / ".hydra" / "overrides.yaml").is_file()
    client, [version] = registered(store.uri, "nas-from-run-id")
    assert version.tags["search_run_id"] == text_search.run_id
    run = client.get_run(version.run_id)
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"])
    assert AutoModelForSequenceClassification.from_pretrained(out).num_parameters() == summary["num_parameters"]


def _copy_search(text_search, tmp_path: Path, candidates: str | None) -> Path:
    copy = tmp_path / "copy"
    (copy / ".hydra").mkdir(parents=True)
    (copy / ".hydra" / "config.yaml").write_text((text_search.dir / ".hydra" / "config.yaml").read_text())
    if candidates is not None:
        (copy / "candidates.jsonl").write_text(candidates)
    return copy


def _all_failed(text_search) -> str:
    records = [json.loads(line) for line in (text_search.dir / "candidates.jsonl").read_text().splitlines()]
    return "".join(json.dumps({**r, "status": "failed", "reward": None}) + "\n" for r in records)


BAD_INPUT = {  # case -> (search argument, extra overrides, error, message)
    "missing directory": (lambda s, tmp: str(tmp / "nope"), [], FinalError, "search: directory '.*/nope' does not exist"),
    "no candidates.jsonl": (lambda s, tmp: str(_copy_search(s, tmp, None)), [], FinalError, "'.*/copy' has no candidates.jsonl"),
    "no successful candidate": (lambda s, tmp: str(_copy_search(s, tmp, _all_failed(s))), [], FinalError,
                                "no successful candidate in '.*/copy' \\(2 candidates"),
    "unknown run id": (lambda s, tmp: "0" * 32, [], FinalError, "MLflow run '0{32}' not found in sqlite:///"),
    "a candidate's run id": (lambda s, tmp: json.loads((s.dir / "candidates.jsonl").read_text().splitlines()[0])["mlflow_run_id"], [],
                             FinalError, "is a candidate of the search run"),
    "missing test file": (lambda s, tmp: str(s.dir), ["task.test_file=/nonexistent/test.csv"], DataError,
                          "task.test_file: data file '/nonexistent/test.csv' does not exist"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_fails_before_any_training(case, text_search, store, tmp_path, monkeypatch):
    argument, overrides, error, message = BAD_INPUT[case]
    monkeypatch.setattr(nas.candidate, "train_architecture", lambda *a, **k: pytest.fail("trained on bad input"))  # run_final's training
    client = MlflowClient(store.uri)
    runs_before = len(client.search_runs([text_search.experiment_id]))
    config = final_config([f"search={argument(text_search, tmp_path)}", f"tracking.uri={store.uri}", *overrides])
    with pytest.raises(error, match=message):
        run_final(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert len(client.search_runs([text_search.experiment_id])) == runs_before


def test_cli_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "outputs" / "runs" / "nope"
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, f"search={missing}", f"hydra.run.dir={tmp_path / 'out'}")
    assert exit_.value.code == 2
    message = f"nas-final: error: search: directory '{missing}' does not exist (nor is it an MLflow run id)"
    err = capsys.readouterr().err
    assert err.strip().splitlines()[0] == message and "Traceback" not in err


def test_image_final_saves_an_image_processor_that_reproduces_the_test_accuracy(store):
    vit = search(store.root, "image-search", [*TINY, "budget=1", "strategy=random", "task=image_classification", "search_space=vit_small",
                                              f"tracking.uri={store.uri}"])
    result = run_final(final_config([f"search={vit.dir}", *FINAL_TINY]), store.root / "image-final")
    model = AutoModelForImageClassification.from_pretrained(result.output_dir).eval()
    processor = AutoImageProcessor.from_pretrained(result.output_dir)
    with np.load(DATA_DIR / "fashion_mnist" / "test.npz") as arrays:
        images, labels = arrays["image"], arrays["label"]
    inputs = processor(images=[image[:, :, None] for image in images], return_tensors="pt")  # raw uint8 (H, W, 1) images
    with torch.no_grad():
        ids = model(**inputs).logits.argmax(-1).tolist()
    # Fashion-MNIST's class names (data/README.md), in label order: the model's ids are the labels' positions.
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    predicted = np.array([names.index(model.config.id2label[i]) for i in ids])
    assert float((predicted == labels).mean()) == pytest.approx(result.metrics["test_accuracy"], abs=1e-9)
    client, [version] = registered(store.uri, "nas-image-classification")
    assert client.get_run(version.run_id).data.tags["search_run_id"] == vit.run_id
    with _uris(store.uri):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(store.root / "dl-image")))
    assert "image_processor_type" in yaml.safe_load((local / "MLmodel").read_text())["flavors"]["transformers"]


TINY_ARCHITECTURES = {  # task -> (family, a tiny architecture)
    "text_classification": ("bert", {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}),
    "language_modeling": ("gpt2", {"n_embd": 16, "n_layer": 1, "n_head": 2}),
    "translation": ("t5", {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2}),
    "image_classification": ("vit", {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                                     "patch_size": 7}),
    "audio_classification": ("audio-spectrogram-transformer", {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                                               "intermediate_size": 32, "patch_size": 8, "frequency_stride": 8,
                                                               "time_stride": 8}),
}


def tiny_model(task):
    from nas.models import build_config, build_model

    family, architecture = TINY_ARCHITECTURES[task.name]
    torch.manual_seed(0)
    return build_model(build_config(family, architecture, task.config_fields()), task.name).eval()


@pytest.mark.parametrize("task_name", ["text_classification", "language_modeling", "translation", "image_classification"])
def test_the_test_split_is_scored_by_the_validation_metric_code(task_name):
    from nas.tasks import make_task

    own = {"text_classification": ["task.vocab_size=300"], "language_modeling": ["task.vocab_size=300"],
           "translation": ["task.vocab_size=300", "task.max_new_tokens=4"], "image_classification": []}  # each task's own settings
    sizes = [f"task={task_name}", "task.train_size=64", "task.val_size=8", *own[task_name]]
    # A search never reads the test split: a missing test file is no error there.
    make_task(compose_config([*sizes, "task.test_file=/nonexistent/test.csv"]).task)
    # With the validation rows as the test split, the test metrics are the validation metrics.
    task = make_task(compose_config([*sizes, "task.test_file=${task.validation_file}", "task.test_size=8"]).task, with_test=True)
    model = tiny_model(task)
    assert nas.train.evaluate(model, task, 8, split="test") == nas.train.evaluate(model, task, 8)
    with pytest.raises(ValueError, match="no 'test' split to evaluate on"):
        make_task(compose_config(sizes).task).evaluate(model, 8, split="test")  # built for a search: no test split


def test_audio_test_files_are_the_test_split_of_a_final_training():
    from nas.tasks import make_task

    config = compose_config(["task=audio_classification", "task.train_size=100", "task.val_size=20"]).task
    searched, final = make_task(config), make_task(config, with_test=True)
    model = tiny_model(final)
    during_search = searched.evaluate(model, 16)
    assert set(during_search) == {"accuracy", "macro_f1", "loss"}  # a search never scores a test set
    assert final.evaluate(model, 16) == during_search
    assert set(final.evaluate(model, 16, split="test")) == {"unseen_accuracy", "human_accuracy"}


def test_final_run_and_version_say_what_they_are(text_final, text_search, store):
    """The registered version describes its data, metrics and search, the alias newest points at it; the run's search
    tag is the search's folder as given (unquoted), its dataset inputs the files it read, with their digests."""
    import hashlib

    info = text_final.result.mlflow
    client = MlflowClient(store.uri, registry_uri=store.uri)
    version = client.get_model_version(info["registered_name"], info["registered_version"])
    train_file = text_final.summary["task_config"]["train_file"]
    assert train_file in version.description and "val_accuracy" in version.description and text_search.run_id in version.description
    assert client.get_model_version_by_alias(info["registered_name"], "newest").version == version.version
    run = client.get_run(info["run_id"])
    assert run.data.tags["search"] == str(text_search.dir)
    inputs = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "validation", "test"}
    with open(train_file, "rb") as f:
        assert inputs["train"].digest == hashlib.sha256(f.read()).hexdigest()[:8]
