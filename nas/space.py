"""Search spaces as data: finite, ordered choices per dimension, plus constraints.

An architecture is a plain dict ``{dimension: choice}``; internally strategies work on the tuple of
choice indices (its *encoding*). Nothing here knows about transformers: model families add their
constraints (head divisibility, parameter budgets) as :class:`Constraint` objects.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.errors import BadInput

Architecture = dict[str, Any]
Encoding = tuple[int, ...]


class SpaceError(BadInput):
    """A search space that cannot be searched (empty, duplicated or unsatisfiable choices)."""


@dataclass(frozen=True)
class Constraint:
    """A named predicate over architectures; ``check`` returns True when the architecture is allowed."""

    name: str
    check: Callable[[Architecture], bool]


def architecture_key(architecture: Mapping[str, Any]) -> str:
    """A short stable hash of an architecture, used for caching and MLflow tags."""
    blob = json.dumps(dict(sorted(architecture.items())), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


@dataclass
class SearchSpace:
    """Dimensions (name -> ordered choices) and the constraints every architecture must satisfy."""

    dimensions: dict[str, tuple[Any, ...]]
    constraints: Sequence[Constraint] = ()
    name: str = "space"
    # Checking a constraint can be costly (parameter counts), and strategies ask about the same
    # architectures again and again, so validity is memoised per encoding.
    _valid_cache: dict[Encoding, bool] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.dimensions:
            raise SpaceError(f"search space '{self.name}' has no dimensions")
        for dim, choices in self.dimensions.items():
            problem = dimension_problem(choices)
            if problem:
                raise SpaceError(f"search space '{self.name}': dimension '{dim}' {problem}")
        self.dimensions = {str(dim): tuple(choices) for dim, choices in self.dimensions.items()}

    @classmethod
    def from_dict(cls, dimensions: Mapping[str, Sequence[Any]], constraints: Sequence[Constraint] = (), name: str = "space") -> SearchSpace:
        return cls(dimensions=dict(dimensions), constraints=tuple(constraints), name=name)

    # -- encoding -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.dimensions)

    @property
    def sizes(self) -> list[int]:
        return [len(c) for c in self.dimensions.values()]

    @property
    def size(self) -> int:
        """Number of architectures before constraints."""
        return math.prod(self.sizes)

    def decode(self, encoding: Sequence[int]) -> Architecture:
        return {dim: choices[i] for (dim, choices), i in zip(self.dimensions.items(), encoding, strict=True)}

    def encode(self, architecture: Mapping[str, Any]) -> Encoding:
        missing = set(self.dimensions) - set(architecture)
        extra = set(architecture) - set(self.dimensions)
        if missing or extra:
            raise SpaceError(f"architecture does not match space '{self.name}': missing {sorted(missing)}, unknown {sorted(extra)}")
        encoding = []
        for dim, choices in self.dimensions.items():
            value = architecture[dim]
            try:
                encoding.append(choices.index(value))
            except ValueError:
                raise SpaceError(f"'{dim}={value!r}' is not a choice of space '{self.name}' (choices: {list(choices)})") from None
        return tuple(encoding)

    # -- constraints --------------------------------------------------------------------------
    def violations(self, architecture: Architecture) -> list[str]:
        """Names of the constraints the architecture breaks (empty when valid)."""
        return [c.name for c in self.constraints if not c.check(architecture)]

    def is_valid_encoding(self, encoding: Encoding) -> bool:
        valid = self._valid_cache.get(encoding)
        if valid is None:
            valid = not self.violations(self.decode(encoding))
            self._valid_cache[encoding] = valid
        return valid

    def is_valid(self, architecture: Architecture) -> bool:
        return self.is_valid_encoding(self.encode(architecture))

    def all_encodings(self) -> Iterator[Encoding]:
        return itertools.product(*(range(n) for n in self.sizes))

    def first_valid(self, max_checks: int = 200_000) -> Encoding:
        """The first valid architecture in enumeration order; raises when none exists."""
        for i, encoding in enumerate(self.all_encodings()):
            if i >= max_checks:
                break
            if self.is_valid_encoding(encoding):
                return encoding
        raise SpaceError(
            f"search space '{self.name}' has no architecture satisfying its constraints "
            f"({', '.join(c.name for c in self.constraints)}) among the first {min(self.size, max_checks)} of {self.size}"
        )

    def default_encoding(self) -> Encoding:
        """The middle choice of every dimension when valid, else the first valid architecture."""
        middle = tuple((n - 1) // 2 for n in self.sizes)
        return middle if self.is_valid_encoding(middle) else self.first_valid()


def dimension_problem(choices: Any) -> str | None:
    """What makes ``choices`` unusable as a dimension's choice list (not a list, empty, a repeated choice), or None."""
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
        return f"must be a list of choices, got {choices!r}"
    if not choices:
        return "has an empty choice list"
    # Same JSON text, or == (1 and 1.0, 0 and False): encode() looks choices up with ==, so either kind
    # of twin would decode to the other one.
    seen: list[tuple[str, Any]] = []
    for c in choices:
        marker = json.dumps(c, sort_keys=True, default=str)
        for marker_before, before in seen:
            if marker == marker_before:
                return f"lists choice {c!r} twice"
            if _equal(c, before):
                return f"lists choice {c!r} twice (as {before!r}, which equals it)"
        seen.append((marker, c))
    return None


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. numpy arrays compare element-wise
        return False


def check_dimensions(dimensions: Any, where: str = "search_space.dimensions") -> None:
    """SpaceError naming the config key (``search_space.dimensions.<name>``) of the first unusable choice list."""
    if not isinstance(dimensions, Mapping) or not dimensions:
        raise SpaceError(f"{where} must map at least one config attribute to its choices, got {dimensions!r}")
    for dim, choices in dimensions.items():
        problem = dimension_problem(choices)
        if problem:
            raise SpaceError(f"{where}.{dim} {problem}")


def initial_encoding(space: SearchSpace, initial: Mapping[str, Any], where: str = "search_space.initial") -> Encoding:
    """The encoding of the configured first architecture; SpaceError naming ``where`` when it is not in the space."""
    try:
        return space.encode(initial)
    except SpaceError as exc:
        raise SpaceError(f"{where}: {exc}; set {where}=null to start from the middle choices") from None


def as_space(space: SearchSpace | Mapping[str, Sequence[Any]]) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space)
