"""A candidate's own overhead kept off the critical path (issue 18), with real components: a real sqlite MLflow
store, real tiny models, the shipped data.

The search never waits for MLflow: a candidate's child run is created by the tracker's background thread
while the candidate trains, with the parent/child structure, tags, params and start time it had when it was
created on the spot.
"""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import Future

import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from nas import tracking
from nas.records import CandidateRecord
from nas.search import Evaluation
from nas.tracking import Tracker


def test_a_candidates_run_is_created_in_the_background_while_the_store_is_busy(tmp_path, sqlite_uri):
    tracker = Tracker(sqlite_uri, "nas")
    parent_id = tracker.start_search("search", {"seed": 0}, {"strategy": "random"})
    tracker.flush()
    # Another writer holds the store: creating a run there now would wait for it.
    busy = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    busy.execute("BEGIN EXCLUSIVE")
    handed = int(time.time() * 1000)
    start = time.perf_counter()
    run = tracker.start_candidate(3, "abc", {"hidden_size": 64, "hidden_act": "gelu"}, iteration=1, episode=2, step=0)
    waited = time.perf_counter() - start
    time.sleep(0.3)
    assert isinstance(run, Future) and not run.done()  # still waiting for the store, in the background
    busy.execute("COMMIT")
    busy.close()
    assert waited < 0.1, f"start_candidate waited {waited:.3f} s for the store"

    evaluation = Evaluation(index=3, architecture={"hidden_size": 64, "hidden_act": "gelu"}, key="abc", value=0.7, status="ok",
                            iteration=1, episode=2, step=0, seconds=1.0, info={"metrics": {"accuracy": 0.7}, "steps": 100})
    tracker.finish_candidate(CandidateRecord.from_evaluation(evaluation, run.result()), '{"model_type": "bert"}')
    tracker.end_search()

    child = MlflowClient(sqlite_uri).get_run(run.result())
    assert child.info.run_name == "candidate-003-abc" and child.info.status == "FINISHED"
    assert handed <= child.info.start_time < handed + 300  # when it was handed over, not when the store let it in
    assert child.data.tags[MLFLOW_PARENT_RUN_ID] == parent_id
    assert {k: child.data.tags[k] for k in ("iteration", "episode", "step", "architecture_hash", "candidate_index", "status")} == \
        {"iteration": "1", "episode": "2", "step": "0", "architecture_hash": "abc", "candidate_index": "3", "status": "ok"}
    assert child.data.params == {"hidden_size": "64", "hidden_act": "gelu"}
    assert child.data.metrics["val_accuracy"] == 0.7 and child.data.metrics["reward"] == 0.7


def test_flush_waits_for_a_run_still_being_created(tmp_path, sqlite_uri):
    """What an interrupted search relies on: after flush, every handed-over candidate's run exists (RUNNING), so the
    runs left unfinished are found and marked KILLED."""
    tracker = Tracker(sqlite_uri, "nas")
    tracker.start_search("search", {}, {})
    busy = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    busy.execute("BEGIN EXCLUSIVE")
    run = tracker.start_candidate(0, "k", {"x": 1}, 0, 0, 0)
    time.sleep(0.3)
    busy.execute("COMMIT")
    busy.close()
    tracker.flush()
    assert tracker.unfinished_candidates() == [run.result()]
    tracker.mark_killed(run.result())
    tracker.end_search("KILLED")
    assert MlflowClient(sqlite_uri).get_run(run.result()).info.status == "KILLED"


def test_background_writes_wait_out_the_next_candidates_set_up_unless_someone_needs_them(sqlite_uri, monkeypatch):
    """Writes start WRITE_DELAY after they are queued (then the next candidate is training, not building its model in
    Python beside them), but a run id asked for, or a flush, does not wait for the delay."""
    monkeypatch.setattr(tracking, "WRITE_DELAY", 30.0)  # far longer than anything below may take
    tracker = Tracker(sqlite_uri, "nas")
    tracker.start_search("search", {}, {})
    first = tracker.start_candidate(0, "a", {"x": 1}, 0, 0, 0)
    time.sleep(0.3)
    assert not first.done()  # held back
    start = time.perf_counter()
    run_id = tracker.result(first)
    second = tracker.start_candidate(1, "b", {"x": 2}, 0, 0, 0)
    tracker.log_metrics({"best_reward": 0.5}, step=1)
    tracker.flush()
    assert time.perf_counter() - start < 10.0
    assert second.done() and sorted(tracker.unfinished_candidates()) == sorted([run_id, second.result()])
    tracker.end_search()
    assert [m.value for m in MlflowClient(sqlite_uri).get_metric_history(tracker.parent_id, "best_reward")] == [0.5]


