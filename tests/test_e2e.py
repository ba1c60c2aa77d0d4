"""End to end: real tiny models, real sqlite MLflow stores in temp dirs, real Hydra composition."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from transformers import AutoConfig, AutoModelForSequenceClassification

from nas.models import auto_model
from nas.runner import run_search
from nas.space import SpaceError
from nas.tasks import DataError

from .conftest import TINY, compose_config, run_nas

pytestmark = pytest.mark.slow


def nas_cli(*args, cwd: Path, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nas", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"nas {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_search_writes_outputs_and_mlflow_runs(tmp_path, sqlite_uri):
    run_dir = tmp_path / "run"
    nas_cli(*TINY, f"tracking.uri={sqlite_uri}", f"hydra.run.dir={run_dir}", cwd=tmp_path)

    config = AutoConfig.from_pretrained(run_dir / "best")
    assert config.model_type == "bert"
    AutoModelForSequenceClassification.from_config(config)
    assert {p.name for p in (run_dir / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    candidates = read_jsonl(run_dir / "candidates.jsonl")
    assert len(candidates) == 5
    assert len({c["architecture_hash"] for c in candidates}) == 5

    client = MlflowClient(sqlite_uri)
    experiment = client.get_experiment_by_name("nas")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 5
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["ppo.horizon"] == "2" and parent.data.params["trainer.max_steps"] == "4"
    assert {"best_reward", "ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/approx_kl", "ppo/clipfrac", "ppo/explained_variance",
            "ppo/reward_mean"} <= set(parent.data.metrics)
    assert len(client.get_metric_history(parent.info.run_id, "best_reward")) == 5
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {".hydra", "best", "candidates.jsonl"} <= parent_artifacts

    by_id = {c.info.run_id: c for c in children}
    for record in candidates:
        child = by_id[record["mlflow_run_id"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["architecture_hash"] == record["architecture_hash"]
        assert {"iteration", "episode", "step", "status"} <= set(child.data.tags)
        assert child.data.params["hidden_size"] == str(record["architecture"]["hidden_size"])
        assert child.data.metrics["val_accuracy"] == pytest.approx(record["metrics"]["accuracy"])
        assert {"reward", "num_parameters", "train_seconds", "eval_seconds", "val_macro_f1"} <= set(child.data.metrics)
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [2, 4]
        assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["config.json"]

    # The same config and seed in this process give the same candidates and metrics: hash-order effects (e.g. in
    # tokenizer training) differ between processes, so in-process repeats alone would not show them.
    run_search(compose_config([*TINY, f"tracking.uri=sqlite:///{tmp_path / 'again.db'}"]), tmp_path / "again")
    same = ("architecture", "metrics", "reward", "status")
    assert [{k: r[k] for k in same} for r in read_jsonl(tmp_path / "again" / "candidates.jsonl")] == [{k: r[k] for k in same} for r in candidates]


def test_multirun_2x2_writes_four_parent_runs(tmp_path, sqlite_uri, monkeypatch):
    tiny = [o for o in TINY if not o.startswith("budget")] + ["budget=2"]
    assert run_nas(monkeypatch, "-m", "ppo.learning_rate=1e-3,3e-4", "seed=0,1", *tiny, f"tracking.uri={sqlite_uri}",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}") == 0
    client = MlflowClient(sqlite_uri)
    runs = client.search_runs([client.get_experiment_by_name("nas").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 4
    assert {(p.data.params["seed"], p.data.params["ppo.learning_rate"]) for p in parents} == {
        (s, lr) for s in ("0", "1") for lr in ("0.001", "0.0003")}
    assert len(runs) == 4 + 4 * 2
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1", "2", "3"]


TASK_RUNS = [  # (task, search space, the metric its reward comes from, a check on every candidate)
    ("text_classification", "gpt2_small", "accuracy", lambda e: 0 <= e.info["metrics"]["macro_f1"] <= 1),
    ("language_modeling", "gpt2_small", "perplexity", lambda e: e.info["metrics"]["perplexity"] > 1),
    ("translation", "t5_small", "chrf", lambda e: 0 <= e.info["metrics"]["bleu"] <= 100),
    ("image_classification", "vit_small", "accuracy", lambda e: 28 % e.architecture["patch_size"] == 0),
    # no test set scored
    ("audio_classification", "ast_small", "accuracy", lambda e: set(e.info["metrics"]) == {"accuracy", "macro_f1", "loss"}),
]


@pytest.mark.parametrize("task, space, metric, check", TASK_RUNS, ids=[t[0] for t in TASK_RUNS])
def test_every_task_runs_a_real_search_end_to_end(tmp_path, sqlite_uri, task, space, metric, check):
    config = compose_config([*TINY, "budget=3", f"task={task}", f"search_space={space}", "strategy=random", f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    assert len(result.history) == 3 and all(e.ok for e in result.history), [e.error for e in result.history]
    assert all(check(e) for e in result.history)
    client = MlflowClient(sqlite_uri)
    children = client.search_runs([client.get_experiment_by_name("nas").experiment_id], "tags.status = 'ok'")
    assert len(children) == 3 and all(f"val_{metric}" in c.data.metrics for c in children)
    hf_config = AutoConfig.from_pretrained(tmp_path / "best")
    assert hf_config.model_type == config.search_space.family
    model = auto_model(task).from_config(hf_config)
    assert model.num_parameters() == result.best.info["num_parameters"]
    assert any((tmp_path / "best" / name).is_file() for name in ("tokenizer.json", "preprocessor_config.json"))


def test_a_failing_candidate_is_recorded_and_the_search_goes_on(tmp_path, sqlite_uri):
    # 8 positions build (every value is valid, so the search starts) but cannot embed the task's 48-token inputs:
    # the candidates that draw it fail in their first forward pass; the others train.
    config = compose_config([*TINY, "budget=8", "strategy=random", "+search_space.dimensions.max_position_embeddings=[64,8]",
                             "search_space.initial=null", f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path)
    failed = [e for e in result.history if not e.ok]
    assert failed and len(failed) < len(result.history) == 8
    records = read_jsonl(tmp_path / "candidates.jsonl")
    assert {r["status"] for r in records} == {"ok", "failed"}
    assert all(r["architecture"]["max_position_embeddings"] == 8 and "The expanded size of the tensor" in r["error"]
               for r in records if r["status"] == "failed")
    client = MlflowClient(sqlite_uri)
    failed_runs = client.search_runs([client.get_experiment_by_name("nas").experiment_id], "tags.status = 'failed'")
    assert len(failed_runs) == len(failed) and all(r.info.status == "FAILED" for r in failed_runs)


@pytest.mark.parametrize(
    "override, error, message",
    [
        ("task.train_file=/nonexistent/reviews.csv", DataError, "task.train_file: data file '/nonexistent/reviews.csv' does not exist"),
        ("task.label_column=stars", DataError, r"has no column \['stars'\]"),
        ("search_space.dimensions.hidden_size=[]", SpaceError, r"search_space\.dimensions\.hidden_size has an empty choice list"),
        ("search_space.max_params=10", SpaceError, "no architecture satisfying"),
        ("+search_space.dimensions.n_embd=[32]", SpaceError, "n_embd"),
        ("task=translation search_space=gpt2_small", SpaceError, "family 'gpt2' does not fit task 'translation'"),
        ("task=image_classification task.image_size=32", DataError, "32"),
        ("task=audio_classification task.sampling_rate=16000", DataError, "16000"),
        ("task=translation task.source_column=english", DataError, r"has no column \['english'\]"),
    ],
)
def test_bad_input_fails_before_any_training(tmp_path, sqlite_uri, override, error, message):
    config = compose_config([*TINY, *override.split(), f"tracking.uri={sqlite_uri}"])
    with pytest.raises(error, match=message):
        run_search(config, tmp_path)
    assert not (tmp_path / "candidates.jsonl").exists()


@pytest.mark.parametrize("task, suffix", [("text_classification", ".csv"), ("translation", ".csv"), ("image_classification", ".npz"), ("audio_classification", ".npz")])
def test_an_empty_split_fails_before_any_training(tmp_path, sqlite_uri, task, suffix):
    empty = tmp_path / f"empty{suffix}"
    if suffix == ".csv":
        empty.write_text("text,label,source,target\n")
    else:
        import numpy as np

        arrays = {"image": np.zeros((0, 28, 28), np.uint8)} if task == "image_classification" else {"audio": np.zeros((0, 8000), np.int8), "sampling_rate": 8000}
        np.savez(empty, label=np.zeros(0, np.int64), **arrays)
    config = compose_config([*TINY, f"task={task}", f"task.validation_file={empty}", f"tracking.uri={sqlite_uri}"])
    with pytest.raises(DataError, match=f"task.validation_file: .*{empty.name}"):
        run_search(config, tmp_path / "run")
    assert not (tmp_path / "run" / "candidates.jsonl").exists()
