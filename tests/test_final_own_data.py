"""nas-final on the user's own data: a real tiny search of user CSV files, then the final training.

A test split is scored only when it belongs to the searched data: never the shipped task's test set for
the user's files. Without one, the final run reports validation metrics only and says so (its log, metrics.json,
its MLflow run's tags, the model card). The registered name identifies the data, so a user's model never becomes
a version of a shipped model's name. The saved folders (the search's best/, nas-final's model) work on texts longer
than the searched length through transformers.pipeline.
"""

import json
import logging
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from transformers import AutoConfig, AutoTokenizer, pipeline

from nas.config import DATA_DIR
from nas.final import run_final

from .conftest import TINY
from .test_final import FINAL_TINY, final_config, no_internet, registered, search  # noqa: F401 (no_internet: a fixture)

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(["a gripping, funny and far too long film about the sea"] * 30)  # far more tokens than task.max_length=48


def own_files(folder) -> dict[str, str]:
    """CSV files of the user's: other texts, string labels, other column names than the shipped task's."""
    shipped = pd.read_csv(DATA_DIR / "rotten_tomatoes" / "train.csv.gz").iloc[:400]
    frame = pd.DataFrame({"review": shipped["text"].str.upper(), "verdict": shipped["label"].map({0: "bad", 1: "good"})})
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, rows in {"my_train": frame.iloc[:200], "my_val": frame.iloc[200:300], "my_test": frame.iloc[300:]}.items():
        files[name] = str(folder / f"{name}.csv")
        rows.to_csv(files[name], index=False)
    return files


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("own-data")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    files = own_files(root / "data")
    data = [f"task.train_file={files['my_train']}", f"task.validation_file={files['my_val']}", "task.text_column=review",
            "task.label_column=verdict"]
    found = search(root, "own-search", [*TINY, "budget=2", f"tracking.uri={uri}", *data])
    return SimpleNamespace(root=root, uri=uri, files=files, data=data, search=found)


def test_no_test_split_of_another_source_validation_only_and_said(own, caplog):
    with caplog.at_level(logging.INFO, logger="nas.final"):
        result = run_final(final_config([f"search={own.search.dir}", *FINAL_TINY]), own.root / "final")
    summary = json.loads((result.output_dir / "metrics.json").read_text())
    assert set(result.metrics) == {"val_accuracy", "val_macro_f1", "val_loss"}  # no test_* from the shipped Rotten Tomatoes test set
    assert summary["test"] is None and summary["task_config"]["test_file"] is None
    assert "no test split" in summary["test_split"] and "validation metrics only" in caplog.text
    client = MlflowClient(own.uri)
    run = client.get_run(result.mlflow["run_id"])
    assert run.data.tags["test_split"].startswith("no test split") and run.data.tags["data"] == "own"
    assert not [k for k in run.data.metrics if k.startswith("test_")]
    # Its registered name names the data; the shipped task's name has no version of it.
    name = result.mlflow["registered_name"]
    assert name.startswith("nas-text-classification-my_train-") and len(name) == len("nas-text-classification-my_train-") + 8
    assert registered(own.uri, "nas-text-classification")[1] == []
    card = (result.output_dir / "README.md").read_text()
    assert "no test split" in card and own.files["my_train"] in card and "val_accuracy" in card and own.search.run_id in card
    # The saved model classifies a text longer than its positions, with the user's label names.
    classify = pipeline("text-classification", model=str(result.output_dir))
    assert classify.tokenizer.model_max_length == classify.model.config.max_position_embeddings == 48
    assert classify(LONG_TEXT, truncation=True)[0]["label"] in ("bad", "good")


def test_search_best_folder_carries_the_model_positions(own):
    best = own.search.dir / "best"
    tokenizer, config = AutoTokenizer.from_pretrained(best), AutoConfig.from_pretrained(best)
    assert tokenizer.model_max_length == config.max_position_embeddings == 48
    assert len(tokenizer(LONG_TEXT, truncation=True)["input_ids"]) == 48


def test_a_test_file_given_for_the_data_is_scored(own):
    result = run_final(final_config([f"search={own.search.dir}", *FINAL_TINY, f"task.test_file={own.files['my_test']}"]),
                       own.root / "final-with-test")
    summary = json.loads((result.output_dir / "metrics.json").read_text())
    assert {"test_accuracy", "test_macro_f1"} <= set(result.metrics) and summary["test_split"] == ""
    run = MlflowClient(own.uri).get_run(result.mlflow["run_id"])
    assert run.data.tags["test_split"] == own.files["my_test"]


def test_a_test_file_given_to_the_search_is_its_own(own):
    with_test = search(own.root, "own-search-test", [*TINY, "budget=1", "strategy=random", f"tracking.uri={own.uri}", *own.data,
                                                      f"task.test_file={own.files['my_test']}"])
    result = run_final(final_config([f"search={with_test.dir}", *FINAL_TINY]), own.root / "final-search-test")
    assert "test_accuracy" in result.metrics
    assert json.loads((result.output_dir / "metrics.json").read_text())["task_config"]["test_file"] == own.files["my_test"]


def test_the_shipped_datas_class_names_and_test_split_stay_with_it(tmp_path):
    from nas.provenance import own_data_settings
    from nas.tasks import make_task

    from .conftest import compose_config

    shipped = compose_config(["task.train_size=64", "task.val_size=8", "task.vocab_size=300"]).task
    assert own_data_settings(shipped) == shipped
    assert make_task(shipped).config_fields()["id2label"] == {0: "rotten", 1: "fresh"}
    # The user's files with 0/1 labels of their own meaning: neither the shipped names nor the shipped test set.
    frame = pd.read_csv(DATA_DIR / "rotten_tomatoes" / "validation.csv.gz").iloc[:100]
    frame.iloc[:60].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[60:].to_csv(tmp_path / "val.csv", index=False)
    own = own_data_settings(compose_config([f"task.train_file={tmp_path / 'train.csv'}", f"task.validation_file={tmp_path / 'val.csv'}",
                                            "task.vocab_size=300"]).task)
    assert own.label_names is None and own.test_file is None
    assert make_task(own).config_fields()["id2label"] == {0: "0", 1: "1"}
    given = own_data_settings(compose_config([f"task.train_file={tmp_path / 'train.csv'}", f"task.validation_file={tmp_path / 'val.csv'}",
                                              f"task.test_file={tmp_path / 'val.csv'}", "task.label_names={0:no,1:yes}"]).task)
    assert given.test_file == str(tmp_path / "val.csv") and given.label_names == {0: "no", 1: "yes"}  # given for this data: kept


def test_the_shipped_image_data_names_its_classes_and_a_search_of_other_images_drops_the_names(tmp_path):
    import numpy as np

    from nas.provenance import own_data_settings
    from nas.tasks import make_task

    from .conftest import compose_config

    shipped = compose_config(["task=image_classification", "task.train_size=300", "task.val_size=10"]).task
    id2label = make_task(shipped).config_fields()["id2label"]
    assert id2label[0] == "T-shirt/top" and id2label[9] == "Ankle boot" and len(id2label) == 10
    images = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", image=images, label=np.arange(30) % 3)
    own = own_data_settings(compose_config(["task=image_classification", f"task.train_file={tmp_path / 'mine.npz'}",
                                        f"task.validation_file={tmp_path / 'mine.npz'}"]).task)
    assert own.label_names is None and own.test_file is None
    assert make_task(own).config_fields()["id2label"] == {0: "0", 1: "1", 2: "2"}
