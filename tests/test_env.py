import numpy as np

from nas.env import ArchitectureEnv, ControllerEnv
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
    state = ((1, 0), 0)  # a=2, b=2
    mask = env.action_mask(state)
    # a->1 ok, a->2 no-op, a->4 breaks a<=b, b->2 no-op, b->4 ok, stop ok
    assert mask.tolist() == [True, False, False, False, True, True]
    state = ((2, 1), 1)  # a=4, b=4: lowering b would break the constraint
    assert env.action_mask(state).tolist() == [True, True, False, False, False, True]


def test_apply_and_observation():
    env = make_env()
    assert env.apply((0, 0), 2) == (2, 0)
    assert env.apply((0, 0), env.stop_action) == (0, 0)
    obs = env.observation(((2, 1), 1))
    assert obs.shape == (env.observation_size,) == (3 + 2 + 4,)
    np.testing.assert_array_equal(obs, [0, 0, 1, 0, 1, 0, 1, 0, 0])


def test_a_modify_episode_proposes_where_it_ends():
    env = make_env()
    state = env.start((0, 0))
    state, candidate, done = env.step(state, 4)  # b -> 4: not the last step, nothing proposed yet
    assert candidate is None and state == ((0, 1), 1) and not done
    assert env.step(state, env.stop_action) == (state, (0, 1), True)  # stop proposes where the episode stands
    state, candidate, done = env.step(((0, 1), 2), 0)
    assert done and candidate == (0, 1)  # the horizon (3) ends the episode: its architecture is the proposal


def test_modify_masks_every_way_to_end_on_a_seen_architecture():
    env = make_env()
    seen = {(0, 0), (0, 1)}
    # Stop is masked on a seen architecture; moves to seen ones are allowed while the episode can go on ...
    mask = env.action_mask(((0, 0), 0), seen)
    assert not mask[env.stop_action] and mask[4]
    # ... but not on the last step, where the move ends the episode.
    mask = env.action_mask(((0, 0), 2), seen)
    assert mask.tolist() == [False, True, False, False, False, False]  # a -> 2 (1, 0) is the only new valid end
    assert env.action_mask(((1, 0), 2), seen)[env.stop_action]  # an unseen architecture may stop
    # Nothing new in reach: a dead end (every action masked).
    assert not env.action_mask(((0, 0), 2), seen | {(1, 0)}).any()


def test_controller_masks_seen_architectures_on_the_last_choice():
    space = SearchSpace.from_dict({"a": [1, 2], "b": [2, 4]})
    env = ControllerEnv(space)
    assert env.action_mask(((0,), 1), {(0, 0)}).tolist() == [False, True]
    assert env.action_mask(((), 0), {(0, 0)}).tolist() == [True, True]  # earlier choices are not masked by it


def test_controller_chooses_each_dimension_in_turn_and_masks_dead_ends():
    space = SearchSpace.from_dict({"a": [1, 2, 4], "b": [2, 4], "c": [0, 1]},
                                  [Constraint("a <= b", lambda x: x["a"] <= x["b"]), Constraint("c=1 needs a=1", lambda x: x["c"] == 0 or x["a"] == 1)])
    env = ControllerEnv(space)
    assert env.num_actions == 3 and env.observation_size == 3 + 2 + 2 + 4
    state = env.start()
    assert env.action_mask(state).tolist() == [True, True, True]  # every a has a valid completion
    state, candidate, done = env.step(state, 2)  # a=4
    assert candidate is None and not done
    assert env.action_mask(state).tolist() == [False, True, False]  # b=2 < a; no third choice for b
    state, _, _ = env.step(state, 1)
    assert env.action_mask(state).tolist() == [True, False, False]  # c=1 needs a=1
    state, candidate, done = env.step(state, 0)
    assert candidate == (2, 1, 0) and done and space.is_valid_encoding(candidate)
    np.testing.assert_array_equal(env.observation(state), [0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1])
