"""The two MDPs PPO can act in (``ppo.env``); both mask every action that leads to an invalid architecture.

``modify`` (default): an episode starts from the best architecture so far and applies up to
``horizon`` modifications. State: the current architecture (one-hot choice per dimension) and the
step (one-hot, 0..horizon). Actions: "set dimension d to choice c" for every (d, c), plus "stop".
Every modification is a candidate; its reward is the change in metric it caused.

``controller``: the classic NAS controller. An episode chooses one dimension's value per step, in
order, and the complete architecture is the candidate; its metric is the reward of the last step.
State: the choices made so far (one-hot, zeros for dimensions not chosen yet) and the step. A choice
is masked when no valid architecture completes it. The state after the last choice (the complete
architecture) is what the value network scores when proposals are screened.
"""

from __future__ import annotations

import numpy as np

from nas.space import Encoding, SearchSpace

State = tuple[Encoding, int]  # (architecture or prefix of choices, step)


class ArchitectureEnv:
    """``ppo.env=modify``: walk from the incumbent by changing one dimension per step."""

    name = "modify"
    delta_rewards = True  # reward = M(s') - M(s)

    def __init__(self, space: SearchSpace, horizon: int):
        if horizon < 1:
            raise ValueError(f"ppo.horizon must be >= 1, got {horizon}")
        self.space = space
        self.horizon = horizon
        # action index -> (dimension index, choice index); the last action is "stop".
        self.actions: list[tuple[int, int]] = [(d, c) for d, n in enumerate(space.sizes) for c in range(n)]
        self.stop_action = len(self.actions)
        self.num_actions = len(self.actions) + 1
        self._offsets = np.cumsum([0, *space.sizes[:-1]])
        self.observation_size = sum(space.sizes) + horizon + 1

    def start(self, incumbent: Encoding) -> State:
        return incumbent, 0

    def observation(self, state: State) -> np.ndarray:
        encoding, step = state
        obs = np.zeros(self.observation_size, dtype=np.float32)
        obs[self._offsets + np.asarray(encoding)] = 1.0
        obs[sum(self.space.sizes) + step] = 1.0
        return obs

    def action_mask(self, state: State) -> np.ndarray:
        encoding = state[0]
        mask = np.zeros(self.num_actions, dtype=bool)
        for a, (d, c) in enumerate(self.actions):
            if c != encoding[d]:
                mask[a] = self.space.is_valid_encoding(self.apply(encoding, a))
        mask[self.stop_action] = True
        return mask

    def apply(self, encoding: Encoding, action: int) -> Encoding:
        """The architecture reached by ``action`` (the same one for "stop")."""
        if action == self.stop_action:
            return encoding
        d, c = self.actions[action]
        return encoding[:d] + (c,) + encoding[d + 1 :]

    def step(self, state: State, action: int) -> tuple[State, Encoding | None, bool]:
        """(next state, the architecture to evaluate or None, whether the episode ends after this step)."""
        encoding, step = state
        if action == self.stop_action:
            return state, None, True
        nxt = self.apply(encoding, action)
        return (nxt, step + 1), nxt, step + 1 >= self.horizon


class ControllerEnv:
    """``ppo.env=controller``: choose each dimension's value in turn; the complete architecture is the candidate."""

    name = "controller"
    delta_rewards = False  # reward = M(architecture), on the last step

    def __init__(self, space: SearchSpace):
        self.space = space
        self.sizes = space.sizes
        self.num_dimensions = len(self.sizes)
        self.num_actions = max(self.sizes)
        self._offsets = np.cumsum([0, *self.sizes[:-1]])
        self.observation_size = sum(self.sizes) + self.num_dimensions + 1
        self._completable: dict[Encoding, bool] = {}

    def start(self, incumbent: Encoding | None = None) -> State:
        return (), 0

    def observation(self, state: State) -> np.ndarray:
        prefix, step = state
        obs = np.zeros(self.observation_size, dtype=np.float32)
        obs[self._offsets[: len(prefix)] + np.asarray(prefix, dtype=int)] = 1.0
        obs[sum(self.sizes) + step] = 1.0
        return obs

    def completable(self, prefix: Encoding) -> bool:
        """Whether some valid architecture starts with ``prefix`` (depth-first, memoised)."""
        known = self._completable.get(prefix)
        if known is None:
            if len(prefix) == self.num_dimensions:
                known = self.space.is_valid_encoding(prefix)
            else:
                known = any(self.completable(prefix + (c,)) for c in range(self.sizes[len(prefix)]))
            self._completable[prefix] = known
        return known

    def action_mask(self, state: State) -> np.ndarray:
        prefix, step = state
        mask = np.zeros(self.num_actions, dtype=bool)
        for c in range(self.sizes[step]):
            mask[c] = self.completable(prefix + (c,))
        return mask

    def step(self, state: State, action: int) -> tuple[State, Encoding | None, bool]:
        prefix, step = state
        nxt = prefix + (action,)
        done = len(nxt) == self.num_dimensions
        return (nxt, step + 1), (nxt if done else None), done


def make_env(name: str, space: SearchSpace, horizon: int) -> ArchitectureEnv | ControllerEnv:
    if name == "modify":
        return ArchitectureEnv(space, horizon)
    if name == "controller":
        return ControllerEnv(space)
    raise ValueError(f"ppo.env must be 'modify' or 'controller', got {name!r}")
