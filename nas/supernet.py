"""Weight sharing: one super-network per search, every candidate a slice of it (issue 17; AutoFormer's weight
entanglement, HAT's SuperTransformer, Once-for-All's sandwich rule).

The super-network is a real ``transformers`` model of the space's family built with the largest value of every
numeric dimension. A candidate (a subnet) is a real model of the same family built from its own config, on the
meta device (no memory), run with ``torch.func.functional_call`` on *views* of the super-network's tensors: each
of its parameters is the leading slice of the super-network's parameter of the same name (its first layers, its
first hidden units, its first feed-forward units), so a subnet's gradients land in the shared tensors. Fused
projections whose output stacks several matrices (GPT-2's ``c_attn``: query, key and value) are sliced block by
block. Dimensions that change only the computation (activation, dropout, heads over the same width) share every
weight.

A space can share weights when every architecture's parameters are such slices; ``SuperNetwork`` checks that for
the smallest and the largest architectures of the space before any training and refuses a space that cannot,
naming the parameter and the dimension (e.g. a ViT ``patch_size``: a 4x4 kernel is no slice of a 14x14 one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from nas.errors import BadInput
from nas.models import build_config, build_model
from nas.space import Architecture, SearchSpace

# Parameters whose last axis (Conv1D: [in, out]) or first axis (Linear: [out, in]) stacks several equal blocks.
FUSED: dict[str, dict[str, tuple[int, int]]] = {  # family -> parameter name suffix -> (axis, blocks)
    "gpt2": {"attn.c_attn.weight": (1, 3), "attn.c_attn.bias": (0, 3)},
}


class WeightSharingError(BadInput):
    """The space cannot share weights (raised before any training, naming why)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def largest_architecture(space: SearchSpace) -> Architecture:
    """Every numeric dimension at its largest choice, except head counts at their smallest (a head count changes no
    shape in these families, and one head divides every width); other dimensions at their first choice."""
    largest = {}
    for name, choices in space.dimensions.items():
        numbers = [c for c in choices if _is_number(c)]
        if len(numbers) == len(choices) and numbers:
            largest[name] = min(numbers) if "head" in name else max(numbers)
        else:
            largest[name] = choices[0]
    return largest


def _slice(shared: torch.Tensor, shape: torch.Size, fused: tuple[int, int] | None) -> torch.Tensor:
    """The leading ``shape`` slice of ``shared`` (block by block along a fused axis); a view where it can be."""
    if fused is not None:
        axis, blocks = fused
        parts = shared.chunk(blocks, dim=axis)
        want = list(shape)
        want[axis] //= blocks
        return torch.cat([_slice(p, torch.Size(want), None) for p in parts], dim=axis)
    return shared[tuple(slice(0, n) for n in shape)]


def _fused_rule(family: str, name: str) -> tuple[int, int] | None:
    return next((rule for suffix, rule in FUSED.get(family, {}).items() if name.endswith(suffix)), None)


class Subnet(nn.Module):
    """One architecture run on slices of the super-network's tensors: a module ``task.evaluate`` and ``fit`` can drive.
    Its only parameters are the super-network's (so an optimiser of a Subnet trains the shared weights)."""

    def __init__(self, supernet: SuperNetwork, architecture: Architecture):
        super().__init__()
        self.supernet_model = supernet.model  # registered: .parameters(), .to() and .train() reach the shared tensors
        self.architecture = dict(architecture)
        self.config = supernet.subnet_config(architecture)
        with torch.device("meta"):
            skeleton = supernet.builder(self.config)
        object.__setattr__(self, "skeleton", skeleton)  # not a submodule: its meta tensors are never parameters
        self._family = supernet.family
        self._shapes = {n: t.shape for n, t in [*skeleton.named_parameters(), *skeleton.named_buffers()]}

    def tensors(self) -> dict[str, torch.Tensor]:
        shared = {**dict(self.supernet_model.named_parameters()), **dict(self.supernet_model.named_buffers())}
        return {n: _slice(shared[n], shape, _fused_rule(self._family, n)) for n, shape in self._shapes.items()}

    def train(self, mode: bool = True) -> Subnet:
        super().train(mode)
        self.skeleton.train(mode)  # dropout follows the subnet's own config
        return self

    def forward(self, *args, **kwargs):
        return functional_call(self.skeleton, self.tensors(), args, kwargs)