# -- training batches made once per search, evaluation metrics on tensors ------------------------------------------


def tiny_text_task():
    from nas.tasks import make_task

    from .conftest import compose_config

    return make_task(compose_config(["experiment=smoke"]).task)


def test_recorded_batches_replay_the_live_stream_to_every_candidate():
    import functools
    import itertools
    import pickle

    import torch

    from nas.candidate import seeded_stream
    from nas.train import RecordedBatches

    task = tiny_text_task()
    live = list(itertools.islice(seeded_stream(task.train_batches, 8, 0), 30))
    recorded = RecordedBatches(functools.partial(seeded_stream, task.train_batches, 8, 0), "cpu")
    first = list(itertools.islice(recorded, 12))  # a candidate stopped early (multi-fidelity): the next one goes further
    second = list(itertools.islice(recorded, 30))
    for batches in (first, second):
        assert all(b.keys() == a.keys() and all(torch.equal(b[k], a[k]) for k in a) for a, b in zip(live, batches))
    assert all(a is b for a, b in zip(first, second))  # made once, handed to each
    # Past its byte budget a record stops growing; the stream goes on, the same batches, made afresh.
    small = RecordedBatches(functools.partial(seeded_stream, task.train_batches, 8, 0), "cpu", max_bytes=1)
    for _ in range(2):
        assert all(torch.equal(b[k], a[k]) for a, b in zip(live, itertools.islice(small, 30)) for k in a)
    assert len(small._batches) == 1
    copy = pickle.loads(pickle.dumps(recorded))  # what a worker process gets: the recipe, not the tensors
    assert copy._batches == [] and all(torch.equal(b[k], a[k]) for a, b in zip(live, itertools.islice(copy, 30)) for k in a)


