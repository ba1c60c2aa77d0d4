import numpy as np

from nas.env import ArchitectureEnv
from nas.space import Constraint, SearchSpace


def make_env():
    # "a" must not exceed "b": some modifications are invalid and must be masked.
    space = SearchSpace.from_dict({"a": [1, 2, 4], "b": [2, 4]}, [Constraint("a <= b", lambda x: x["a"] <= x["b"])])
    return ArchitectureEnv(space, horizon=3)


def test_actions_are_set_dimension_to_choice_plus_stop():
    env = make_env()
    assert env.actions == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert env.num_actions == 6 and env.stop_action == 5


def test_mask_excludes_no_ops_and_constraint_breaking_moves():
    env = make_env()
    state = (1, 0)  # a=2, b=2
    mask = env.action_mask(state)
    # a->1 ok, a->2 no-op, a->4 breaks a<=b, b->2 no-op, b->4 ok, stop ok
    assert mask.tolist() == [True, False, False, False, True, True]
    state = (2, 1)  # a=4, b=4: lowering b would break the constraint
    assert env.action_mask(state).tolist() == [True, True, False, False, False, True]


def test_apply_and_observation():
    env = make_env()
    assert env.apply((0, 0), 2) == (2, 0)
    assert env.apply((0, 0), env.stop_action) == (0, 0)
    obs = env.observation((2, 1), step=1)
    assert obs.shape == (env.observation_size,) == (3 + 2 + 4,)
    np.testing.assert_array_equal(obs, [0, 0, 1, 0, 1, 0, 1, 0, 0])
