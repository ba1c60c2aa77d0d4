"""Train one candidate for a fixed number of steps and evaluate it. No logging, no MLflow here.

A plain PyTorch loop rather than transformers' Trainer: candidates are tiny and trained for tens
of steps, where Trainer's per-run set-up would cost more than the training itself.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from nas.errors import BadInput
from nas.settings import PretrainConfig, TrainerConfig, _positive  # noqa: F401 (re-exported: nas.train's settings)
from nas.tasks.base import Task

# The per-candidate bar (trainer.progress_bar) is for trainings long enough to watch: at least this many
# steps, and it appears only once the training has run this many seconds (tqdm's ``delay``).
PROGRESS_MIN_STEPS = 50
PROGRESS_DELAY_S = 3.0
PROGRESS_UPDATES = 100  # the bar is advanced at most about this many times per training, not at every step


@dataclass
class TrainResult:
    metrics: dict[str, float]
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    steps: int = 0  # optimizer steps taken (fewer than max_steps when a checkpoint stopped the training)
    checkpoints: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (step, validation metrics), the last = metrics
    data_seconds: float = 0.0  # of train_seconds: fetching training batches and moving them to the device
    best_step: int | None = None  # trainer.eval_every: the step whose weights the model holds now (metrics are that step's)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise BadInput(f"trainer.device={name!r} is not a device nas trains on; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"trainer.device={name!r} but CUDA is not available; use trainer.device=cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BadInput(f"trainer.device={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s): "
                       f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BadInput(f"trainer.device={name!r} but MPS is not available; use trainer.device=cpu or auto")
    return device


# A search keeps at most this many bytes of recorded training batches per stream (RecordedBatches); a longer stream
# is made afresh for each candidate past that point.
MAX_RECORDED_BYTES = 256 * 2**20


class RecordedBatches:
    """A batch stream made once and replayed: every candidate of a search trains on the same batches (the data order
    is the search seed's), so they are collated and moved to ``device`` once per search, not at every step of every
    candidate. ``make`` returns the stream afresh (the same batches each time); iterate for a stream from its start.

    Only for streams that depend on nothing but their own seed (no global random state); the tensors handed out are
    shared by every candidate, so a model must not change its inputs in place (no transformers model does)."""

    def __init__(self, make: Callable[[], Iterator[dict[str, torch.Tensor]]], device: str | torch.device,
                 max_bytes: int = MAX_RECORDED_BYTES):
        self._make, self._device, self._max_bytes = make, device, max_bytes
        self._batches: list[dict[str, torch.Tensor]] = []
        self._bytes = 0
        self._source: Iterator[dict[str, torch.Tensor]] | None = None  # has made exactly the batches recorded so far

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for index in itertools.count():
            if index < len(self._batches):
                yield self._batches[index]
            elif self._bytes >= self._max_bytes:  # full: the rest of the stream from a fresh one, as without a record
                yield from itertools.islice(self._make(), index, None)
                return
            else:
                if self._source is None:
                    self._source = self._make()
                device = resolve_device(self._device) if isinstance(self._device, str) else self._device
                batch = {k: v.to(device) for k, v in next(self._source).items()}
                self._batches.append(batch)
                self._bytes += sum(v.nbytes for v in batch.values())
                yield batch

    def __reduce__(self):  # a copy sent to a worker process records its own (on its device), starting empty
        return (RecordedBatches, (self._make, self._device, self._max_bytes))


def finite_losses(window: list[torch.Tensor], last_step: int) -> list[float]:
    """The losses of steps ``last_step - len(window) + 1`` to ``last_step``, fetched from the device in one sync;
    FloatingPointError at the first that is not finite (fit checks at its sync points, not at every step)."""
    values = torch.stack(window).tolist()
    for step, value in enumerate(values, last_step - len(values) + 1):
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at step {step}")
    return values


def fit(model: torch.nn.Module, batches: Iterator[dict[str, torch.Tensor]], steps: int, learning_rate: float,
        config: TrainerConfig, checkpoints: Sequence[int] = (),
        on_checkpoint: Callable[[int], bool] | None = None,
        timings: dict[str, float] | None = None, progress: bool | None = None,
        desc: str = "training") -> tuple[list[tuple[int, float]], float]:
    """``steps`` AdamW steps (linear warm-up and decay) on ``batches``; returns ((step, loss) every log_every, seconds).

    At each step in ``checkpoints`` (before ``steps``), ``on_checkpoint(step)`` runs and may end the
    training by returning False; the schedule is that of the full run, so a run that goes on is the
    same as one never interrupted. Its time is not counted in the seconds returned.
    ``timings``, when given, receives ``data_seconds``: the part of those seconds spent fetching batches.
    ``progress`` (default: ``config.progress_bar``) shows a tqdm bar ``desc`` over the steps, under
    the search's bar (position 1, cleared when done), for trainings of PROGRESS_MIN_STEPS steps or
    more, once they have run PROGRESS_DELAY_S seconds; it shows the last logged loss. Never in a
    child process (a parallel evaluator's worker).
    Raises FloatingPointError naming the first step whose loss is not finite (the candidate is then recorded as
    failed); the losses are checked where fit reads them anyway (every log_every steps, before a checkpoint, at the
    end), so a step waits for the device only there.
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=config.weight_decay)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(config.warmup_ratio * steps), num_training_steps=steps)
    losses: list[tuple[int, float]] = []
    # Not in a worker process (parallel.workers > 1): bars of concurrent candidates would overwrite each other.
    show = (config.progress_bar if progress is None else progress) and multiprocessing.parent_process() is None
    bar = tqdm(total=steps, desc=desc, unit="step", leave=False, position=1, delay=PROGRESS_DELAY_S, dynamic_ncols=True) \
        if show and steps >= PROGRESS_MIN_STEPS else None
    every = max(1, math.ceil(steps / PROGRESS_UPDATES))
    model.train()
    start, paused, data_seconds = time.perf_counter(), 0.0, 0.0
    checkpoints = set(checkpoints)
    window: list[torch.Tensor] = []  # the losses since the last check, still on the device
    try:
        for step in range(1, steps + 1):
            fetch = time.perf_counter()
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            data_seconds += time.perf_counter() - fetch
            loss = model(**batch).loss
            window.append(loss.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            if step % config.log_every == 0 or step == steps:
                losses.append((step, finite_losses(window, step)[-1]))
                window.clear()
                if bar is not None:
                    bar.set_postfix(loss=f"{losses[-1][1]:.4g}", refresh=False)
            if bar is not None and (step % every == 0 or step == steps):
                bar.update(step - bar.n)
            if step in checkpoints and step < steps and on_checkpoint is not None:
                if window:  # a diverged model is not evaluated
                    finite_losses(window, step)
                    window.clear()
                pause = time.perf_counter()
                go_on = on_checkpoint(step)
                model.train()
                paused += time.perf_counter() - pause
                if not go_on:
                    break
    finally:
        if bar is not None:
            bar.close()
    if timings is not None:
        timings["data_seconds"] = data_seconds
    return losses, time.perf_counter() - start - paused


def evaluate(model: torch.nn.Module, task: Task, batch_size: int, split: str = "validation") -> dict[str, float]:
    """The task's metrics on ``split`` (validation, or test for nas-final: the same metric code)."""
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, batch_size) if split == "validation" else task.evaluate(model, batch_size, split=split)
    if not all(math.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"{split} metrics are not finite: {metrics}")
    return metrics


