"""A sweep (``nas -m ...``) checks every job's config before its first job trains (nas/sweep.py).

Each case is a real multirun of the nas command (its Hydra app, Hydra's basic sweeper and launcher, in this
process) with a bad value in a job after the first: it must end with exit 2 and one line naming the job,
its swept values and the key, with nothing trained (no candidates.jsonl in the sweep) and nothing logged
(no MLflow run). A good sweep still runs all its jobs: tests/test_e2e.py::test_multirun_2x2_writes_four_parent_runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nas.errors import CallbackError

from .conftest import TINY, run_nas

TINY_SWEEP = [o for o in TINY if not o.startswith("budget")] + ["budget=2"]

CASES = {  # case -> (the sweep's overrides, the error line after "nas: error: ", a regular expression)
    "a value out of range in job 1": (["ppo.gamma=0.9,1.5,0.5"],
                                      r"sweep job 1 \(ppo\.gamma=1\.5\) of 3 is refused, nothing ran: ppo\.gamma must be in \[0, 1\], got 1\.5"),
    "two swept keys, two bad jobs": (["ppo.gamma=0.9,1.5", "seed=0,1"],
                                     (r"sweep jobs 2, 3 of 4 are refused, nothing ran; the first, job 2 \(ppo\.gamma=1\.5 seed=0\): "
                                      r"ppo\.gamma must be in \[0, 1\], got 1\.5")),
    "a value of the wrong type in the last job": (["seed=0,1,x"], r"sweep job 2 \(seed=x\) of 3 is refused, nothing ran: .*seed=x"),
    "a trainer setting": (["trainer.max_steps=4,0"], (r"sweep job 1 \(trainer\.max_steps=0\) of 2 is refused, nothing ran: "
                                                      r"trainer\.max_steps must be >= 1, got 0")),
    "a budget": (["budget=2,0"], r"sweep job 1 \(budget=0\) of 2 is refused, nothing ran: budget must be >= 1"),
}


def nothing_ran(sweep: Path, uri: str) -> None:
    assert not list(sweep.rglob("candidates.jsonl")) and not list(sweep.rglob("search.json"))
    db = Path(uri.removeprefix("sqlite:///"))
    if db.exists():  # no store at all is fine: nothing opened it
        client = MlflowClient(uri)
        assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []


@pytest.mark.parametrize("case", CASES)
def test_a_bad_job_stops_the_sweep_before_any_job_trains(case, tmp_path, sqlite_uri, monkeypatch, capsys):
    overrides, message = CASES[case]
    sweep = tmp_path / "sweep"
    code = run_nas(monkeypatch, "-m", *TINY_SWEEP, *overrides, f"tracking.uri={sqlite_uri}", f"hydra.sweep.dir={sweep}")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert re.fullmatch(f"nas: error: {message}.*", lines[0]), lines[0]
    assert "Traceback" not in err and lines[-1] == "nas: (set HYDRA_FULL_ERROR=1 for the traceback)"
    nothing_ran(sweep, sqlite_uri)


def test_with_tracebacks_on_a_bad_sweep_still_stops_and_shows_the_jobs_own_error(tmp_path, sqlite_uri, monkeypatch):
    # Hydra turns an Exception from a callback into a warning and goes on: the check's must not be one.
    monkeypatch.setenv("NAS_TRACEBACK", "1")
    sweep = tmp_path / "sweep"
    with pytest.raises(CallbackError, match=r"sweep job 1 \(ppo\.gamma=1\.5\) of 2") as raised:
        run_nas(monkeypatch, "-m", *TINY_SWEEP, "ppo.gamma=0.9,1.5", f"tracking.uri={sqlite_uri}", f"hydra.sweep.dir={sweep}")
    assert isinstance(raised.value.__cause__, ValueError) and str(raised.value.__cause__) == "ppo.gamma must be in [0, 1], got 1.5"
    nothing_ran(sweep, sqlite_uri)


def test_the_sweepers_own_params_are_checked_too(tmp_path, sqlite_uri, monkeypatch, capsys):
    """A sweep written in a config (hydra.sweeper.params), as users keep theirs, rather than on the command line."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "my_sweep.yaml").write_text(
        "defaults:\n  - config\n  - _self_\nhydra:\n  sweeper:\n    params:\n      ppo.gamma: 0.9,1.5\n")
    sweep = tmp_path / "sweep"
    code = run_nas(monkeypatch, "-m", "--config-dir", str(tmp_path / "conf"), "--config-name", "my_sweep", *TINY_SWEEP,
                   f"tracking.uri={sqlite_uri}", f"hydra.sweep.dir={sweep}")
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines()[0] == ("nas: error: sweep job 1 (ppo.gamma=1.5) of 2 is refused, nothing ran: "
                                           "ppo.gamma must be in [0, 1], got 1.5")
    nothing_ran(sweep, sqlite_uri)