def test_classification_metrics_are_scikit_learns_to_the_last_bit():
    import warnings

    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    from nas.tasks.base import classification_metrics

    rng = np.random.default_rng(0)
    for _ in range(500):
        classes, n = int(rng.integers(2, 12)), int(rng.integers(1, 600))
        y_true = rng.integers(0, rng.integers(1, classes + 1), n)  # some classes absent from one side or both
        y_pred = np.where(rng.random(n) < rng.random(), y_true, rng.integers(0, rng.integers(1, classes + 1), n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns of classes never predicted
            expected = {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}
        assert classification_metrics(torch.from_numpy(y_true), torch.from_numpy(y_pred), classes) == expected


def test_the_validation_loss_is_scikit_learns_log_loss_and_the_rest_is_the_predictions_metrics():
    import numpy as np
    import torch
    from sklearn.metrics import log_loss

    from nas.tasks.base import classification_metrics, logit_metrics

    rng = np.random.default_rng(0)
    for _ in range(50):
        classes, n = int(rng.integers(2, 8)), int(rng.integers(1, 300))
        logits = torch.from_numpy(rng.normal(0, 3, (n, classes)))
        y_true = torch.from_numpy(rng.integers(0, classes, n))
        metrics = logit_metrics(y_true, logits, classes)
        probabilities = torch.softmax(logits, -1).numpy()
        expected = log_loss(y_true.numpy(), probabilities, labels=range(classes))
        assert metrics["loss"] == pytest.approx(expected, rel=1e-6)  # computed in float32, as models give logits
        assert {k: v for k, v in metrics.items() if k != "loss"} == classification_metrics(y_true, logits.argmax(-1), classes)


def test_evaluation_reuses_its_batches_and_scores_as_before():
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    from nas.models import build_config, build_model

    task = tiny_text_task()
    torch.manual_seed(0)
    model = build_model(build_config("bert", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2,
                                              "intermediate_size": 64}, task.config_fields()), task.name).eval()
    with torch.no_grad():
        metrics = task.evaluate(model, 10)
        again = task.evaluate(model, 10)
        # what evaluation computed before: the batches made each time, scikit-learn's metrics on the predictions
        n = len(task.val["labels"])
        preds = []
        for start in range(0, n, 10):
            batch = task._batch(task.val, torch.arange(start, min(start + 10, n)))
            batch.pop("labels")
            preds.append(model(**batch).logits.argmax(-1))
    y_pred, y_true = torch.cat(preds).numpy(), task.val["labels"].numpy()
    assert metrics.pop("loss") == again.pop("loss") > 0
    assert metrics == again == {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}
    assert len(task._eval_cache) == 1


def test_a_loss_that_turns_nan_between_two_checks_is_named_at_its_step():
    import torch

    from nas.train import TrainerConfig, fit

    class Diverging(torch.nn.Module):  # a real loss that overflows at step 7, between two checks (log_every=5)
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            scale = torch.tensor(1e38 if self.calls == 7 else 1.0)
            return type("Out", (), {"loss": (self.w * x * scale * scale).sum()})()

    batches = iter([{"x": torch.ones(1)}] * 20)
    try:
        fit(Diverging(), batches, 20, 1e-3, TrainerConfig(log_every=5, max_steps=20))
    except FloatingPointError as exc:
        assert str(exc) == "training loss became inf at step 7"
    else:
        raise AssertionError("a non-finite loss went unnoticed")


# -- the set-up cache: a search on unchanged data reuses the tokenizer and the encoded texts ---------------------------


def task_state(task) -> dict:
    """What a text task derived from its data: the tokenizer (as its JSON) and every tensor."""
    state = {"tokenizer": task.tokenizer.backend_tokenizer.to_str(), "fields": task.config_fields()}
    for split, data in {"train": task.train, **task.splits}.items():
        state.update({f"{split}.{k}": v.tolist() for k, v in data.items()})
    return state


def test_a_search_on_the_same_data_reuses_the_tokenizer_and_the_encoded_texts(tmp_path):
    from nas.tasks import make_task
    from nas.tasks.cache import setup_cache

    from .conftest import compose_config

    config = compose_config(["experiment=smoke"]).task
    made = task_state(make_task(config))
    with setup_cache(tmp_path):
        first = task_state(make_task(config))
        entries = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        second = task_state(make_task(config))
    assert first == second == made
    assert sorted(p.name.split("-")[0] for p in entries) == ["tensors", "tensors", "tokenizer"]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == entries  # read, not made again
    with setup_cache(tmp_path):  # another setting, another entry: nothing stale is reused
        other = make_task(compose_config(["experiment=smoke", "task.vocab_size=200"]).task)
    assert len(other.tokenizer) != len(make_task(config).tokenizer) and len(list(tmp_path.iterdir())) == 6


def test_an_entry_that_cannot_be_read_is_made_again(tmp_path, caplog):
    from nas.tasks import make_task
    from nas.tasks.cache import setup_cache

    from .conftest import compose_config

    config = compose_config(["experiment=smoke"]).task
    with setup_cache(tmp_path):
        made = task_state(make_task(config))
        for entry in tmp_path.iterdir():  # torn by a full disk, or not ours
            entry.write_bytes(entry.read_bytes()[:40])
        again = task_state(make_task(config))
        assert task_state(make_task(config)) == again == made
    assert "cannot read" in caplog.text


BUILD_AND_DIGEST = """
import hashlib, json, sys
from tests.conftest import compose_config
from tests.test_candidate_overhead import task_state
from nas.tasks import make_task
from nas.tasks.cache import setup_cache
with setup_cache(sys.argv[1]):
    state = task_state(make_task(compose_config(["experiment=smoke"]).task))
print(hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest())
"""


def test_two_searches_fill_one_cache_at_once(tmp_path):
    """Two processes making the same entries into one cache at the same time: each gets the task it would have made
    alone, and the cache holds whole entries only (each written to a temporary file of its own, then renamed)."""
    import subprocess
    import sys
    from pathlib import Path

    from nas.tasks import make_task

    from .conftest import compose_config

    root = Path(__file__).resolve().parent.parent
    jobs = [subprocess.Popen([sys.executable, "-c", BUILD_AND_DIGEST, str(tmp_path / "cache")], cwd=root, stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]
    digests = [job.communicate(timeout=300)[0].strip() for job in jobs]
    assert all(job.returncode == 0 for job in jobs)
    import hashlib
    import json

    alone = hashlib.sha256(json.dumps(task_state(make_task(compose_config(["experiment=smoke"]).task)), sort_keys=True).encode()).hexdigest()
    assert digests == [alone, alone]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()) == ["tensors", "tensors", "tokenizer"]  # no .tmp left


@pytest.mark.slow
def test_the_concurrent_candidates_bench_runs_on_cpu(tmp_path):
    """bench/concurrent_candidates.py, the GPU check of several candidates at once, checked on CPU with the smoke settings:
    every setting records the same candidates and metrics."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from concurrent_candidates import main

    results = main(["--device", "cpu", "--workers", "1,2", "--budget", "4", "--tiny", "--out", str(tmp_path)])
    assert [r["workers"] for r in results["rows"]] == [1, 2] and all(r["candidates"] == 4 and not r["failed"] for r in results["rows"])
    assert results["identical"] and (tmp_path / "report.md").is_file()
