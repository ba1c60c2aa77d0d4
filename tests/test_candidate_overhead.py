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

from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

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
    tracker.finish_candidate(run, evaluation, '{"model_type": "bert"}')
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
