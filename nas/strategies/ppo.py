"""PPO over architectures, with a learned model of the metric to train on between real evaluations.

First ``startup_candidates`` architectures, asked at once: the initial one, then random unseen ones (a spread of
the space for the ensemble and the start pool). Then rounds. A round: ``population_size`` episodes sampled from
pi_theta(a|s) each end at one new architecture (``nas.env``: seen and pending architectures are masked, so no
proposal repeats), and those architectures are evaluated together. An episode's reward is its architecture's metric on its last
step. Then:

1. The value ensemble (``nas.surrogate.ValueEnsemble``, the search's value network) is refitted to
   every evaluation so far: M(architecture) with an uncertainty.
2. One PPO update on the round's real episodes, in CleanRL's order (``_ppo_update``): flatten the
   episodes into one batch, GAE advantages and returns from the critic V(s), ``update_epochs``
   passes over shuffled minibatches (clipped surrogate, value loss, entropy bonus, gradient
   clipping), then the diagnostics.
3. DyNA-PPO (Angermueller et al., ICLR 2020): unless the ensemble is grossly wrong (out-of-bag
   R^2 < ``model_min_r2``, -1 by default: on NAS-Bench-Graph an ensemble with R^2 below 0 still ranks
   well enough to help), ``model_iterations`` more PPO updates on ``model_episodes`` simulated
   episodes each, rewarded by the ensemble's optimistic estimate (mean + ``exploration`` x std) of
   the architecture they end at. The policy learns from about a thousand transitions per round instead
   of a few dozen real ones.

Steps 1 and 3 also run once, when the start-up candidates' values are in (``model_first``): the first round's
episodes then come from a policy trained on the model of the start-up candidates, not from its initialisation.

Rewards are the metric standardised over the evaluations so far (so real and simulated episodes
share one scale); a failed candidate counts as the worst metric seen so far minus a tenth of the
observed range (or ``failure_reward``, in the metric's units). ``modify`` episodes start from one of
the ``start_pool`` best architectures evaluated so far; when every episode of a round is a dead end,
the ensemble picks a restart among random unseen architectures.

Each round appends its diagnostics to ``iteration_stats`` under ``ppo/`` (``ppo/policy_loss``,
``ppo/approx_kl``, ``ppo/model_r2``, ...), next to the ``iteration`` and ``best_value`` the runner reads.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.controller import CONTROLLER_FORMAT, ControllerError, controller_mismatch, load_controller, write_controller
from nas.env import ControllerEnv, State, make_env
from nas.ppo import (MaskedCategorical, PolicyNetwork, ValueNetwork, clipped_policy_loss, explained_variance, gae,
                     next_values, normalize, value_loss)
from nas.settings import PPOConfig
from nas.space import Architecture, Encoding, SearchSpace
from nas.strategies.base import Proposal, sample_valid, valid_initial
from nas.surrogate import ValueEnsemble
from nas.tiny_ops import adam_step, clip_grad_norm_, make_adam

__all__ = ["ControllerError", "PPOStrategy", "load_controller"]  # the controller file's API, re-exported where it was

@dataclass
class Episode:
    """One episode's transitions and the architecture it proposes (None: a dead end, nothing new in reach)."""

    obs: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    proposal: Encoding | None = None
    on_policy: bool = True  # False when screening chose it: its log-probabilities are not the sampler's, so PPO skips it


# What one PPO update reports: these averaged over its minibatches, then the critic's explained variance.
MINIBATCH_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")
UPDATE_STATS = (*MINIBATCH_STATS, "explained_variance")


@dataclass
class Batch:
    """A PPO update's transitions laid end to end, episode after episode (CleanRL's b_ tensors)."""

    obs: torch.Tensor
    masks: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor  # log pi_theta_old(a|s), from the rollout
    values: torch.Tensor  # V(s), from the rollout
    rewards: torch.Tensor  # an episode's reward on its last step, 0 before
    dones: torch.Tensor  # 1 on an episode's last step


