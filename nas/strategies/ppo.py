"""PPO over architectures, in either MDP of nas.env (``ppo.env``).

``modify`` (default): an episode starts from the best architecture found so far (the initial one
until something beats it) and applies up to ``horizon`` modifications sampled from pi_theta(a|s).
The reward of a step is the change in metric it caused, M(s') - M(s), so with gamma = 1 an
episode's return is its total gain; "stop" earns 0.
``controller``: an episode picks every dimension's value in turn and earns the metric of the
architecture it built. With ``screening`` = K > 1, K episodes are sampled from the policy and only
the one whose complete architecture the value network rates highest is trained; the value network
learns V(complete architecture) = its metric from every architecture evaluated so far.

A failed candidate earns ``failure_reward`` and ends the episode. After ``population_size``
episodes the policy and value networks get one PPO update (GAE advantages, clipped surrogate,
value loss, entropy bonus, minibatch epochs, gradient clipping).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from nas.env import ControllerEnv, State, make_env
from nas.ppo import PolicyNetwork, ValueNetwork, clipped_policy_loss, explained_variance, gae, normalize, value_loss
from nas.space import Architecture, Encoding, SearchSpace
from nas.strategies.base import Proposal, sample_valid, valid_initial


@dataclass
class PPOConfig:
    iterations: int | None = 10  # PPO updates; None runs until the evaluation budget is spent
    population_size: int = 8  # episodes per iteration; the architectures they visit are its candidates
    horizon: int = 3  # modifications per episode at most (the MDP's horizon T)
    gamma: float = 0.99  # discount; 1.0 makes an episode's return its total metric gain
    gae_lambda: float = 0.95  # GAE lambda: 1 is Monte-Carlo return - V, 0 the one-step Bellman residual
    clip_coef: float = 0.2  # the surrogate clipping coefficient
    learning_rate: float = 3e-3  # Adam step size for both networks
    update_epochs: int = 4  # passes over an iteration's transitions per update
    num_minibatches: int = 2  # minibatches per pass
    ent_coef: float = 0.01  # entropy bonus coefficient
    vf_coef: float = 0.5  # value-loss coefficient
    max_grad_norm: float = 0.5  # global gradient-norm clip
    norm_adv: bool = True  # normalise advantages within each minibatch
    hidden_size: int = 64  # width of the policy and value MLPs
    failure_reward: float = -1.0  # reward for reaching an architecture whose evaluation failed
    max_stale_episodes: int = 50  # consecutive episodes proposing nothing new before a random unseen architecture is tried instead
    env: str = "modify"  # modify: walk from the incumbent; controller: choose each dimension in turn (see nas/env.py)
    screening: int = 1  # controller env: episodes sampled per candidate, the value network's favourite is trained (1 = off)
    init_from: Optional[str] = None  # warm start: an earlier search's controller.pt (the CLI also takes its run dir or MLflow run id)

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        checks = [
            ("iterations", self.iterations is None or self.iterations >= 1, ">= 1 (or null)"),
            ("population_size", self.population_size >= 1, ">= 1"), ("horizon", self.horizon >= 1, ">= 1"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]"), ("gae_lambda", 0.0 <= self.gae_lambda <= 1.0, "in [0, 1]"),
            ("clip_coef", self.clip_coef > 0, "> 0"), ("learning_rate", math.isfinite(self.learning_rate) and self.learning_rate > 0, "a positive number"),
            ("update_epochs", self.update_epochs >= 1, ">= 1"), ("num_minibatches", self.num_minibatches >= 1, ">= 1"),
            ("ent_coef", self.ent_coef >= 0, ">= 0"), ("vf_coef", self.vf_coef >= 0, ">= 0"), ("max_grad_norm", self.max_grad_norm > 0, "> 0"),
            ("hidden_size", self.hidden_size >= 1, ">= 1"), ("failure_reward", math.isfinite(self.failure_reward), "finite"),
            ("max_stale_episodes", self.max_stale_episodes >= 1, ">= 1"), ("env", self.env in ("modify", "controller"), "'modify' or 'controller'"),
            ("screening", self.screening >= 1, ">= 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ValueError(f"ppo.{key} must be {expected}, got {getattr(self, key)!r}")
        if self.screening > 1 and self.env != "controller":
            raise ValueError(f"ppo.screening={self.screening} needs ppo.env=controller (the value network scores complete architectures)")


CONTROLLER_FORMAT = "nas-ppo-controller/1"


class ControllerError(ValueError):
    """A warm-start controller that is missing, not a controller, or made for another search space."""


def load_controller(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ControllerError(f"ppo.init_from: controller file '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain containers only
    except Exception as exc:
        raise ControllerError(f"ppo.init_from: '{path}' is not a readable controller checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CONTROLLER_FORMAT:
        raise ControllerError(f"ppo.init_from: '{path}' is not a nas PPO controller (no '{CONTROLLER_FORMAT}' format tag)")
    return state


def controller_mismatch(state: dict[str, Any], space: SearchSpace, config: PPOConfig) -> list[str]:
    """What differs between a saved controller and this search; empty when it can be loaded."""
    saved: dict[str, list] = state["dimensions"]
    problems = [f"dimension '{d}' is not in this search space" for d in saved if d not in space.names]
    problems += [f"dimension '{d}' is not in the saved controller" for d in space.names if d not in saved]
    problems += [
        f"dimension '{d}' has choices {list(space.dimensions[d])} here but {saved[d]} in the controller"
        for d in space.names if d in saved and list(space.dimensions[d]) != list(saved[d])
    ]
    if list(saved) != list(space.names) and not problems:
        problems.append(f"dimensions are in the order {list(saved)} in the controller but {list(space.names)} here")
    for key in ("horizon", "hidden_size", "env"):
        if state.get(key, "modify") != getattr(config, key):
            problems.append(f"ppo.{key} is {getattr(config, key)} here but {state[key]} in the controller")
    return problems


@dataclass
class _Episode:
    """One episode of an iteration: where it is, what it has earned, and its transitions."""

    state: State
    state_value: float
    plan: list[int] = field(default_factory=list)  # actions of a screened episode still to take
    transitions: dict[str, list] = field(default_factory=lambda: {k: [] for k in TRANSITION_KEYS})
    episode_return: float = 0.0
    new: bool = False  # proposed an architecture not seen before
    done: bool = False


TRANSITION_KEYS = ("obs", "mask", "action", "logprob", "value", "reward", "done")


class PPOStrategy:
    """Each iteration runs ``population_size`` episodes from the incumbent, in lockstep rounds: every live
    episode proposes its next architecture, the round's architectures are evaluated together (in parallel
    when there are workers), then every episode takes its reward and the next round begins. The rounds
    depend only on the seed and the values told, never on how many candidates train at once."""

    name = "ppo"

    def __init__(self, space: SearchSpace, config: PPOConfig, seed: int = 0, initial: Architecture | None = None):
        config.validate()
        self.space = space
        self.config = config
        self.env = make_env(config.env, space, config.horizon)
        self.generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():  # seed the networks' init without touching the caller's RNG
            torch.manual_seed(seed)
            self.policy = PolicyNetwork(self.env.observation_size, self.env.num_actions, config.hidden_size)
            self.value = ValueNetwork(self.env.observation_size, config.hidden_size)
        if config.init_from:
            self._warm_start(load_controller(config.init_from), config.init_from)
        self.optimizer = torch.optim.Adam([*self.policy.parameters(), *self.value.parameters()], lr=config.learning_rate, eps=1e-5)
        self.rng = np.random.default_rng(seed)  # for restarts after a failed initial architecture

        self.initial: Encoding = valid_initial(space, initial) if initial is not None else space.default_encoding()
        self.incumbent: tuple[Encoding, float] | None = None
        self.values: dict[Encoding, float | None] = {}  # every architecture told so far
        self.iteration = 0
        self.iteration_stats: list[dict] = []
        self._tried_initial = False  # after a failed initial architecture, start from random ones
        self._episodes: list[_Episode] | None = None  # the current iteration's, None between iterations
        self._cursor = 0  # next episode to step in this round
        # Proposals awaiting their value, in ask order: (architecture, None for a start point or
        # (episode, next state, episode ends)).
        self._outstanding: deque[tuple[Encoding, tuple[int, State, bool] | None]] = deque()
        self._stale = 0  # consecutive episodes that proposed nothing new
        self._exhausted = False  # converged and every valid architecture evaluated

    # -- saved controllers (warm starts) ------------------------------------------------------------
    def controller_state(self) -> dict[str, Any]:
        return {
            "format": CONTROLLER_FORMAT,
            "dimensions": {name: list(self.space.dimensions[name]) for name in self.space.names},
            "horizon": self.config.horizon,
            "hidden_size": self.config.hidden_size,
            "env": self.config.env,
            "iterations": self.iteration,
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
        }

    def save_controller(self, path: str | Path) -> None:
        tmp = Path(path).with_suffix(".tmp")
        torch.save(self.controller_state(), tmp)
        tmp.replace(path)  # atomic: a kill mid-save leaves the previous controller intact

    def _warm_start(self, state: dict[str, Any], source: str) -> None:
        problems = controller_mismatch(state, self.space, self.config)
        if problems:
            raise ControllerError(f"ppo.init_from: the controller in '{source}' does not fit this search: " + "; ".join(problems))
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])

    @property
    def finished(self) -> bool:
        return self._exhausted or (self.config.iterations is not None and self.iteration >= self.config.iterations)

    # -- ask / tell -----------------------------------------------------------------------------
    def ask(self) -> Proposal | None:
        """The next proposal of this round; None while the round's values are outstanding, or when done."""
        while not self.finished:
            if self.incumbent is None or (self._episodes is None and self._stale >= self.config.max_stale_episodes):
                return self._start_point()
            if self._episodes is None:
                self._begin_iteration()
            while self._cursor < len(self._episodes):
                index = self._cursor
                self._cursor += 1
                episode = self._episodes[index]
                if episode.done:
                    continue
                candidate = self._advance(episode)
                if candidate is not None:
                    encoding, nxt, ends = candidate
                    self._outstanding.append((encoding, (index, nxt, ends)))
                    return Proposal(self.space.decode(encoding), self.iteration, index, episode.state[1] + 1)
            if self._outstanding:
                return None  # every live episode has proposed: their values come before the next step
            if all(e.done for e in self._episodes):
                self._update()
            else:
                self._cursor = 0  # the next round
        return None

    def _start_point(self) -> Proposal | None:
        """An architecture evaluated outside any episode, alone: the initial one (a random one after it
        failed), or, once the policy has converged, a random unseen one."""
        if self._outstanding:
            return None
        if self.incumbent is None:
            encoding = self._random_valid() if self._tried_initial else self.initial
            self._tried_initial = True
        else:
            # Converged: the policy keeps revisiting what it knows. Spend the next evaluation on a
            # random unseen architecture (a new incumbent, when it is better), then give the policy
            # one iteration to propose something new before the next random one.
            self._stale = max(0, self.config.max_stale_episodes - self.config.population_size)
            encoding = self._random_unseen()
            if encoding is None:
                self._exhausted = True  # every valid architecture has been evaluated
                return None
        self._outstanding.append((encoding, None))
        return Proposal(self.space.decode(encoding), self.iteration, 0, 0)

    def _begin_iteration(self) -> None:
        start, start_value = self.incumbent
        self._episodes = [_Episode(self.env.start(start), start_value) for _ in range(self.config.population_size)]
        if isinstance(self.env, ControllerEnv) and self.config.screening > 1:
            for episode in self._episodes:
                episode.plan = self._screen(self.config.screening)
        self._cursor = 0

    def _advance(self, episode: _Episode) -> tuple[Encoding, State, bool] | None:
        """Sample actions until the episode proposes an architecture (returned) or ends (None)."""
        while True:
            obs = self.env.observation(episode.state)
            mask = self.env.action_mask(episode.state)
            obs_t, mask_t = torch.from_numpy(obs), torch.from_numpy(mask)
            with torch.no_grad():
                dist = self.policy.distribution(obs_t, mask_t)
                action = torch.tensor(episode.plan.pop(0)) if episode.plan else torch.multinomial(dist.probs, 1, generator=self.generator).squeeze()
                logprob, value = dist.log_prob(action), self.value(obs_t)
            for key, item in (("obs", obs_t), ("mask", mask_t), ("action", action), ("logprob", logprob), ("value", value)):
                episode.transitions[key].append(item)
            nxt, candidate, done = self.env.step(episode.state, int(action))
            if candidate is not None:
                return candidate, nxt, done
            episode.state = nxt  # "stop", or a choice that does not complete an architecture yet
            self._end_step(episode, reward=0.0, done=done)
            if done:
                return None

    def tell(self, proposal: Proposal, value: float | None) -> None:
        """The value of the oldest outstanding proposal (tells come in ask order)."""
        if not self._outstanding:
            raise RuntimeError("tell() without an outstanding ask()")
        encoding, where = self._outstanding.popleft()
        if proposal.architecture != self.space.decode(encoding):
            raise RuntimeError(f"tell() out of order: expected {self.space.decode(encoding)}, got {proposal.architecture}")
        new = encoding not in self.values
        self.values[encoding] = value
        if value is not None and (self.incumbent is None or value > self.incumbent[1]):
            self.incumbent = (encoding, value)
        if where is None:  # a start point, not a step of an episode
            return
        index, nxt, ends = where
        episode = self._episodes[index]
        episode.new |= new
        if value is None:
            self._end_step(episode, reward=self.config.failure_reward, done=True)
        else:
            reward = value - episode.state_value if self.env.delta_rewards else value
            episode.state, episode.state_value = nxt, value
            self._end_step(episode, reward=reward, done=ends)
        if not self._outstanding and all(e.done for e in self._episodes):
            self._update()  # at once: the iteration's statistics and controller are ready with its last value

    def _screen(self, k: int) -> list[int]:
        """Sample ``k`` episodes from the policy; keep the one whose architecture V rates highest, preferring unseen ones."""
        env = self.env
        states, actions = [env.start()] * k, [[] for _ in range(k)]
        with torch.no_grad():
            for _ in range(env.num_dimensions):  # the k episodes advance together, one batched forward per step
                obs = torch.from_numpy(np.stack([env.observation(s) for s in states]))
                masks = torch.from_numpy(np.stack([env.action_mask(s) for s in states]))
                chosen = torch.multinomial(self.policy.distribution(obs, masks).probs, 1, generator=self.generator).squeeze(1).tolist()
                for i, action in enumerate(chosen):
                    actions[i].append(action)
                    states[i] = env.step(states[i], action)[0]
            scores = self.value(torch.from_numpy(np.stack([env.observation(s) for s in states]))).tolist()
        best = min(range(k), key=lambda i: (states[i][0] in self.values, -scores[i]))
        return actions[best]

    def _random_unseen(self) -> Encoding | None:
        return sample_valid(self.space, self.rng, exclude=self.values)

    def _random_valid(self) -> Encoding:
        return sample_valid(self.space, self.rng)  # make_space guarantees one exists

    def _end_step(self, episode: _Episode, reward: float, done: bool) -> None:
        episode.transitions["reward"].append(torch.tensor(reward, dtype=torch.float32))
        episode.transitions["done"].append(torch.tensor(float(done)))
        episode.episode_return += reward
        if done:
            episode.done = True
            self._stale = 0 if episode.new else self._stale + 1

    # -- the PPO update ---------------------------------------------------------------------------
    def _replay(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Controller env: (observations of every successfully evaluated complete architecture, their metrics)."""
        if not isinstance(self.env, ControllerEnv):
            return None
        done = [(e, v) for e, v in self.values.items() if v is not None]
        if not done:
            return None
        obs = np.stack([self.env.observation((e, self.env.num_dimensions)) for e, _ in done])
        return torch.from_numpy(obs), torch.tensor([v for _, v in done], dtype=torch.float32)

    def _update(self) -> None:
        c = self.config
        b = {k: torch.stack([t for e in self._episodes for t in e.transitions[k]]) for k in TRANSITION_KEYS}
        returns_of_episodes = [e.episode_return for e in self._episodes]
        # Episode after episode, so s_{t+1}'s value is the next entry's (within an episode).
        next_values = torch.cat([b["value"][1:], torch.zeros(1)]) * (1 - b["done"])
        advantages, returns = gae(b["reward"], b["value"], b["done"], next_values, c.gamma, c.gae_lambda)
        replay = self._replay()
        n = len(advantages)
        params = [*self.policy.parameters(), *self.value.parameters()]
        log: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")}
        for _ in range(c.update_epochs):
            # Equal-sized minibatches: a leftover minibatch of one would have its normalised advantage zeroed.
            for mb in torch.tensor_split(torch.randperm(n, generator=self.generator), min(c.num_minibatches, n)):
                dist = self.policy.distribution(b["obs"][mb], b["mask"][mb])
                newlogprob, entropy = dist.log_prob(b["action"][mb]), dist.entropy().mean()
                mb_adv = normalize(advantages[mb]) if c.norm_adv else advantages[mb]
                pl = clipped_policy_loss(newlogprob, b["logprob"][mb], mb_adv, c.clip_coef)
                v_loss = value_loss(self.value(b["obs"][mb]), returns[mb])
                if replay is not None:  # V(complete architecture) = its metric, from every evaluation so far
                    v_loss = v_loss + value_loss(self.value(replay[0]), replay[1])
                loss = pl.loss - c.ent_coef * entropy + c.vf_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm)
                self.optimizer.step()
                for k, v in (("policy_loss", pl.loss), ("value_loss", v_loss), ("entropy", entropy), ("approx_kl", pl.approx_kl), ("clipfrac", pl.clipfrac)):
                    log[k].append(float(v.detach()))
        self.iteration_stats.append(
            {
                "iteration": self.iteration,
                "reward_mean": float(b["reward"].mean()),
                "reward_max": float(b["reward"].max()),
                "reward_min": float(b["reward"].min()),  # ppo.failure_reward when a candidate of the iteration failed
                "episode_return_mean": float(np.mean(returns_of_episodes)),
                "episode_return_max": float(np.max(returns_of_episodes)),
                "best_value": self.incumbent[1] if self.incumbent else float("nan"),
                **{k: float(np.mean(v)) for k, v in log.items()},  # means over the update's minibatches
                "explained_variance": explained_variance(b["value"], returns),
                "transitions": n,
            }
        )
        self._episodes = None
        self.iteration += 1
