"""Tracking settings MLflow would refuse (or take and fail on later): one line naming the key, exit 2, before
anything is read, trained or logged. Every form of tracking.uri MLflow knows is either accepted or named."""

import importlib.util
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nas.folders import RunDirectory

from .conftest import TINY, run_nas

CASES = [
    ("sqlite:/relative.db", ["tracking.uri=sqlite:/relative.db"], "tracking.uri: 'sqlite:/relative.db' is not a sqlite store MLflow can open"),
    ("sqlite in memory", ["tracking.uri=sqlite://"], "tracking.uri: 'sqlite://' is not a sqlite store MLflow can open"),
    ("http without colon", ["tracking.uri=http//localhost:5000"], "tracking.uri: 'http//localhost:5000' is a folder"),
    ("file store", ["tracking.uri=file:///tmp/mlruns"], "tracking.uri: 'file:///tmp/mlruns' is a folder"),
    ("unknown scheme", ["tracking.uri=ftp://127.0.0.1/x"], "tracking.uri: 'ftp://127.0.0.1/x' is not a tracking store MLflow knows"),
    ("server without host", ["tracking.uri=http://"], "tracking.uri: 'http://' names no host"),
    ("database without driver", ["tracking.uri=postgresql://nas@127.0.0.1:1/nas"], "tracking.uri: cannot use the database"),
    ("experiment name too long", ["tracking.experiment_name=" + "x" * 501], "tracking.experiment_name is 501 characters long"),
    ("run name too long", ["tracking.run_name=" + "r" * 251], "tracking.run_name is 251 characters long"),
    ("artifacts at a run URI", ["tracking.artifact_location=runs:/0123/x"], "tracking.artifact_location: 'runs:/0123/x' is a run's"),
    ("artifacts in an unknown store", ["tracking.artifact_location=xyz://bucket/a"], "tracking.artifact_location: 'xyz://bucket/a' has a scheme"),
    ("artifacts under a file", ["tracking.artifact_location={tmp}/a_file/art"], "tracking.artifact_location: cannot write artifacts under"),
]


NEEDS = {"database without driver": pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed")}


@pytest.mark.parametrize("arguments, expected", [pytest.param(*c[1:], id=c[0], marks=NEEDS.get(c[0], ())) for c in CASES])
def test_a_tracking_setting_mlflow_refuses_is_named_before_any_work(arguments, expected, tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("")
    monkeypatch.chdir(tmp_path)  # a relative store or artifact folder would land here
    db = tmp_path / "mlflow.db"
    args = [*TINY, f"tracking.uri=sqlite:///{db}", f"hydra.run.dir={tmp_path / 'run'}", *(a.format(tmp=tmp_path) for a in arguments)]
    assert run_nas(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert not db.exists() and not RunDirectory(tmp_path / "run").read_records()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no store, no mlruns/, no run folder left behind


def test_a_deleted_experiment_is_named_with_how_to_restore_it(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("gone")
    client.delete_experiment(experiment_id)
    args = [*TINY, f"tracking.uri={uri}", "tracking.experiment_name=gone", f"hydra.run.dir={tmp_path / 'run'}"]
    assert run_nas(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert f"tracking.experiment_name: the experiment 'gone' is deleted in {uri}" in err and f"--experiment-id {experiment_id}" in err
    assert client.search_runs([experiment_id], run_view_type=3) == []  # ViewType.ALL: nothing logged to it
    assert not RunDirectory(tmp_path / "run").read_records()


def test_every_store_form_nas_documents_is_accepted(tmp_path):
    from nas.tracking import check_uri_form

    for uri in ("sqlite:///outputs/mlflow.db", f"sqlite:///{Path(tmp_path) / 'a.db'}", "http://127.0.0.1:5000", "https://mlflow.example.org",
                "postgresql://u:p@127.0.0.1/db", "postgresql+psycopg2://u@127.0.0.1/db", "mysql://u@127.0.0.1/db", "databricks"):
        check_uri_form(uri)
