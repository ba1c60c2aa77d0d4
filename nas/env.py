"""The architecture-modification MDP that PPO acts in.

State: the current architecture (one-hot choice per dimension) and the step within the episode
(one-hot, 0..horizon). Actions: "set dimension d to choice c" for every (d, c), plus "stop".
An action is masked when it changes nothing or would break a constraint of the space, so the
policy never samples an invalid architecture. Episodes end on "stop" or after ``horizon`` steps.
"""

from __future__ import annotations

import numpy as np

from nas.space import Encoding, SearchSpace


class ArchitectureEnv:
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

    def observation(self, encoding: Encoding, step: int) -> np.ndarray:
        obs = np.zeros(self.observation_size, dtype=np.float32)
        obs[self._offsets + np.asarray(encoding)] = 1.0
        obs[sum(self.space.sizes) + step] = 1.0
        return obs

    def action_mask(self, encoding: Encoding) -> np.ndarray:
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
