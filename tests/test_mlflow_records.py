"""MLflow records as MLflow users expect them: a real multirun of two tiny searches into a real sqlite store.

Unique readable run names (the sweep's folder and job number, or the date-time), the sweep tag and hydra.job.num,
MLflow's system tags (user, source, git commit), the data files as dataset inputs with a digest of their bytes, and
one name per metric (val_<metric> as nas-final names it; no duplicate of reward or best_reward).
"""

import hashlib
import json
import re

import pytest
from mlflow.tracking import MlflowClient

from nas.runner import run_search

from .conftest import TINY, compose_config, run_nas

pytestmark = pytest.mark.slow


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:8]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    import _pytest.monkeypatch

    with _pytest.monkeypatch.MonkeyPatch.context() as monkeypatch:
        code = run_nas(monkeypatch, "-m", *TINY, "budget=2", f"tracking.uri={uri}", "seed=0,1", f"hydra.sweep.dir={root / 'sweep'}")
    assert code == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("nas").experiment_id
    parents = client.search_runs([experiment], "tags.mlflow.parentRunId IS NULL", order_by=["tags.`hydra.job.num` ASC"])
    return root, uri, client, experiment, parents


def test_sweep_jobs_have_unique_names_the_sweep_tag_and_job_number(sweep):
    root, _, _, _, parents = sweep
    assert len(parents) == 2
    names = [p.info.run_name for p in parents]
    assert names == [f"ppo-text_classification-seed{n}-sweep-job{n}" for n in (0, 1)]
    for n, parent in enumerate(parents):
        assert parent.data.tags["sweep"] == str(root / "sweep") and parent.data.tags["hydra.job.num"] == str(n)


def test_search_runs_carry_mlflows_system_tags(sweep):
    for parent in sweep[4]:
        tags = parent.data.tags
        assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
        assert re.fullmatch(r"[0-9a-f]{40}", tags["mlflow.source.git.commit"])  # the tests run from a git checkout


def test_search_runs_log_their_data_as_dataset_inputs(sweep):
    parent = sweep[2].get_run(sweep[4][0].info.run_id)
    config = compose_config(TINY)
    inputs = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in parent.inputs.dataset_inputs}
    assert set(inputs) == {"train", "validation"}
    for context, path, rows in (("train", config.task.train_file, 64), ("validation", config.task.validation_file, 32)):
        assert inputs[context].digest == digest(path) and json.loads(inputs[context].source)["uri"] == path
        assert json.loads(inputs[context].profile) == {"rows": rows}


def test_one_name_per_metric(sweep):
    _, _, client, experiment, parents = sweep
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    for child in children:
        assert {"val_accuracy", "val_macro_f1", "reward"} <= set(child.data.metrics)
        assert not {"accuracy", "macro_f1", "metric_reward"} & set(child.data.metrics)  # no objective.cost: metric_reward == reward
    assert "best_reward" in parents[0].data.metrics and "best_value" not in parents[0].data.metrics


def test_a_single_search_is_named_by_its_date_time(tmp_path, sqlite_uri):
    run_search(compose_config([*TINY, "budget=1", "strategy=random", f"tracking.uri={sqlite_uri}"]), tmp_path / "run")
    [run] = MlflowClient(sqlite_uri).search_runs([MlflowClient(sqlite_uri).get_experiment_by_name("nas").experiment_id],
                                                 "tags.mlflow.parentRunId IS NULL")
    assert re.fullmatch(r"random-text_classification-seed0-\d{8}-\d{6}", run.info.run_name)
