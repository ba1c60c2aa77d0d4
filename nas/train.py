"""Train one candidate for a fixed number of steps and evaluate it. No logging, no MLflow here.

A plain PyTorch loop rather than transformers' Trainer: candidates are tiny and trained for tens
of steps, where Trainer's per-run set-up would cost more than the training itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

import torch
from transformers import get_scheduler

from nas.tasks.base import Task


@dataclass
class PretrainConfig:
    """Optional first stage: self-supervised pre-training on unlabelled text (masked LM or causal LM, per family)."""

    steps: int = 0  # optimizer steps of pre-training per candidate; 0 = fine-tune from scratch
    corpus_file: Optional[str] = None  # unlabelled text (CSV / JSON lines / Parquet / .txt); the tokenizer learns from it too
    text_column: str = "text"
    corpus_size: int = 20000  # the first N rows of the corpus
    batch_size: int = 32
    learning_rate: float = 1e-3
    mlm_probability: float = 0.15  # share of tokens masked (masked-LM families)


@dataclass
class TrainerConfig:
    max_steps: int = 60  # optimizer steps per candidate
    batch_size: int = 32
    learning_rate: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # share of steps with linear warm-up; then linear decay to 0
    max_grad_norm: float = 1.0
    eval_batch_size: int = 256
    log_every: int = 10  # record the training loss every N steps
    num_threads: Optional[int] = None  # torch threads; None keeps torch's default (all cores)
    device: str = "auto"  # auto (cuda when available, else cpu), cpu, cuda, cuda:1...
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


@dataclass
class TrainResult:
    metrics: dict[str, float]
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name!r} but CUDA is not available; use trainer.device=cpu or auto")
    return device


def fit(model: torch.nn.Module, batches: Iterator[dict[str, torch.Tensor]], steps: int, learning_rate: float,
        config: TrainerConfig) -> tuple[list[tuple[int, float]], float]:
    """``steps`` AdamW steps (linear warm-up and decay) on ``batches``; returns ((step, loss) every log_every, seconds).

    Raises FloatingPointError when the loss stops being finite (the candidate is then recorded as failed).
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=config.weight_decay)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(config.warmup_ratio * steps), num_training_steps=steps)
    losses: list[tuple[int, float]] = []
    model.train()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        loss = model(**{k: v.to(device, non_blocking=True) for k, v in next(batches).items()}).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        if step % config.log_every == 0 or step == steps:
            losses.append((step, loss.item()))
    return losses, time.perf_counter() - start


def train_and_evaluate(model: torch.nn.Module, task: Task, config: TrainerConfig, data_seed: int) -> TrainResult:
    """Train ``model`` on the task's training subset, then compute the task's validation metrics."""
    model.to(resolve_device(config.device))
    batches = task.train_batches(config.batch_size, torch.Generator().manual_seed(data_seed))
    losses, train_seconds = fit(model, batches, config.max_steps, config.learning_rate, config)
    start = time.perf_counter()
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, config.eval_batch_size)
    if not all(math.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"validation metrics are not finite: {metrics}")
    return TrainResult(metrics, losses, train_seconds, time.perf_counter() - start)
