"""The value network of the search: an ensemble that estimates M(architecture), with its uncertainty.

Every evaluation so far is its training data. Each member is a small MLP fitted on a bootstrap
resample (Poisson weights), all members in one batched model. A fit's gradients are written out
(``_BatchedMLP.gradients``) instead of taken by autograd, whose per-operation overhead was half of a fit on these
tiny tensors (60 steps on 40 points: 34 ms with autograd, 18 ms without). They are autograd's own operations in
its order, so every fit, and every search, is the same to the last bit (tests/test_surrogate.py).
The members' spread is the uncertainty; the points a member never saw give an out-of-bag R^2, the
accuracy gate that decides whether PPO may train on the model (DyNA-PPO's cross-validation gate).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nas.space import Encoding, SearchSpace
from nas.tiny_ops import adam_step, make_adam


class ArchitectureFeatures:
    """One-hot of each dimension's choice, plus its position in the (ordered) choice list."""

    def __init__(self, space: SearchSpace):
        self.sizes = list(space.sizes)
        self.offsets = np.cumsum([0, *self.sizes[:-1]])
        self.size = sum(self.sizes) + len(self.sizes)

    def __call__(self, encodings: list[Encoding] | np.ndarray) -> np.ndarray:
        codes = np.asarray(encodings, dtype=np.int64).reshape(-1, len(self.sizes))
        x = np.zeros((len(codes), self.size), dtype=np.float32)
        rows = np.arange(len(codes))[:, None]
        x[rows, self.offsets + codes] = 1.0
        x[:, sum(self.sizes):] = codes / np.maximum(1, np.asarray(self.sizes) - 1)
        return x


class _BatchedMLP(nn.Module):
    """``members`` independent one-hidden-layer MLPs evaluated together: x [N, D] -> [members, N]."""

    def __init__(self, members: int, in_size: int, hidden: int, generator: torch.Generator):
        super().__init__()
        scale1, scale2 = 1 / math.sqrt(in_size), 1 / math.sqrt(hidden)
        self.w1 = nn.Parameter((torch.rand(members, in_size, hidden, generator=generator) * 2 - 1) * scale1)
        self.b1 = nn.Parameter(torch.zeros(members, 1, hidden))
        self.w2 = nn.Parameter((torch.rand(members, hidden, 1, generator=generator) * 2 - 1) * scale2)
        self.b2 = nn.Parameter(torch.zeros(members, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)[0]

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output [members, N], hidden activations [members, N, hidden], which the gradients need)."""
        h = torch.relu(torch.matmul(x.unsqueeze(0), self.w1) + self.b1)
        return (torch.matmul(h, self.w2) + self.b2).squeeze(-1), h

    @torch.no_grad()
    def gradients(self, x: torch.Tensor, target: torch.Tensor, loss_weights: torch.Tensor) -> list[torch.Tensor]:
        """d loss / d (w1, b1, w2, b2) for loss = sum(loss_weights * (forward(x) - target)^2), by the operations
        autograd runs for it, in its order (so the same floats): pow's, mul's, then each layer's backward."""
        out, h = self._forward(x)
        d_out = (loss_weights * (2.0 * (out - target))).unsqueeze(-1)
        d_h = d_out.bmm(self.w2.transpose(1, 2))
        d_z = torch.ops.aten.threshold_backward(d_h, h, 0)  # relu's backward
        x_batched = x.unsqueeze(0).expand(self.w1.shape[0], *x.shape)  # what matmul broadcast x to
        return [x_batched.transpose(1, 2).bmm(d_z), d_z.sum_to_size(self.b1.shape),
                h.transpose(1, 2).bmm(d_out), d_out.sum_to_size(self.b2.shape)]


class ValueEnsemble:
    """M(architecture) ~ mean of the members, uncertainty = their standard deviation (both in metric units)."""

    def __init__(self, space: SearchSpace, members: int = 8, hidden: int = 64, steps: int = 60, learning_rate: float = 0.02,
                 weight_decay: float = 1e-3):
        self.features = ArchitectureFeatures(space)
        self.members, self.hidden, self.steps = members, hidden, steps
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.model: _BatchedMLP | None = None
        self.y_mean, self.y_std = 0.0, 1.0

    def fit(self, encodings: list[Encoding], values: list[float], seed: int) -> float:
        """Fit on (architecture, metric) pairs; returns the out-of-bag R^2 (nan with fewer than 3 points)."""
        generator = torch.Generator().manual_seed(seed)
        x = torch.from_numpy(self.features(encodings))
        y = torch.tensor(values, dtype=torch.float32)
        self.y_mean, self.y_std = float(y.mean()), float(y.std(unbiased=False)) or 1.0
        target = (y - self.y_mean) / self.y_std
        weights = torch.poisson(torch.ones(self.members, len(y)), generator=generator)  # bootstrap resamples
        self.model = _BatchedMLP(self.members, x.shape[1], self.hidden, generator)
        params = list(self.model.parameters())
        optimizer = make_adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        # The loss: sum(weights * (prediction - target)^2) / sum(weights); autograd's first step is d loss / d sum.
        loss_weights = (torch.ones(()) / weights.sum().clamp(min=1.0)) * weights
        for _ in range(self.steps):
            for param, grad in zip(params, self.model.gradients(x, target, loss_weights), strict=True):
                param.grad = grad
            adam_step(optimizer)
        with torch.no_grad():
            predictions = self.model(x)
        oob = weights == 0
        seen_by = oob.sum(0)
        usable = seen_by > 0
        if usable.sum() < 3:
            return float("nan")
        oob_mean = (predictions * oob).sum(0)[usable] / seen_by[usable]
        t = target[usable]
        total = float(((t - t.mean()) ** 2).sum())
        return 1.0 - float(((t - oob_mean) ** 2).sum()) / total if total > 0 else float("nan")

    def predict(self, encodings: list[Encoding] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) over the members, in the metric's units."""
        if self.model is None:
            raise RuntimeError("ValueEnsemble.predict() before fit()")
        with torch.no_grad():
            out = self.model(torch.from_numpy(self.features(encodings)))
        mean = out.mean(0).numpy() * self.y_std + self.y_mean
        std = out.std(0, unbiased=False).numpy() * self.y_std
        return mean, std