def flatten(episodes: list[tuple[Episode, float]]) -> Batch:
    """The episodes' transitions in one batch, each episode rewarded on its last step."""
    rollouts = [e for e, _ in episodes]
    values = torch.tensor([v for e in rollouts for v in e.values])
    rewards, dones = torch.zeros(len(values)), torch.zeros(len(values))
    last_steps = np.cumsum([len(e.actions) for e in rollouts]) - 1
    rewards[last_steps] = torch.tensor([r for _, r in episodes], dtype=torch.float32)
    dones[last_steps] = 1.0
    return Batch(
        obs=torch.from_numpy(np.stack([o for e in rollouts for o in e.obs])),
        masks=torch.from_numpy(np.stack([m for e in rollouts for m in e.masks])),
        actions=torch.tensor([a for e in rollouts for a in e.actions]),
        logprobs=torch.tensor([p for e in rollouts for p in e.logprobs]),
        values=values,
        rewards=rewards,
        dones=dones,
    )


class _Excluded:
    """Architectures no episode may end at: the evaluated ones and this round's pending ones."""

    def __init__(self, *parts):
        self.parts = parts

    def __contains__(self, encoding) -> bool:
        return any(encoding in part for part in self.parts)


class PPOStrategy:
    """Rounds of ``population_size`` episodes from pi_theta, each ending at a new architecture; the round's
    architectures are evaluated together, then the networks learn (see the module docstring). The rounds
    depend only on the seed and the values told, never on how many candidates train at once."""

    name = "ppo"

    def __init__(self, space: SearchSpace, config: PPOConfig, seed: int = 0, initial: Architecture | None = None):
        config.validate()
        self.space = space
        self.config = config
        self.seed = seed
        self.env = make_env(config.env, space, config.horizon)
        self.generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():  # seed the networks' init without touching the caller's RNG
            torch.manual_seed(seed)
            self.policy = PolicyNetwork(self.env.observation_size, self.env.num_actions, config.hidden_size)
            self.value = ValueNetwork(self.env.observation_size, config.hidden_size)
        if config.init_from:
            self._warm_start(load_controller(config.init_from), config.init_from)
        self.optimizer = make_adam([*self.policy.parameters(), *self.value.parameters()], lr=config.learning_rate, eps=1e-5)
        self.rng = np.random.default_rng(seed)  # restarts: random unseen architectures
        self.model = ValueEnsemble(space, members=config.ensemble_members, steps=config.ensemble_steps)
        self.model_ready = False  # the ensemble passed the accuracy gate at the last fit

        self.initial: Encoding = valid_initial(space, initial) if initial is not None else space.default_encoding()
        self.incumbent: tuple[Encoding, float] | None = None
        self.values: dict[Encoding, float | None] = {}  # every architecture told so far
        self.iteration = 0
        self.iteration_stats: list[dict] = []
        self._tried_initial = False
        self._model_first_done = False
        self._round: list[Episode] | None = None  # this round's proposing episodes
        self._round_values: list[float | None] = []
        self._dead_ends = 0
        self._queue: deque[tuple[Encoding, int | None]] = deque()  # proposals not asked yet: (architecture, episode or None)
        self._outstanding: deque[tuple[Encoding, int | None]] = deque()  # asked, awaiting their value, in ask order
        self._exhausted = False  # every valid architecture has been evaluated

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

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds (tensors and plain containers: loads with ``weights_only=True``): the controller,
        the optimizer and both random generators. The rest (values, incumbent) is rebuilt by replaying the history."""
        return {"controller": self.controller_state(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "numpy_rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._warm_start(state["controller"], "the checkpoint")
        self.iteration = state["controller"]["iterations"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])

    def save_controller(self, path: str | Path) -> None:
        write_controller(self.controller_state(), path)

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
        """The round's next proposal; None while the round's values are outstanding, or when done."""
        while not self.finished:
            if self._queue:
                encoding, index = self._queue.popleft()
                self._outstanding.append((encoding, index))
                step = len(self._round[index].actions) if index is not None else 0
                return Proposal(self.space.decode(encoding), self.iteration, index or 0, step)
            startup = len(self.values) + len(self._outstanding) < self.config.startup_candidates
            if self._outstanding and not startup:
                return None  # the round's values come before the next round
            if startup or self.incumbent is None:
                # The start-up candidates, asked at once (nothing learns from them one by one): the initial architecture,
                # then random unseen ones, so the first rounds start from a spread of architectures. Random ones go on
                # until one succeeds.
                encoding = self.initial if not self._tried_initial and self.initial not in self.values else self._random_unseen()
                self._tried_initial = True
                if encoding is None:
                    self._exhausted = True
                    return None
                self._queue.append((encoding, None))
                continue
            self._begin_round()
            if not self._queue:  # every episode was a dead end: the ensemble picks a restart
                self._round = None
                encoding = self._restart()
                if encoding is None:
                    self._exhausted = True
                    return None
                self._queue.append((encoding, None))
        return None

    def tell(self, proposal: Proposal, value: float | None) -> None:
        """The value of the oldest outstanding proposal (tells come in ask order)."""
        if not self._outstanding:
            raise RuntimeError("tell() without an outstanding ask()")
        encoding, index = self._outstanding.popleft()
        if proposal.architecture != self.space.decode(encoding):
            raise RuntimeError(f"tell() out of order: expected {self.space.decode(encoding)}, got {proposal.architecture}")
        self.values[encoding] = value
        if value is not None and (self.incumbent is None or value > self.incumbent[1]):
            self.incumbent = (encoding, value)
        if index is not None:
            self._round_values[index] = value
            if not self._outstanding and not self._queue:
                self._finish_round()  # at once: the round's statistics and controller are ready with its last value
        elif (self.config.model_first and not self._model_first_done and not self._outstanding and not self._queue
              and self.incumbent is not None and len(self.values) >= self.config.startup_candidates):
            self._model_first_done = True
            self._learn_from_model()  # the start-up candidates are in: the first round's policy has learnt from them

    # -- episodes -------------------------------------------------------------------------------
    def _distribution(self, obs: torch.Tensor, mask: torch.Tensor) -> MaskedCategorical:
        return self.policy.distribution(obs, mask)

    def _rollout(self, starts: list[State], excluded) -> list[Episode]:
        """Sample one episode from each start state, all of them advancing together (one batched forward a step)."""
        env = self.env
        episodes = [Episode() for _ in starts]
        states = list(starts)
        live = list(range(len(starts)))
        seen: dict[State, tuple[np.ndarray, np.ndarray]] = {}  # state -> (mask, observation): many episodes share a start
        while live:
            for i in live:
                if states[i] not in seen:
                    seen[states[i]] = (env.action_mask(states[i], excluded), env.observation(states[i]))
            live = [i for i in live if seen[states[i]][0].any()]  # the rest are dead ends: no proposal
            if not live:
                break
            obs = np.stack([seen[states[i]][1] for i in live])
            mask = np.stack([seen[states[i]][0] for i in live])
            with torch.no_grad():
                obs_t = torch.from_numpy(obs)
                dist = self._distribution(obs_t, torch.from_numpy(mask))
                actions = torch.multinomial(dist.probs, 1, generator=self.generator).squeeze(1)
                logprobs, values = dist.log_prob(actions).tolist(), self.value(obs_t).tolist()
            still = []
            for j, i in enumerate(live):
                episode, action = episodes[i], int(actions[j])
                episode.obs.append(obs[j])
                episode.masks.append(mask[j])
                episode.actions.append(action)
                episode.logprobs.append(logprobs[j])
                episode.values.append(values[j])
                states[i], proposal, done = env.step(states[i], action)
                if done:
                    episode.proposal = proposal
                else:
                    still.append(i)
            live = still
        return episodes

    def _starts(self, n: int) -> list[State]:
        """Start states: controller episodes start empty; modify episodes from the best evaluated architectures."""
        if isinstance(self.env, ControllerEnv):
            return [self.env.start()] * n
        done = sorted(((v, e) for e, v in self.values.items() if v is not None), key=lambda ve: -ve[0])
        pool = [e for _, e in done[: self.config.start_pool]]
        picks = torch.randint(len(pool), (n,), generator=self.generator).tolist()
        return [self.env.start(pool[i]) for i in picks]

    def _acquisition(self, encodings: list[Encoding]) -> np.ndarray:
        mean, std = self.model.predict(encodings)
        return mean + self.config.exploration * std

    def _begin_round(self) -> None:
        c = self.config
        pending: set[Encoding] = set()
        excluded = _Excluded(self.values, pending)
        self._round, self._round_values, self._dead_ends = [], [], 0
        for start in self._starts(c.population_size):
            if c.screening > 1 and self.model_ready:
                sampled = [e for e in self._rollout([start] * c.screening, excluded) if e.proposal is not None]
                episode = sampled[int(np.argmax(self._acquisition([e.proposal for e in sampled])))] if sampled else Episode()
                episode.on_policy = False
            else:
                episode = self._rollout([start], excluded)[0]
            if episode.proposal is None:
                self._dead_ends += 1
                continue
            pending.add(episode.proposal)
            self._queue.append((episode.proposal, len(self._round)))
            self._round.append(episode)
            self._round_values.append(None)

    def _random_unseen(self) -> Encoding | None:
        return sample_valid(self.space, self.rng, exclude=_Excluded(self.values, {e for e, _ in self._outstanding}))

    def _restart(self) -> Encoding | None:
        """A new architecture outside the policy's reach: the best-rated of random unseen ones (any, before the ensemble is trusted)."""
        candidates = []
        for _ in range(32 if self.model_ready else 1):
            encoding = self._random_unseen()
            if encoding is None:
                break
            candidates.append(encoding)
        if not candidates:
            return None
        return candidates[int(np.argmax(self._acquisition(candidates)))] if self.model_ready else candidates[0]

    # -- learning: one iteration, once the round's last value is in ---------------------------------
    def _reward_scale(self) -> tuple[float, float, float]:
        """(failure value, center, scale): a failure counts as the worst metric so far minus a tenth of the range (or
        ``failure_reward``); rewards are the metric standardised over every evaluation so far."""
        done = [v for v in self.values.values() if v is not None]
        low, high = min(done), max(done)
        failure = self.config.failure_reward if self.config.failure_reward is not None else low - 0.1 * (high - low)
        return failure, float(np.mean(done)), float(np.std(done)) or 1.0  # one reward scale for real and simulated episodes

    def _fit_model(self, failure: float) -> float:
        """The value ensemble refitted to every evaluation so far (failures at the failure value); its out-of-bag R^2."""
        c = self.config
        told = list(self.values.items())
        r2 = self.model.fit([e for e, _ in told], [failure if v is None else v for _, v in told], seed=self.seed * 100_003 + self.iteration)
        successes = sum(v is not None for _, v in told)
        self.model_ready = successes >= c.model_min_points and math.isfinite(r2) and r2 >= c.model_min_r2
        return r2

    def _learn_from_model(self) -> None:
        """Before the first round (``model_first``): the ensemble fitted to the start-up candidates, then the
        model-based updates, so the first round's episodes come from a policy that has learnt something."""
        failure, center, scale = self._reward_scale()
        self._fit_model(failure)
        if self.model_ready:
            self._model_based_updates(center, scale)

    def _finish_round(self) -> None:
        failure, center, scale = self._reward_scale()
        raw = [failure if v is None else v for v in self._round_values]

        # 1. The value ensemble: M(architecture) from every evaluation so far.
        r2 = self._fit_model(failure)

        # 2. PPO on the round's real episodes (screened ones are off-policy: skipped).
        real = [(e, (v - center) / scale) for e, v in zip(self._round, raw) if e.on_policy]
        update = self._ppo_update(real) if real else {}

        # 3. DyNA-PPO: PPO on simulated episodes while the ensemble is accurate enough.
        model_rewards = self._model_based_updates(center, scale) if self.model_ready else []

        nan = float("nan")
        diagnostics = {
            "reward_mean": float(np.mean(raw)),  # the metric of the round's candidates (failures at the failure value)
            "reward_max": float(np.max(raw)),
            "reward_min": float(np.min(raw)),
            **{k: update.get(k, nan) for k in UPDATE_STATS},
            "transitions": sum(len(e.actions) for e, _ in real),
            "candidates": len(raw),
            "dead_ends": self._dead_ends,
            "model_r2": r2,
            "model_updates": len(model_rewards),
            "model_reward_first": model_rewards[0] if model_rewards else nan,  # standardised; rises as the policy learns
            "model_reward_last": model_rewards[-1] if model_rewards else nan,
        }
        # ppo/: MLflow charts the diagnostics in a section of their own; the runner reads iteration and best_value.
        self.iteration_stats.append({"iteration": self.iteration, "best_value": self.incumbent[1] if self.incumbent else nan,
                                     **{f"ppo/{k}": v for k, v in diagnostics.items()}})
        self._round = None
        self.iteration += 1

    def _model_based_updates(self, center: float, scale: float) -> list[float]:
        """Up to ``model_iterations`` PPO updates on simulated episodes rewarded by the ensemble's optimistic estimate,
        standardised like the real rewards; each update's mean reward."""
        c = self.config
        model_rewards = []
        for _ in range(c.model_iterations):
            episodes = [e for e in self._rollout(self._starts(c.model_episodes), self.values) if e.proposal is not None]
            if not episodes:
                break
            rewards = (self._acquisition([e.proposal for e in episodes]) - center) / scale
            self._ppo_update(list(zip(episodes, rewards.tolist())))
            model_rewards.append(float(rewards.mean()))
        return model_rewards

    def _ppo_update(self, episodes: list[tuple[Episode, float]]) -> dict[str, float]:
        """One PPO update, CleanRL's iteration after its rollout, on whole episodes each rewarded on its last step."""
        c = self.config
        # Flatten the batch first: episodes differ in length, so they lie end to end (CleanRL's b_ tensors), and
        # the done flags keep GAE within each episode.
        b = flatten(episodes)

        # Bootstrap and GAE: every episode ends in a terminal state, so only V(s_{t+1}) within an episode counts.
        b_advantages, b_returns = gae(b.rewards, b.values, b.dones, next_values(b.values, b.dones), c.gamma, c.gae_lambda)

        # Optimize the policy and value network: update_epochs passes over shuffled minibatches.
        stats = self._optimize(b, b_advantages, b_returns)

        # How much of the returns' variance the rollout's V(s) explained (near 1: a good critic).
        return {**stats, "explained_variance": explained_variance(b.values, b_returns)}

    def _optimize(self, b: Batch, b_advantages: torch.Tensor, b_returns: torch.Tensor) -> dict[str, float]:
        """``update_epochs`` passes over shuffled minibatches, a clipped gradient step on each; the losses, entropy,
        approx_kl and clipfrac averaged over the minibatches."""
        c = self.config
        batch_size = len(b_advantages)
        params = [*self.policy.parameters(), *self.value.parameters()]
        per_minibatch: dict[str, list[float]] = {k: [] for k in MINIBATCH_STATS}
        for _epoch in range(c.update_epochs):
            # Equal-sized minibatches: a leftover minibatch of one would have its normalised advantage zeroed.
            b_inds = torch.randperm(batch_size, generator=self.generator)
            for mb_inds in torch.tensor_split(b_inds, min(c.num_minibatches, batch_size)):
                dist = self.policy.distribution(b.obs[mb_inds], b.masks[mb_inds])
                newlogprob, entropy = dist.log_prob(b.actions[mb_inds]), dist.entropy().mean()
                mb_advantages = normalize(b_advantages[mb_inds]) if c.norm_adv else b_advantages[mb_inds]

                pg = clipped_policy_loss(newlogprob, b.logprobs[mb_inds], mb_advantages, c.clip_coef)
                v_loss = value_loss(self.value(b.obs[mb_inds]), b_returns[mb_inds])
                loss = pg.loss - c.ent_coef * entropy + c.vf_coef * v_loss  # the entropy bonus keeps the policy exploring

                self.optimizer.zero_grad()
                loss.backward()
                clip_grad_norm_([p.grad for p in params], c.max_grad_norm)
                adam_step(self.optimizer)

                for k, v in zip(MINIBATCH_STATS, (pg.loss, v_loss, entropy, pg.approx_kl, pg.clipfrac), strict=True):
                    per_minibatch[k].append(float(v.detach()))
        return {k: float(np.mean(v)) for k, v in per_minibatch.items()}
