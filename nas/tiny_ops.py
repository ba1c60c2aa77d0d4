"""Adam's step and gradient-norm clipping for the search's tiny networks, without torch's per-call overhead.

PPO and the value ensemble take thousands of optimizer steps a search on tensors of a few thousand numbers. There,
``torch.optim.Adam.step`` spends most of its time outside its kernel (profiler hooks, grouping tensors by device and
dtype, its state checks), and so does ``clip_grad_norm_``. These call the same kernels with the same arguments, in the
same order, so every float is the same (tests/test_tiny_ops.py checks it bit for bit); the optimizer object keeps its
state, so ``state_dict()`` and checkpoints are unchanged.
"""

from __future__ import annotations

import torch


def make_adam(params: list[torch.nn.Parameter], lr: float, **kwargs) -> torch.optim.Adam:
    """A fused CPU Adam over one group of float32 parameters: the kind ``adam_step`` takes."""
    return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)


def adam_step(optimizer: torch.optim.Adam) -> None:
    """``optimizer.step()`` for a ``make_adam`` optimizer whose every parameter has a gradient: its state made as
    ``Adam._init_group`` makes it on first use, then ``torch.optim.adam._fused_adam``'s two kernel calls."""
    [group] = optimizer.param_groups
    params = group["params"]
    states = [optimizer.state[p] for p in params]
    if not states[0]:  # first step: Adam's lazy initialisation (a fused Adam keeps its step count as float32)
        for p, state in zip(params, states):
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    steps = [state["step"] for state in states]
    beta1, beta2 = group["betas"]
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [], steps,
                       amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                       maximize=False, grad_scale=None, found_inf=None)


@torch.no_grad()
def clip_grad_norm_(grads: list[torch.Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)`` for CPU tensors of one dtype: its operations
    in its order, without its grouping by device and dtype."""
    total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total_norm + 1e-6), max=1.0))
