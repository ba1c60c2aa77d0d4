"""A search tracked by a real MLflow tracking server (sqlite backend, proxied artifact store) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import TINY, run_nas
from .test_e2e import read_jsonl

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 120  # ~6 s on an idle 2-core machine with one worker; generous for a loaded one


@dataclass
class Server:
    url: str
    port: int
    pid: int
    artifacts: Path
    log: Path
    proc: subprocess.Popen | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_pids(pgid: int) -> set[int]:
    """The processes of one process group (the server and its uvicorn worker), from /proc."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            pids.add(int(stat.parent.name))
    return pids


def listening_addresses(pids: set[int]) -> set[str]:
    """local address:port of every TCP socket these processes listen on (ss -ltnp)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids}


def get(url: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch):
    # MLflow 3 sends usage telemetry by default; a test's traffic stays on this machine.
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


def start_mlflow_server(root: Path, port: int | None = None) -> Server:
    """A real `mlflow server` on 127.0.0.1 (sqlite store and artifacts under ``root``), healthy when returned.
    ``port``: that port (to restart a stopped server on the same store); default: a free one."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    artifacts, log = root / "artifacts", root / "server.log"
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(artifacts)]
    # No telemetry; no job execution: MLflow 3.17 otherwise starts a job runner and seven Huey consumers (eight more
    # Python processes, a minute to start on a busy 2-core machine) for GenAI jobs a tracking test never runs.
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with log.open("a") as sink:
        # Its own session, so its process group is exactly the server and its workers: stopping it stops that group only.
        proc = subprocess.Popen(command, cwd=root, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    server = Server(f"http://127.0.0.1:{port}", port, proc.pid, artifacts, log, proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if get(f"http://127.0.0.1:{port}/health") == (200, "OK"):
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            stop_mlflow_server(server)
            pytest.fail(f"mlflow server not healthy after {START_TIMEOUT_S} s:\n{log.read_text()}")
        time.sleep(0.25)


def stop_mlflow_server(server: Server) -> None:
    """Stop the server's process group (by the PID we started) and wait until none of it is left; idempotent."""
    proc = server.proc
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10  # the uvicorn worker goes with its parent
    while group_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_pids(proc.pid), "mlflow server processes left running"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = start_mlflow_server(tmp_path_factory.mktemp("server"))
    try:
        yield server
    finally:
        stop_mlflow_server(server)


def test_the_server_listens_on_loopback_only(mlflow_server):
    addresses = listening_addresses(group_pids(mlflow_server.pid))
    assert addresses == {f"127.0.0.1:{mlflow_server.port}"}, addresses
    # Its host check (against DNS rebinding) answers API requests only when addressed to this machine by a local name.
    api = f"{mlflow_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert get(api)[0] == 200 and get(api, host="nas.example.com")[0] == 403


def test_a_search_tracked_by_the_server(tmp_path, mlflow_server, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # to show below that the client wrote no store of its own
    assert run_nas(monkeypatch, *TINY, "tracking=server", f"tracking.uri={mlflow_server.url}", f"hydra.run.dir={run_dir}") == 0

    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.get_experiment_by_name("nas")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server's proxied store, not a client path
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.params["tracking.uri"] == mlflow_server.url and "best_reward" in parent.data.metrics

    records = read_jsonl(run_dir / "candidates.jsonl")
    children = {r.info.run_id: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert len(records) == 5 and set(children) == {r["mlflow_run_id"] for r in records} and len(runs) == 6
    for record in records:
        child = children[record["mlflow_run_id"]]
        assert child.info.status == ("FINISHED" if record["status"] == "ok" else "FAILED")
        assert {k: str(v) for k, v in record["architecture"].items()} == child.data.params
        if record["status"] == "ok":
            assert child.data.metrics["val_accuracy"] == pytest.approx(record["metrics"]["accuracy"])
            assert {"reward", "num_parameters", "train_seconds"} <= set(child.data.metrics)

    # Artifacts go up through the server and come back down through it.
    assert {".hydra", "best", "candidates.jsonl"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    hydra_files = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, ".hydra")}
    assert {"config.yaml", "hydra.yaml", "overrides.yaml"} <= hydra_files
    down = tmp_path / "down"
    for path in ("candidates.jsonl", "best/config.json", ".hydra/overrides.yaml"):
        fetched = Path(client.download_artifacts(parent.info.run_id, path, str(down / "parent")))
        assert fetched.read_bytes() == (run_dir / path).read_bytes(), path
    ok_child = next(children[r["mlflow_run_id"]] for r in records if r["status"] == "ok")
    child_config = json.loads(Path(client.download_artifacts(ok_child.info.run_id, "config.json", str(down / "child"))).read_text())
    assert child_config["model_type"] == "bert" and child_config["hidden_size"] == int(ok_child.data.params["hidden_size"])

    # ... and they lie in the server's artifact destination; the client wrote no store of its own.
    stored = {p.relative_to(mlflow_server.artifacts).as_posix() for p in mlflow_server.artifacts.rglob("*") if p.is_file()}
    assert f"{experiment.experiment_id}/{parent.info.run_id}/artifacts/best/config.json" in stored
    assert f"{experiment.experiment_id}/{ok_child.info.run_id}/artifacts/config.json" in stored
    assert not any(p.name in ("mlflow.db", "mlartifacts", "mlruns") for p in tmp_path.rglob("*"))
