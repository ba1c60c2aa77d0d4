"""A run folder belongs to one search, and a resume to its own run: nothing computed is lost or mixed.

Real processes race for one folder and for one resume; real MLflow stores are pointed at the wrong run,
deleted, or have their experiment deleted; real signals arrive while a search closes; a real (tmpfs)
disk fills up mid-search.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from nas.folders import LOCK_FILE, FolderBusy, claim_new_search, lock_folder, release_folder, write_atomically
from nas.folders import RunDirectory

from .conftest import TINY, run_nas
from .test_faults import assert_complete_after_resume, default_sigint, runs_by_id, when_recorded  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

SEARCH = [o for o in TINY if not o.startswith(("budget=", "ppo.iterations="))] + ["budget=8", "ppo.iterations=6"]
SAME = ("architecture_hash", "status", "reward", "iteration", "episode", "step", "metrics")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file a search wrote in ``folder``, by relative path (the lock file aside)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


def parent_of(folder: Path) -> str:
    return json.loads((folder / "search.json").read_text())["parent_run_id"]


def nas_process(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after(folder: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and len(RunDirectory(folder).read_records()) < count:
        time.sleep(0.05)
    assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


# -- the lock itself ---------------------------------------------------------------------------------------------

def test_a_locked_folder_is_refused_at_once_by_another_process_and_free_after_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nas.folders import lock_folder; "
                               f"lock_folder(sys.argv[1]); print('locked', flush=True); time.sleep(60)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(FolderBusy, match=rf"in use: process {holder.pid} "):
            lock_folder(tmp_path)
        assert time.monotonic() - started < 1  # at once, never waiting
    finally:
        holder.kill()  # as kill -9: the kernel drops the lock with the process
        holder.wait()
    lock_folder(tmp_path)
    release_folder(tmp_path)


def test_a_new_search_refuses_a_folder_with_records_and_writes_nothing_there(tmp_path):
    (tmp_path / "candidates.jsonl").write_text("")
    with pytest.raises(ValueError, match=rf"already holds a search \(candidates.jsonl\): `nas resume={tmp_path}` continues it"):
        claim_new_search(tmp_path)
    lock_folder(tmp_path)  # the refusal let go of the lock
    release_folder(tmp_path)


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("old")
    (tmp_path / "checkpoint.pt.tmp").mkdir()  # the temporary cannot be written
    with pytest.raises(OSError) as raised:
        write_atomically(target, b"new")
    assert raised.value.filename and target.read_text() == "old"


# -- a new search in a used folder --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished search (and its store), copied fresh for each test that may damage it."""
    base = tmp_path_factory.mktemp("finished")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    proc = subprocess.run([sys.executable, "-m", "nas", *SEARCH, f"tracking.uri={uri}", f"hydra.run.dir={base / 'run'}"],
                          cwd=base, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base


@pytest.fixture
def search(finished, tmp_path):
    """(run folder, store URI) of a private copy of the finished search; search.json points at the copied store."""
    shutil.copytree(finished, tmp_path / "copy")
    run_dir, db = tmp_path / "copy" / "run", tmp_path / "copy" / "mlflow.db"
    state = json.loads((run_dir / "search.json").read_text())
    state["tracking_uri"] = f"sqlite:///{db}"
    (run_dir / "search.json").write_text(json.dumps(state))
    return run_dir, f"sqlite:///{db}"


def store_state(uri: str) -> list[tuple]:
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    return sorted((r.info.run_id, r.info.status, len(r.data.metrics), r.data.tags.get("mlflow.parentRunId")) for r in runs)


def test_a_new_search_in_a_folder_that_holds_one_is_refused_and_the_old_search_stays_whole(search, tmp_path, monkeypatch, capsys):
    run_dir, uri = search
    before, runs_before = snapshot(run_dir), store_state(uri)
    # Another config (seed=1): had Hydra written .hydra/config.yaml, the old search's resume would replay the wrong one.
    assert run_nas(monkeypatch, *SEARCH, "seed=1", f"tracking.uri={uri}", f"hydra.run.dir={run_dir}") == 2
    err = capsys.readouterr().err
    assert f"'{run_dir}' already holds a search" in err and f"nas resume={run_dir}" in err and "Traceback" not in err
    assert snapshot(run_dir) == before  # candidates, search.json, checkpoint, .hydra/, the log: byte for byte
    assert store_state(uri) == runs_before  # no run started, none changed
    assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0  # still its own search


def test_two_searches_started_at_once_in_one_folder_one_runs_the_other_is_refused(tmp_path):
    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # the store's tables exist: the race is for the folder, not the database
    procs = {seed: nas_process(*SEARCH, f"seed={seed}", f"tracking.uri={uri}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
             for seed in (0, 1)}
    outcomes = {seed: (p.wait(timeout=600), p.stderr.read()) for seed, p in procs.items()}
    assert sorted(rc for rc, _ in outcomes.values()) == [0, 2], outcomes
    winner = next(seed for seed, (rc, _) in outcomes.items() if rc == 0)
    loser_err = outcomes[1 - winner][1]
    assert f"'{run_dir}'" in loser_err and ("is in use" in loser_err or "already holds a search" in loser_err), loser_err
    records = RunDirectory(run_dir).read_records()
    assert [r.index for r in records] == list(range(8))  # one search's records, none lost, none interleaved
    assert f"seed: {winner}\n" in (run_dir / ".hydra" / "config.yaml").read_text()  # the winner's config, not overwritten
    state = json.loads((run_dir / "search.json").read_text())
    assert f"-seed{winner}-" in state["run_name"]  # ppo-<task>-seed<N>-<date-time>
    assert_complete_after_resume(run_dir, uri, state["parent_run_id"])
    assert len([r for r in runs_by_id(uri).values() if "mlflow.parentRunId" not in r.data.tags]) == 1  # the loser logged nothing


def test_two_resumes_of_one_folder_at_once_one_resumes_the_other_is_refused(tmp_path):
    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    kill_after(run_dir, 3, nas_process(*SEARCH, f"tracking.uri={uri}", f"hydra.run.dir={run_dir}", cwd=tmp_path))
    recorded = RunDirectory(run_dir).read_records()
    assert 3 <= len(recorded) < 8

    procs = [nas_process(f"resume={run_dir}", f"hydra.run.dir={tmp_path / f'resume{i}'}", cwd=tmp_path) for i in range(2)]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in outcomes) == [0, 2], outcomes
    loser_err = next(err for rc, err in outcomes if rc == 2)
    assert f"'{run_dir}' is in use" in loser_err and "Traceback" not in loser_err
    assert RunDirectory(run_dir).read_records()[: len(recorded)] == recorded
    assert_complete_after_resume(run_dir, uri, parent_of(run_dir))  # nothing trained twice: 8 records, 8 child runs


def test_a_sweep_into_a_folder_that_holds_a_sweep_is_refused_before_anything_is_written(tmp_path, sqlite_uri, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    args = ["-m", *SEARCH, "budget=2", "seed=0,1", f"tracking.uri={sqlite_uri}", f"hydra.sweep.dir={sweep}"]
    assert run_nas(monkeypatch, *args) == 0
    before, runs_before = snapshot(sweep), store_state(sqlite_uri)
    assert run_nas(monkeypatch, *args[:-2], "seed=5,6", *args[-2:]) == 2
    err = capsys.readouterr().err
    assert f"'{sweep}' already holds a sweep's searches" in err and f"nas resume={sweep}/0" in err
    assert snapshot(sweep) == before and store_state(sqlite_uri) == runs_before


# -- a resume is bound to its own run -----------------------------------------------------------------------------

def point_at(run_dir: Path, run_id: str) -> None:
    state = json.loads((run_dir / "search.json").read_text())
    state["parent_run_id"] = run_id
    (run_dir / "search.json").write_text(json.dumps(state))


def resume_refused(monkeypatch, capsys, run_dir: Path, tmp_path: Path, uri: str | None, message: str) -> None:
    runs_before = store_state(uri) if uri else None
    assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    if uri:
        assert store_state(uri) == runs_before  # refused before logging anything


def test_a_resume_pointed_at_a_candidates_run_is_refused(search, tmp_path, monkeypatch, capsys):
    run_dir, uri = search
    candidate = RunDirectory(run_dir).read_records()[2].mlflow_run_id
    point_at(run_dir, candidate)
    resume_refused(monkeypatch, capsys, run_dir, tmp_path, uri, f"names MLflow run {candidate}, a candidate's run")


def test_a_resume_pointed_at_another_searchs_run_is_refused(search, tmp_path, monkeypatch, capsys):
    run_dir, uri = search
    other = tmp_path / "other"
    same_name = json.loads((run_dir / "search.json").read_text())["run_name"]  # run names alone cannot tell the two apart
    assert run_nas(monkeypatch, *SEARCH, "budget=3", f"tracking.uri={uri}", f"tracking.run_name={same_name}", f"hydra.run.dir={other}") == 0
    point_at(run_dir, parent_of(other))
    resume_refused(monkeypatch, capsys, run_dir, tmp_path, uri, f"which is not a child of run {parent_of(other)}")


def test_a_resume_whose_store_was_deleted_is_refused_without_making_a_new_one(search, tmp_path, monkeypatch, capsys):
    run_dir, uri = search
    db = Path(uri[len("sqlite:///"):])
    db.unlink()
    resume_refused(monkeypatch, capsys, run_dir, tmp_path, None, f"the MLflow store '{db}' the search logged to no longer exists")
    assert not db.exists()


def test_a_resume_whose_run_or_experiment_was_deleted_is_refused(search, tmp_path, monkeypatch, capsys):
    run_dir, uri = search
    client = MlflowClient(uri)
    client.delete_run(parent_of(run_dir))
    resume_refused(monkeypatch, capsys, run_dir, tmp_path, uri, f"MLflow run {parent_of(run_dir)} of {run_dir} is deleted")
    client.restore_run(parent_of(run_dir))
    client.delete_experiment(client.get_experiment_by_name("nas").experiment_id)
    resume_refused(monkeypatch, capsys, run_dir, tmp_path, uri, "the experiment 'nas' is deleted")


# -- stops while closing, full disks ------------------------------------------------------------------------------

def test_a_second_ctrl_c_while_the_search_closes_still_marks_it_killed(tmp_path, sqlite_uri, monkeypatch, capsys, default_sigint):
    run_dir = tmp_path / "run"

    def twice():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the first one is being handled: the search is closing
        os.kill(os.getpid(), signal.SIGINT)

    when_recorded(run_dir, 3, twice)
    assert run_nas(monkeypatch, *SEARCH, f"tracking.uri={sqlite_uri}", f"hydra.run.dir={run_dir}") == 130
    out, err = capsys.readouterr()
    assert "interrupted by SIGINT" in err and "Traceback" not in err
    assert f"`nas resume={run_dir}` continues the search" in out + err
    assert runs_by_id(sqlite_uri)[parent_of(run_dir)].info.status == "KILLED"
    assert not [r for r in runs_by_id(sqlite_uri).values() if r.info.status == "RUNNING"]
    assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0
    assert_complete_after_resume(run_dir, sqlite_uri, parent_of(run_dir))


def test_a_sigterm_right_after_the_last_candidate_never_leaves_the_run_running(tmp_path, sqlite_uri, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    when_recorded(run_dir, 8, lambda: os.kill(os.getpid(), signal.SIGTERM))  # the last one: the search is updating or closing
    code = run_nas(monkeypatch, *SEARCH, f"tracking.uri={sqlite_uri}", f"hydra.run.dir={run_dir}")
    status = runs_by_id(sqlite_uri)[parent_of(run_dir)].info.status
    out, err = capsys.readouterr()
    assert (code, status) in {(143, "KILLED"), (143, "FINISHED")}, (code, status, err[-2000:])  # never RUNNING
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    if status == "KILLED":
        assert f"`nas resume={run_dir}` continues the search" in out + err
        assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0
    assert_complete_after_resume(run_dir, sqlite_uri, parent_of(run_dir))


@pytest.fixture
def small_disk(tmp_path):
    """A 400 KiB tmpfs: room for the records and one checkpoint (~170 KB), not for the next one beside it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_search_cleanly_and_a_resume_finishes_it(small_disk, tmp_path, sqlite_uri, monkeypatch, capsys):
    run_dir = small_disk / "run"
    assert run_nas(monkeypatch, *SEARCH, f"tracking.uri={sqlite_uri}", f"hydra.run.dir={run_dir}") == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"'{run_dir}/" in err and f"nas resume={run_dir}" in err and "Traceback" not in err
    assert not list(run_dir.rglob("*.tmp"))
    recorded = RunDirectory(run_dir).read_records()
    assert 1 <= len(recorded) < 8
    assert runs_by_id(sqlite_uri)[parent_of(run_dir)].info.status == "FAILED"
    assert not [r for r in runs_by_id(sqlite_uri).values() if r.info.status == "RUNNING"]

    subprocess.run(["mount", "-o", "remount,size=50m", str(small_disk)], check=True)  # room again
    assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0
    assert RunDirectory(run_dir).read_records()[: len(recorded)] == recorded
    assert_complete_after_resume(run_dir, sqlite_uri, parent_of(run_dir))
