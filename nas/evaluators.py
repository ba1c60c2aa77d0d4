"""Where candidates train: one after another in this process, in a local process pool, or as Ray tasks.

An evaluator takes a batch of architectures and yields their outcomes in the batch's order, each
as soon as it and every earlier one are done, so the search records results while later ones still
train. Which worker trains a candidate, and when, never changes its outcome: a candidate's metric
depends on the seed, its architecture and the trainer's thread count, and per-batch state (the
peers of multi-fidelity hurdles) is fixed when the batch starts and shipped with every candidate.

Objectives with such state implement ``batch_state()`` (picklable) and ``set_batch_state(state)``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol

from nas.errors import MissingExtra
from nas.settings import RAY_MISSING, ParallelConfig  # noqa: F401 (ParallelConfig re-exported)
from nas.space import Architecture


@dataclass
class Outcome:
    """What an objective returns when it has more to say than a number."""

    value: float | None
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # metrics, parameter count, timings...


class Evaluator(Protocol):
    def map(self, objective: Callable, architectures: Sequence[Architecture], started: Callable[[int], None] | None = None,
            state: Any = None) -> Iterator[tuple[Any, float]]:
        """(outcome, seconds) of each architecture, in order; ``started(i)`` when the i-th is handed to a
        worker; ``state``: the objective's batch state, set in the worker before each candidate."""

    def close(self, abort: bool = False) -> None:
        """Release the workers; ``abort``: stop candidates still training (the search was interrupted)."""


OUT_OF_MEMORY = "OutOfMemoryError"


def describe_failure(exc: BaseException) -> str:
    """'<error class>: <message>' for a failed candidate. Running out of memory reads the same whatever raised
    it: Python's MemoryError, torch's CPU allocator (a RuntimeError) or CUDA's torch.OutOfMemoryError."""
    message = str(exc).strip()
    if isinstance(exc, MemoryError) or any(s in message for s in ("can't allocate memory", "not enough memory")) or type(exc).__name__ == OUT_OF_MEMORY:
        return f"{OUT_OF_MEMORY}: {message or 'out of memory'}"
    return f"{type(exc).__name__}: {message}"


def error_type_of(error: str) -> str:
    """The error class of a failed candidate's error string ('FloatingPointError: loss became nan' -> 'FloatingPointError')."""
    head = error.split(":", 1)[0]
    return head if head.isidentifier() else "Error"


def evaluate_safely(objective: Callable, architecture: Architecture):
    """The objective's Outcome; an exception or a non-finite value becomes a failed Outcome."""
    try:
        out = objective(architecture)
    except Exception as exc:  # a failing candidate must not end the search
        return Outcome(None, "failed", describe_failure(exc), {"traceback": traceback.format_exc(limit=5)})
    out = out if isinstance(out, Outcome) else Outcome(float(out))
    if out.status == "ok" and (out.value is None or not math.isfinite(out.value)):
        return Outcome(None, "failed", f"NonFiniteValue: objective returned {out.value}", out.info)
    return out


def _timed(objective: Callable, architecture: Architecture, state: Any = None) -> tuple[Any, float]:
    if state is not None:
        objective.set_batch_state(state)
    start = time.perf_counter()
    outcome = evaluate_safely(objective, architecture)
    return outcome, time.perf_counter() - start


def batch_state(objective: Callable) -> Any:
    return objective.batch_state() if hasattr(objective, "batch_state") else None


class InlineEvaluator:
    """One candidate after another, in this process (``parallel.workers=1``)."""

    def map(self, objective, architectures, started=None, state=None):
        for i, architecture in enumerate(architectures):
            if started:
                started(i)
            yield _timed(objective, architecture, state)

    def close(self, abort: bool = False) -> None:
        pass


def worker_threads(workers: int, threads: int | None) -> int:
    """Torch threads per worker: as configured, else the cores shared out so workers do not fight."""
    return threads or max(1, (os.cpu_count() or 1) // workers)


def worker_context() -> multiprocessing.context.BaseContext:
    """How pool workers start. Never a fork of the search process: its Python threads (MLflow's, torch's) can
    leave locks held in the child. Where it exists, forkserver: workers fork from a server process that only
    imported torch and the candidate code (no Python threads; the BLAS and allocator threads of those imports
    handle fork, as for torch's DataLoader workers), so a pool starts in well under a second instead of each
    worker importing torch (seconds); the server lives as long as the search process, and later pools reuse it.
    Elsewhere (Windows) spawn: a fresh interpreter per worker."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # __main__ as spawn has it: an objective defined in the user's script unpickles in the worker.
    context.set_forkserver_preload(["__main__", "nas.candidate"])
    return context


# The objective of this worker process, set once by the pool's initializer.
_WORKER_OBJECTIVE: Callable | None = None


def _init_worker(objective: Callable, threads: int, memory_limit_mb: int | None = None, device: str = "cpu") -> None:
    global _WORKER_OBJECTIVE
    import torch

    from nas.train import resolve_device

    # Ctrl-C in a terminal reaches the whole process group: the search decides what happens to its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _WORKER_OBJECTIVE = objective
    if memory_limit_mb is not None:
        trains_on = resolve_device(device)
        if trains_on.type == "cuda":
            _limit_gpu_memory(memory_limit_mb, trains_on)
        else:
            _limit_memory(memory_limit_mb)


def _limit_memory(megabytes: int) -> None:
    """Cap this process's address space at what it maps now plus ``megabytes``: an allocation beyond fails
    (torch raises "can't allocate memory") instead of the kernel's OOM killer ending the process."""
    import resource

    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    limit = mapped + megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _limit_gpu_memory(megabytes: int, device) -> None:
    """Cap what this process's CUDA allocator may hold on ``device`` at ``megabytes`` (CUDA cannot run under an
    address-space limit): workers sharing one GPU cannot starve each other, and a candidate over its share raises
    torch.OutOfMemoryError, recorded as its failure."""
    import torch

    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, megabytes * 2**20 / total), device)


