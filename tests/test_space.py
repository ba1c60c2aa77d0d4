import pytest

from nas.space import Constraint, SearchSpace, SpaceError, architecture_key


def test_encode_decode_round_trip():
    space = SearchSpace.from_dict({"a": [1, 2, 3], "b": ["x", "y"]})
    for enc in space.all_encodings():
        assert space.encode(space.decode(enc)) == enc
    assert space.size == 6
    assert space.decode((2, 0)) == {"a": 3, "b": "x"}


@pytest.mark.parametrize(
    "dims, message",
    [
        ({"a": []}, "dimension 'a' has an empty choice list"),
        ({"a": [1, 2, 1]}, "dimension 'a' lists choice 1 twice"),
        ({"a": "abc"}, "dimension 'a' must be a list"),
        ({}, "has no dimensions"),
    ],
)
def test_invalid_spaces_are_rejected(dims, message):
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dict(dims)


def test_unsatisfiable_constraints_are_rejected():
    space = SearchSpace.from_dict({"a": [1, 2]}, [Constraint("a > 5", lambda x: x["a"] > 5)])
    with pytest.raises(SpaceError, match="no architecture satisfying its constraints"):
        space.first_valid()


def test_encode_rejects_unknown_values_and_dimensions():
    space = SearchSpace.from_dict({"a": [1, 2]})
    with pytest.raises(SpaceError, match="'a=7' is not a choice"):
        space.encode({"a": 7})
    with pytest.raises(SpaceError, match=r"unknown \['b'\]"):
        space.encode({"a": 1, "b": 2})


def test_default_is_the_middle_when_valid_else_first_valid():
    space = SearchSpace.from_dict({"a": [1, 2, 3], "b": [1, 2, 3]})
    assert space.default_encoding() == (1, 1)
    constrained = SearchSpace.from_dict({"a": [1, 2, 3], "b": [1, 2, 3]}, [Constraint("a>b", lambda x: x["a"] > x["b"])])
    assert constrained.default_encoding() == (1, 0)


def test_architecture_key_is_order_independent():
    assert architecture_key({"a": 1, "b": 2}) == architecture_key({"b": 2, "a": 1})
    assert architecture_key({"a": 1, "b": 2}) != architecture_key({"a": 2, "b": 1})