class SuperNetwork:
    """The largest architecture of ``space`` as a real model whose tensors every candidate slices."""

    def __init__(self, space: SearchSpace, family: str, task: str, fixed: Mapping[str, Any], seed: int = 0,
                 builder: Callable[[Any], nn.Module] | None = None):
        self.space, self.family, self.task, self.fixed = space, family, task, dict(fixed)
        # config -> model: the task's model by default; the family's masked or causal LM for pre-training
        self.builder = builder or (lambda config: build_model(config, task))
        self.architecture = largest_architecture(space)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.model = self.builder(build_config(family, self.architecture, self.fixed))
        problems = self.sharing_problems()
        if problems:
            names = list(dict.fromkeys(p.split("=", 1)[0] for p in problems))
            raise WeightSharingError(f"search_space ({family}): this space cannot share weights: " + "; ".join(problems[:3])
                                     + f". Give {', '.join(f'search_space.dimensions.{n}' for n in names)} one choice, or use "
                                     "evaluation=standalone")

    def subnet(self, architecture: Architecture) -> Subnet:
        return Subnet(self, architecture)

    def subnet_config(self, architecture: Architecture):
        """The HF config of ``architecture``'s model (the one its subnet runs, and a standalone candidate trains)."""
        return build_config(self.family, architecture, self.fixed)

    def sharing_problems(self) -> list[str]:
        """Why some architecture's parameters are not slices of the super-network's (empty: they all are). Checked on
        the architectures with every dimension at its smallest and at its largest choice, one dimension changed at a time."""
        shared = {**dict(self.model.named_parameters()), **dict(self.model.named_buffers())}
        problems = []
        for name, choices in self.space.dimensions.items():
            for choice in choices:
                architecture = {**self.architecture, name: choice}
                try:
                    config = build_config(self.family, architecture, self.fixed)
                    with torch.device("meta"):
                        skeleton = self.builder(config)
                except Exception:  # a combination the family refuses: the space's constraints exclude it anyway
                    continue
                for pname, tensor in [*skeleton.named_parameters(), *skeleton.named_buffers()]:
                    big = shared.get(pname)
                    if big is None:
                        problems.append(f"{name}={choice!r} has a parameter '{pname}' the largest architecture lacks")
                    elif len(big.shape) != len(tensor.shape) or any(s > b for s, b in zip(tensor.shape, big.shape)):
                        problems.append(f"{name}={choice!r}: '{pname}' of shape {tuple(tensor.shape)} is no slice of "
                                        f"the super-network's {tuple(big.shape)}")
                    elif (rule := _fused_rule(self.family, pname)) and tensor.shape[rule[0]] % rule[1]:
                        problems.append(f"{name}={choice!r}: fused '{pname}' does not split into {rule[1]} blocks")
                if problems:
                    break
        return list(dict.fromkeys(problems))


def sandwich(space: SearchSpace, rng: np.random.Generator, extremes: tuple[Architecture, Architecture], random: int = 2) -> list[Architecture]:
    """The sandwich rule's subnets for one step: the largest and the smallest valid architectures and ``random`` others."""
    from nas.strategies.base import sample_valid

    picks = [dict(extremes[0]), dict(extremes[1])]
    for _ in range(random):
        encoding = sample_valid(space, rng)
        if encoding is not None:
            picks.append(space.decode(encoding))
    return picks


def uniform(space: SearchSpace, rng: np.random.Generator, count: int) -> list[Architecture]:
    """``count`` random valid architectures for one step: no subnet is trained more often than another."""
    from nas.strategies.base import sample_valid

    return [space.decode(e) for e in (sample_valid(space, rng) for _ in range(count)) if e is not None]


def extremes(space: SearchSpace, size: Any, samples: int = 2000, seed: int = 0) -> tuple[Architecture, Architecture]:
    """(largest, smallest) valid architectures by ``size(architecture)`` (e.g. the parameter count): every valid one
    when the space is small, else the extremes of ``samples`` random valid ones."""
    if space.size <= samples:
        valid = [space.decode(e) for e in space.all_encodings() if space.is_valid_encoding(e)]
    else:
        from nas.strategies.base import sample_valid

        rng = np.random.default_rng(seed)
        valid = [space.decode(e) for e in (sample_valid(space, rng) for _ in range(samples)) if e is not None]
    if not valid:
        raise WeightSharingError("search_space: no valid architecture to train the super-network on")
    ranked = sorted(valid, key=size)
    return ranked[-1], ranked[0]


def train_supernet(supernet: SuperNetwork, batches: Iterator[dict[str, torch.Tensor]], steps: int, learning_rate: float,
                   sample: Any, seed: int = 0, weight_decay: float = 0.01, max_grad_norm: float = 1.0) -> list[float]:
    """``steps`` AdamW steps; each sums the losses of ``sample(step)``'s subnets on one batch (the sandwich rule).
    Returns the mean subnet loss of every step. Dropout draws from torch's generator seeded with ``seed`` (the
    caller's generator state is restored after), so a seed gives the same super-network on CPU."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _train(supernet, batches, steps, learning_rate, sample, weight_decay, max_grad_norm)


def _train(supernet, batches, steps, learning_rate, sample, weight_decay, max_grad_norm) -> list[float]:
    model = supernet.model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) *
                                                 max(0.0, 0.5 * (1 + math.cos(math.pi * s / steps))))
    losses = []
    subnets: dict[str, Subnet] = {}
    for step in range(steps):
        batch = next(batches)
        optimizer.zero_grad(set_to_none=True)
        total = []
        for architecture in sample(step):
            key = repr(sorted(architecture.items()))
            net = subnets.get(key) or subnets.setdefault(key, supernet.subnet(architecture))
            net.train()
            loss = net(**batch).loss
            loss.backward()
            total.append(float(loss.detach()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(sum(total) / len(total))
    return losses


def score_subnets(supernet: SuperNetwork, architectures: Sequence[Architecture], evaluate: Any) -> list[dict[str, float]]:
    """Each architecture's metrics with the super-network's weights as they are (``evaluate(module)``: the task's)."""
    out = []
    for architecture in architectures:
        net = supernet.subnet(architecture).eval()
        with torch.no_grad():
            out.append(evaluate(net))
    return out
