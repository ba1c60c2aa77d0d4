"""CandidateRecord: one line of candidates.jsonl, written, replayed and logged from one definition."""

import json

import pytest

from nas.folders import RunDirectory
from nas.records import CandidateRecord, load_records
from nas.search import Evaluation

ARCH = {"num_hidden_layers": 2, "hidden_size": 64}


def evaluation(**overrides) -> Evaluation:
    fields = dict(index=3, architecture=ARCH, key="abc123", value=0.71, status="ok", iteration=1, episode=2, step=1, seconds=1.5,
                  info={"metrics": {"accuracy": 0.72, "macro_f1": 0.7}, "num_parameters": 90_000, "train_seconds": 1.2,
                        "eval_seconds": 0.1, "steps": 100, "checkpoints": [], "metric_reward": 0.72,
                        "losses": [(10, 0.69), (20, 0.65)], "traceback": "not kept"})
    fields.update(overrides)
    return Evaluation(**fields)


def test_a_record_round_trips_through_its_json_line_in_the_files_order():
    record = CandidateRecord.from_evaluation(evaluation(), "run-1")
    line = record.to_json()
    assert list(json.loads(line)) == [
        "index", "architecture", "architecture_hash", "status", "reward", "metrics", "num_parameters", "train_seconds", "eval_seconds",
        "pretrain_seconds", "latency_ms", "metric_reward", "steps", "checkpoints", "seconds", "iteration", "episode", "step", "error",
        "error_type", "mlflow_run_id"]
    assert "losses" not in line and "traceback" not in line  # curves go to MLflow, not into a line
    assert CandidateRecord.from_json(line) == record


def test_a_replayed_record_gives_back_the_evaluation_the_strategy_was_told():
    e = evaluation()
    back = CandidateRecord.from_json(CandidateRecord.from_evaluation(e, "run-1").to_json()).to_evaluation()
    assert (back.index, back.architecture, back.key, back.value, back.status, back.iteration, back.episode, back.step, back.seconds) == \
        (e.index, e.architecture, e.key, e.value, e.status, e.iteration, e.episode, e.step, e.seconds)
    assert back.info == {k: v for k, v in e.info.items() if k not in ("losses", "traceback")}


def test_a_failed_candidate_keeps_its_error_and_its_class():
    record = CandidateRecord.from_evaluation(evaluation(value=None, status="failed", error="FloatingPointError: loss became nan",
                                                        info={"num_parameters": 90_000}))
    assert not record.ok and record.reward is None and record.metrics == {}
    assert record.error_type == "FloatingPointError"
    assert CandidateRecord.from_json(record.to_json()).to_evaluation().error == "FloatingPointError: loss became nan"


def test_mlflow_gets_the_records_numbers_and_metric_reward_only_when_a_cost_changed_the_reward():
    record = CandidateRecord.from_evaluation(evaluation(), "run-1")
    assert record.mlflow_metrics() == {"reward": 0.71, "num_parameters": 90_000.0, "train_seconds": 1.2, "eval_seconds": 0.1,
                                       "metric_reward": 0.72, "steps": 100.0, "seconds": 1.5}
    record.metric_reward = record.reward
    assert "metric_reward" not in record.mlflow_metrics()


def test_a_record_written_before_a_field_existed_still_loads(tmp_path):
    """Older candidates.jsonl lines lack later fields (error_type, pretrain_seconds, ...); unknown keys are ignored."""
    old = {"index": 0, "architecture": ARCH, "architecture_hash": "abc", "status": "ok", "reward": 0.6, "metrics": {"accuracy": 0.6},
           "iteration": 0, "episode": 0, "step": 0, "a_key_from_the_future": 1}
    path = tmp_path / "candidates.jsonl"
    path.write_text(json.dumps(old) + "\n")
    [record] = load_records(path)
    assert record.reward == 0.6 and record.error_type is None and record.checkpoints == [] and record.seconds == 0.0


def test_a_line_that_is_not_a_record_is_named_with_its_line_number(tmp_path):
    path = tmp_path / "candidates.jsonl"
    path.write_text(json.dumps({"index": 0, "architecture": ARCH}) + "\n")
    with pytest.raises(ValueError, match="line 1 is not a candidate record.*architecture_hash"):
        load_records(path)


def test_the_run_directory_appends_records_and_reads_them_back(tmp_path):
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.check_writable()
    run_dir.start({"parent_run_id": "p", "tracking_uri": "sqlite:///x.db"})
    records = [CandidateRecord.from_evaluation(evaluation(index=i, key=f"k{i}"), f"run-{i}") for i in range(3)]
    for record in records:
        run_dir.append(record)
    assert run_dir.read_records() == records
    assert run_dir.read_state()["parent_run_id"] == "p"
    assert not run_dir.checkpoint.exists()
