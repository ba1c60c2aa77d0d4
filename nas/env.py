"""The two MDPs PPO can act in (``ppo.env``). An episode ends at one architecture: its candidate.

Both mask every action that leads to an invalid architecture, and every way of ending an episode at
an architecture in ``excluded`` (evaluated or pending): every proposal is new, so a free revisit is
never credited as a discovery. An episode that can reach no new architecture is a dead end (all its
actions masked) and proposes nothing.

``modify`` (default): an episode starts from an evaluated architecture and applies up to
``horizon`` modifications, then proposes where it stands ("stop" ends it early, allowed only on a
new architecture). State: the current architecture (one-hot choice per dimension) and the step
(one-hot, 0..horizon). Actions: "set dimension d to choice c" for every (d, c), plus "stop".

``controller``: the classic NAS controller. An episode chooses one dimension's value per step, in
order, and proposes the complete architecture. State: the choices made so far (one-hot, zeros for
dimensions not chosen yet) and the step. A choice is masked when no valid architecture completes it.

Either way the reward is the proposed architecture's metric, on the episode's last step.
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np

from nas.errors import BadInput
from nas.space import Encoding, SearchSpace

State = tuple[Encoding, int]  # (architecture or prefix of choices, step)


class ArchitectureEnv:
    """``ppo.env=modify``: walk from an evaluated architecture by changing one dimension per step."""

    name = "modify"

    def __init__(self, space: SearchSpace, horizon: int):
        if horizon < 1:
            raise BadInput(f"ppo.horizon must be >= 1, got {horizon}")
        self.space = space
        self.horizon = horizon
        # action index -> (dimension index, choice index); the last action is "stop".
        self.actions: list[tuple[int, int]] = [(d, c) for d, n in enumerate(space.sizes) for c in range(n)]
        self.stop_action = len(self.actions)
        self.num_actions = len(self.actions) + 1
        self._offsets = np.cumsum([0, *space.sizes[:-1]])
        self.observation_size = sum(space.sizes) + horizon + 1
        self._valid: dict[Encoding, bool] = {}  # masks ask the same architectures again and again
        self._moves: dict[Encoding, tuple[np.ndarray, list[tuple[int, Encoding]]]] = {}  # valid moves of each architecture

    def start(self, incumbent: Encoding) -> State:
        return incumbent, 0

    def is_valid(self, encoding: Encoding) -> bool:
        known = self._valid.get(encoding)
        if known is None:
            known = self._valid[encoding] = self.space.is_valid_encoding(encoding)
        return known

    def observation(self, state: State) -> np.ndarray:
        encoding, step = state
        obs = np.zeros(self.observation_size, dtype=np.float32)
        obs[self._offsets + np.asarray(encoding)] = 1.0
        obs[sum(self.space.sizes) + step] = 1.0
        return obs

    def valid_moves(self, encoding: Encoding) -> tuple[np.ndarray, list[tuple[int, Encoding]]]:
        """(mask of the moves to valid architectures, [(action, architecture reached)]), memoised."""
        known = self._moves.get(encoding)
        if known is None:
            mask = np.zeros(self.num_actions, dtype=bool)
            reached = []
            for a, (d, c) in enumerate(self.actions):
                if c != encoding[d]:
                    nxt = self.apply(encoding, a)
                    if self.is_valid(nxt):
                        mask[a] = True
                        reached.append((a, nxt))
            known = self._moves[encoding] = (mask, reached)
        return known

    def action_mask(self, state: State, excluded: Container[Encoding] = ()) -> np.ndarray:
        encoding, step = state
        moves, reached = self.valid_moves(encoding)
        mask = moves.copy()
        if step + 1 >= self.horizon:  # a move now ends the episode where it lands
            for a, nxt in reached:
                if nxt in excluded:
                    mask[a] = False
        mask[self.stop_action] = encoding not in excluded
        return mask

    def apply(self, encoding: Encoding, action: int) -> Encoding:
        """The architecture reached by ``action`` (the same one for "stop")."""
        if action == self.stop_action:
            return encoding
        d, c = self.actions[action]
        return encoding[:d] + (c,) + encoding[d + 1 :]

    def step(self, state: State, action: int) -> tuple[State, Encoding | None, bool]:
        """(next state, the proposed architecture when the episode ends here else None, whether it ends)."""
        encoding, step = state
        if action == self.stop_action:
            return state, encoding, True
        nxt = self.apply(encoding, action)
        done = step + 1 >= self.horizon
        return (nxt, step + 1), (nxt if done else None), done


class ControllerEnv:
    """``ppo.env=controller``: choose each dimension's value in turn; the complete architecture is the candidate."""

    name = "controller"

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

    def action_mask(self, state: State, excluded: Container[Encoding] = ()) -> np.ndarray:
        prefix, step = state
        last = step + 1 == self.num_dimensions
        mask = np.zeros(self.num_actions, dtype=bool)
        for c in range(self.sizes[step]):
            mask[c] = self.completable(prefix + (c,)) and not (last and prefix + (c,) in excluded)
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
    raise BadInput(f"ppo.env must be 'modify' or 'controller', got {name!r}")
