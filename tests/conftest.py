from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# pytest-xdist workers share the cores: torch's default of one thread per core in each worker oversubscribes them,
# and the suite's small-tensor work (PPO, tiny models) then runs 2-4x slower (seen on an AVX2 AMD EPYC). Each worker,
# and every search it starts in a subprocess, gets its share of the cores, unless OMP_NUM_THREADS is set already.
# Set before anything imports torch, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from nas.config import CONF_DIR, Config, register_configs, to_typed

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Tests talk to 127.0.0.1 only: no MLflow usage telemetry (on by default in MLflow 3), here or in subprocesses.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
register_configs()

# A search that trains real models for a handful of steps: seconds, not minutes (conf/experiment/smoke.yaml, for any task).
TINY = ["experiment=smoke"]


def run_nas(monkeypatch, *args: str) -> int:
    """The `nas` command with ``args``, in this process (a subprocess pays ~10 s of imports); its exit status."""
    import logging
    import sys

    import nas.cli

    monkeypatch.setattr(sys, "argv", ["nas", *args])
    GlobalHydra.instance().clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        nas.cli.main()
        return 0
    except SystemExit as exit_:
        return exit_.code
    finally:  # Hydra configured logging for its job: give the rest of the session its own back
        root.handlers[:], root.level = handlers, level


def compose_config(overrides: list[str] = ()) -> Config:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return to_typed(cfg)


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


_DEFAULT_TORCH_THREADS: list[int] = []


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """A search run in this process sets torch's thread count (trainer.num_threads), and PPO's sums depend on it: the
    next test (a resume replaying a search made in a subprocess, say) starts again from torch's default."""
    yield
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if not _DEFAULT_TORCH_THREADS:  # torch's default in a fresh process, as the tests' subprocesses get it
        fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True, text=True, check=True)
        _DEFAULT_TORCH_THREADS.append(int(fresh.stdout))
    torch.set_num_threads(_DEFAULT_TORCH_THREADS[0])


def kill_when(proc: "subprocess.Popen", ready, timeout: float = 300, poll: float = 0.01) -> None:
    """``kill -9`` the search ``proc`` as soon as ``ready()`` holds; fails when it ended before that."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(poll)
    assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
