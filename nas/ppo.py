"""PPO's networks and its math as small pure functions (CleanRL's notation: b_ batch, mb_ minibatch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_size: int, hidden: int, out_size: int, out_gain: float) -> nn.Sequential:
    layers = [nn.Linear(in_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, out_size)]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            gain = out_gain if layer is layers[-1] else 2**0.5
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def forward_mlp(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for an ``mlp``: the same operations, without a module call per layer (PPO runs these tiny
    networks thousands of times a search, and the calls cost more than the arithmetic)."""
    first, _, second, _, last = net
    x = torch.tanh(F.linear(x, first.weight, first.bias))
    x = torch.tanh(F.linear(x, second.weight, second.bias))
    return F.linear(x, last.weight, last.bias)


class PolicyNetwork(nn.Module):
    """pi_theta(a|s): logits over modification actions; masked actions get (practically) zero probability."""

    def __init__(self, observation_size: int, num_actions: int, hidden: int = 64):
        super().__init__()
        # A small output gain starts the policy near uniform over the valid actions.
        self.net = mlp(observation_size, hidden, num_actions, out_gain=0.01)

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor) -> MaskedCategorical:
        return MaskedCategorical(forward_mlp(self.net, obs), mask)


class MaskedCategorical:
    """A categorical over logits with invalid actions masked out: ``torch.distributions.Categorical``'s
    ``probs``, ``log_prob`` and ``entropy`` from one log_softmax. PPO builds one per gradient step on a few hundred
    rows, where Categorical's logsumexp and argument handling cost more than the policy's forward pass."""

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor):
        self.logits = torch.log_softmax(logits.masked_fill(~mask, -1e9), dim=-1)  # log pi(a|s); masked: about -1e9

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()  # exactly 0 where masked

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)  # a masked action adds 0 * -1e9 = 0


class ValueNetwork(nn.Module):
    """V(s): the expected discounted return from an architecture at a given step."""

    def __init__(self, observation_size: int, hidden: int = 64):
        super().__init__()
        self.net = mlp(observation_size, hidden, 1, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return forward_mlp(self.net, obs).squeeze(-1)


def next_values(values: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
    """V(s_{t+1}) for transitions laid end to end, episode after episode: the next entry's value within an
    episode, 0 after an episode's last step (it ends in a terminal state: nothing to bootstrap)."""
    return torch.cat([values[1:], torch.zeros(1)]) * (1 - dones)


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_values: torch.Tensor, gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a flat sequence of transitions.

    ``dones[t]`` is 1 when the episode ended after step t (then V(s_{t+1}) is not bootstrapped).
    delta_t = r_t + gamma V(s_{t+1}) (1 - done_t) - V(s_t);  A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}.
    lambda = 1 gives the Monte-Carlo return minus V; lambda = 0 the one-step Bellman residual.
    Returns (advantages, returns = advantages + values).
    """
    r, v, d, nv = (x.tolist() for x in (rewards, values, dones, next_values))  # Python floats: a tensor op per step is slow
    advantages = [0.0] * len(r)
    lastgaelam = 0.0
    for t in reversed(range(len(r))):
        nextnonterminal = 1.0 - d[t]
        delta = r[t] + gamma * nv[t] * nextnonterminal - v[t]
        lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    adv = torch.tensor(advantages, dtype=rewards.dtype)
    return adv, adv + values


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    if x.numel() < 2:
        return x - x.mean()
    return (x - x.mean()) / (x.std() + eps)


@dataclass
class PolicyLoss:
    loss: torch.Tensor
    approx_kl: torch.Tensor  # the (r - 1) - log r estimator, always >= 0
    clipfrac: torch.Tensor  # share of samples whose ratio left [1 - clip, 1 + clip]


def clipped_policy_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> PolicyLoss:
    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return PolicyLoss(torch.max(pg_loss1, pg_loss2).mean(), approx_kl, clipfrac)


def value_loss(new_values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((new_values - returns) ** 2).mean()


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]; nan when the target is constant."""
    var_y = target.var(unbiased=False)
    if var_y == 0:
        return float("nan")
    return float(1 - (target - predicted).var(unbiased=False) / var_y)