def _evaluate_in_worker(architecture: Architecture, state: Any) -> tuple[Any, float]:
    return _timed(_WORKER_OBJECTIVE, architecture, state)


class ProcessPoolEvaluator:
    """A local pool of ``workers`` processes, each holding its own copy of the objective (sent once)."""

    def __init__(self, objective: Callable, workers: int, threads: int, memory_limit_mb: int | None = None, device: str = "cpu"):
        self.objective = objective
        self.workers = workers
        self.threads = threads
        self.memory_limit_mb = memory_limit_mb
        self.device = device  # trainer.device: a memory limit caps GPU memory when the candidates train on CUDA
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=worker_context(),
                                             initializer=_init_worker, initargs=(self.objective, self.threads, self.memory_limit_mb, self.device))
        return self._pool

    def map(self, objective, architectures, started=None, state=None):
        pool = self._start()
        futures = []
        for i, architecture in enumerate(architectures):
            futures.append(pool.submit(_evaluate_in_worker, architecture, state))
            if started:
                started(i)
        for future in futures:
            try:
                yield future.result()
            except BrokenProcessPool as exc:
                # A worker died (killed, out of memory): the candidates it held fail, the pool restarts.
                self._pool = None
                yield Outcome(None, "failed", f"WorkerDied: a worker process ended abruptly ({exc})"), 0.0

    def close(self, abort: bool = False) -> None:
        if self._pool is None:
            return
        if abort:  # interrupted: do not wait for the candidates still training (they were not recorded)
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not abort, cancel_futures=True)
        self._pool = None


def _evaluate_in_ray(objective: Callable, architecture: Architecture, state: Any, threads: int) -> tuple[Any, float]:
    import torch

    torch.set_num_threads(threads)
    return _timed(objective, architecture, state)


class RayEvaluator:
    """Ray tasks: on this machine (Ray started here, on 127.0.0.1 only) or on a running cluster (``address``)."""

    def __init__(self, objective: Callable, workers: int, threads: int, address: str | None = None):
        if not address:
            # Ray on Linux listens on every interface; its single-machine mode (read when ray is imported)
            # keeps every port on 127.0.0.1.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError as exc:
            raise MissingExtra(RAY_MISSING) from exc
        self.ray = ray
        self.threads = threads
        self._started_here = not ray.is_initialized()
        if self._started_here:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers * threads, include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False, configure_logging=False)
        self._objective = ray.put(objective)  # shipped to the object store once, not with every candidate
        self._task = ray.remote(num_cpus=threads, max_retries=0)(_evaluate_in_ray)

    def map(self, objective, architectures, started=None, state=None):
        refs = []
        for i, architecture in enumerate(architectures):
            refs.append(self._task.remote(self._objective, architecture, state, self.threads))
            if started:
                started(i)
        for ref in refs:
            try:
                yield self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # the worker died; its candidate fails, the search goes on
                yield Outcome(None, "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"), 0.0

    def close(self, abort: bool = False) -> None:
        if self._started_here and self.ray.is_initialized():
            self.ray.shutdown()


def make_evaluator(config: ParallelConfig, objective: Callable, threads: int | None, device: str = "cpu") -> Evaluator:
    """The evaluator ``parallel`` asks for (``threads``: trainer.threads, None = cores shared out; ``device``:
    trainer.device, which decides what ``parallel.memory_limit_mb`` caps)."""
    config.validate()
    if config.backend == "ray":
        return RayEvaluator(objective, config.workers, worker_threads(config.workers, threads), config.ray_address)
    if config.workers == 1 and config.memory_limit_mb is None:
        return InlineEvaluator()
    return ProcessPoolEvaluator(objective, config.workers, worker_threads(config.workers, threads), config.memory_limit_mb, device)
