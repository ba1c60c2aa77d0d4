"""Latency as a cost: the median time of a model's forward pass (``objective.cost=latency_ms``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping

import torch


def measure_latency(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor], repeats: int = 5, warmup: int = 1) -> float:
    """Median milliseconds of one no-grad, eval-mode forward pass of ``model`` on ``inputs`` (moved to its device).

    The weights do not change the compute, so an untrained model measures the same as a trained one:
    measure before training to reject over-budget candidates early. The time depends on the number
    of torch threads and on what else runs on the machine, so latency rewards are not reproducible
    the way metrics are; the median of several runs damps the noise.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"measure_latency needs repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = next(model.parameters()).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    modes = {m: m.training for m in model.modules()}  # restore exactly, even a mixed train/eval model
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)  # CUDA runs asynchronously
    times = []
    model.eval()
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                sync(device)
                start = time.perf_counter()
                model(**batch)
                sync(device)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
    finally:
        for module, training in modes.items():
            module.training = training
    return statistics.median(times)