def train_and_evaluate(model: torch.nn.Module, task: Task, config: TrainerConfig, data_seed: int,
                       checkpoints: Sequence[int] = (), keep_training: Callable[[int, dict[str, float]], bool] | None = None,
                       batches: Iterable[dict[str, torch.Tensor]] | None = None) -> TrainResult:
    """Train ``model`` on the task's training subset, then compute the task's validation metrics.

    ``batches``: the task's training stream for ``data_seed`` made beforehand (a RecordedBatches); default: made here.
    Multi-fidelity: the model is also evaluated at each step in ``checkpoints``, and training stops
    there when ``keep_training(step, metrics)`` says so; ``metrics`` are then that checkpoint's.
    ``config.eval_every``: the model is also evaluated every that many steps, and a model trained to the end
    keeps the weights of its best evaluation by the task's reward (the last step's unless an earlier one is
    strictly better; HF Trainer's load_best_model_at_end): ``metrics`` and ``best_step`` are then that step's.
    """
    model.to(resolve_device(config.device))
    batches = iter(batches) if batches is not None else task.train_batches(config.batch_size, torch.Generator().manual_seed(data_seed))
    result = TrainResult({})
    stopped = []
    fidelity = set(checkpoints)
    every = range(config.eval_every, config.max_steps, config.eval_every) if config.eval_every else ()
    best: dict[str, Any] = {}

    def on_checkpoint(step: int) -> bool:
        start = time.perf_counter()
        metrics = evaluate(model, task, config.eval_batch_size)
        result.eval_seconds += time.perf_counter() - start
        result.checkpoints.append((step, metrics))
        result.steps = step
        reward = task.reward(metrics) if every else None
        if every and (not best or reward > best["reward"]):  # a copy on the side: the training goes on
            best.update(step=step, reward=reward, metrics=metrics, state={k: v.detach().clone() for k, v in model.state_dict().items()})
        go_on = step not in fidelity or keep_training is None or keep_training(step, metrics)
        if not go_on:
            stopped.append(step)
        return go_on

    timings: dict[str, float] = {}
    result.losses, result.train_seconds = fit(model, batches, config.max_steps, config.learning_rate, config,
                                              sorted(fidelity.union(every)), on_checkpoint, timings)
    result.data_seconds = timings["data_seconds"]
    if not stopped:  # trained to the end: the full-fidelity metrics
        start = time.perf_counter()
        result.checkpoints.append((config.max_steps, evaluate(model, task, config.eval_batch_size)))
        result.eval_seconds += time.perf_counter() - start
        result.steps = config.max_steps
    result.metrics = result.checkpoints[-1][1]
    if every and not stopped:
        result.best_step = result.steps
        if best and best["reward"] > task.reward(result.metrics):
            model.load_state_dict(best["state"])
            result.metrics, result.best_step = best["metrics"], best["step"]
    return result
