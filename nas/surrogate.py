"""The value network of the search: an ensemble that estimates M(architecture), with its uncertainty.

Every evaluation so far is its training data. Each member is a small MLP fitted on a bootstrap
resample (Poisson weights), all members in one batched model. The model is two matrix products a member, so its
gradients are written out and Adam runs in NumPy: with autograd, per-operation overhead was most of a fit (60 steps
on 40 points: 34 ms with torch, 9 ms in NumPy), and a search fits after every round.
The members' spread is the uncertainty; the points a member never saw give an out-of-bag R^2, the
accuracy gate that decides whether PPO may train on the model (DyNA-PPO's cross-validation gate).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nas.space import Encoding, SearchSpace


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


class BatchedMLP:
    """``members`` independent one-hidden-layer MLPs evaluated together: x [N, D] -> [members, N].

    The parameters live in one flat float32 vector (``flat``; ``w1``, ``b1``, ``w2``, ``b2`` are views of it), so
    the optimizer updates all of them in a handful of array operations."""

    def __init__(self, members: int, in_size: int, hidden: int, generator: torch.Generator):
        self.shapes = {"w1": (members, in_size, hidden), "b1": (members, 1, hidden), "w2": (members, hidden, 1), "b2": (members, 1, 1)}
        self.flat = np.zeros(sum(math.prod(s) for s in self.shapes.values()), dtype=np.float32)
        for name, view in zip(self.shapes, self.views(self.flat), strict=True):
            setattr(self, name, view)
        # torch's generator draws the initial weights (uniform, 1/sqrt(fan_in) bounds), as nn.Linear would.
        self.w1[...] = ((torch.rand(members, in_size, hidden, generator=generator) * 2 - 1) / math.sqrt(in_size)).numpy()
        self.w2[...] = ((torch.rand(members, hidden, 1, generator=generator) * 2 - 1) / math.sqrt(hidden)).numpy()

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """``flat`` cut into arrays shaped like w1, b1, w2, b2 (views, no copies)."""
        out, start = [], 0
        for shape in self.shapes.values():
            size = math.prod(shape)
            out.append(flat[start:start + size].reshape(shape))
            start += size
        return out

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(output [members, N], pre-activation [members, N, hidden], kept for the backward pass)."""
        z = x @ self.w1
        z += self.b1
        out = (np.maximum(z, 0) @ self.w2)[..., 0]
        out += self.b2[..., 0]
        return out, z

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[0]

    def backward(self, x: np.ndarray, z: np.ndarray, d_out: np.ndarray, grad: np.ndarray) -> None:
        """Writes d loss / d parameters into ``grad`` (flat, like ``self.flat``), given d loss / d output [members, N]."""
        g_w1, g_b1, g_w2, g_b2 = self.views(grad)
        hidden = np.maximum(z, 0)
        g_b2[:, 0, 0] = d_out.sum(1)
        np.matmul(hidden.transpose(0, 2, 1), d_out[..., None], out=g_w2)
        d_z = d_out[..., None] * self.w2.transpose(0, 2, 1)
        d_z *= z > 0
        d_z.sum(1, keepdims=True, out=g_b1)
        np.matmul(x.T, d_z, out=g_w1)


class Adam:
    """torch.optim.Adam's update (L2 weight decay added to the gradient, bias-corrected moments) on one flat vector."""

    def __init__(self, params: np.ndarray, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.weight_decay, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.exp_avg, self.exp_avg_sq = np.zeros_like(params), np.zeros_like(params)
        self.steps = 0

    def step(self, grad: np.ndarray) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        if self.weight_decay:
            grad = grad + self.weight_decay * self.params
        self.exp_avg += (1 - beta1) * (grad - self.exp_avg)  # torch's lerp
        self.exp_avg_sq *= beta2
        self.exp_avg_sq += (1 - beta2) * grad * grad
        denom = np.sqrt(self.exp_avg_sq) / math.sqrt(1 - beta2**self.steps)
        denom += self.eps
        self.params -= (self.lr / (1 - beta1**self.steps)) * self.exp_avg / denom


class ValueEnsemble:
    """M(architecture) ~ mean of the members, uncertainty = their standard deviation (both in metric units)."""

    def __init__(self, space: SearchSpace, members: int = 8, hidden: int = 64, steps: int = 60, learning_rate: float = 0.02,
                 weight_decay: float = 1e-3):
        self.features = ArchitectureFeatures(space)
        self.members, self.hidden, self.steps = members, hidden, steps
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.model: BatchedMLP | None = None
        self.y_mean, self.y_std = 0.0, 1.0

    def fit(self, encodings: list[Encoding], values: list[float], seed: int) -> float:
        """Fit on (architecture, metric) pairs; returns the out-of-bag R^2 (nan with fewer than 3 points)."""
        generator = torch.Generator().manual_seed(seed)
        x = self.features(encodings)
        y = np.asarray(values, dtype=np.float32)
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        target = (y - np.float32(self.y_mean)) / np.float32(self.y_std)
        weights = torch.poisson(torch.ones(self.members, len(y)), generator=generator).numpy()  # bootstrap resamples
        self.model = model = BatchedMLP(self.members, x.shape[1], self.hidden, generator)
        optimizer = Adam(model.flat, lr=self.learning_rate, weight_decay=self.weight_decay)
        # loss = sum(weights * (out - target)^2) / sum(weights): its gradient in out is 2 weights (out - target) / sum(weights).
        scale = (2 / max(float(weights.sum()), 1.0)) * weights
        grad = np.zeros_like(model.flat)
        for _ in range(self.steps):
            out, z = model.forward(x)
            out -= target
            out *= scale
            model.backward(x, z, out, grad)
            optimizer.step(grad)
        predictions = model(x)
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
        out = self.model(self.features(encodings))
        return out.mean(0) * self.y_std + self.y_mean, out.std(0) * self.y_std
