"""Property-based tests (Hypothesis) over search spaces: what strategies propose, what the spaces predict, how they encode.

Every example is reproducible: derandomized, no example database (nothing is written to .hypothesis/).
"""

from __future__ import annotations

import functools
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import nas.models
from nas.config import CONF_DIR
from nas.models import build_config, build_model, get_family, make_space, parameter_count
from nas.space import Constraint, SearchSpace, SpaceError, architecture_key
from nas.strategies import make_strategy

PROPERTY = settings(database=None, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # PPO's updates are tiny; on a busy 2-core machine a second intra-op thread makes them several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the shipped spaces, each with every task its family fits ----------------------------------------
TASK_DIR, SPACE_DIR = Path(CONF_DIR) / "task", Path(CONF_DIR) / "search_space"


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def home_task(stem: str, family: str) -> str:
    """The task a shipped space belongs to: the one whose config searches it by default, else the only task its family
    fits (a decoder that also classifies text, Llama or Qwen2: language modelling)."""
    for path in sorted(TASK_DIR.glob("*.yaml")):
        if any(isinstance(d, dict) and d.get("override /search_space@_global_.search_space") == stem for d in load_yaml(path)["defaults"]):
            return path.stem
    tasks = get_family(family).tasks
    return "language_modeling" if "language_modeling" in tasks else tasks[0]


def task_fields(task: str) -> dict[str, Any]:
    """What ``Task.config_fields()`` gives, sized by the shipped task config but without loading data or training a tokenizer."""
    spec = load_yaml(TASK_DIR / f"{task}.yaml")
    tokens = {"vocab_size": 300, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    if task == "text_classification":
        return {**tokens, "max_position_embeddings": spec["max_length"], "num_labels": 2}
    if task == "language_modeling":
        return {**tokens, "max_position_embeddings": spec["max_length"]}
    if task == "translation":
        return {**tokens, "decoder_vocab_size": 300, "decoder_start_token_id": 0, "forced_eos_token_id": None,
                "max_position_embeddings": max(spec["max_length"], spec["max_new_tokens"] + 1), "is_encoder_decoder": True}
    if task == "image_classification":
        return {"image_size": spec["image_size"], "num_channels": spec["num_channels"], "num_labels": 10}
    if task == "audio_classification":
        return {"num_mel_bins": spec["num_mel_bins"], "max_length": spec["max_length"], "num_labels": 10}
    raise AssertionError(f"no fixed fields for task '{task}': add them here")


@dataclass(frozen=True)
class Shipped:
    """A shipped search space on one task, with the parameter counts of its smallest and largest architectures."""

    stem: str
    family: str
    task: str
    dimensions: dict[str, list]
    initial: dict[str, Any]
    fields: dict[str, Any]
    home: bool  # the task the space belongs to (gpt2_small also fits text_classification)

    @property
    def meta_counted(self) -> bool:
        # Counted by building the model on the meta device (tens of ms each) rather than in closed form.
        return get_family(self.family).parameter_count is nas.models._built_params

    def count(self, architecture: dict[str, Any]) -> int:
        return parameter_count(build_config(self.family, architecture, self.fields), self.task)

    @functools.cached_property
    def count_range(self) -> tuple[int, int]:
        # Choices are listed smallest first, so the first and last choice of every dimension give the extremes.
        smallest = {d: c[0] for d, c in self.dimensions.items()}
        largest = {d: c[-1] for d, c in self.dimensions.items()}
        return self.count(smallest), self.count(largest)

    def space(self, max_params: int | None = None) -> SearchSpace:
        return make_space(self.family, self.dimensions, self.task, self.fields, max_params, name=self.stem)


def shipped_spaces() -> list[Shipped]:
    found = []
    for path in sorted(SPACE_DIR.glob("*.yaml")):
        spec = load_yaml(path)
        home = home_task(path.stem, spec["family"])
        for task in get_family(spec["family"]).tasks:
            found.append(Shipped(path.stem, spec["family"], task, spec["dimensions"], spec.get("initial") or {},
                                 task_fields(task), home=task == home))
    return found


SHIPPED = shipped_spaces()  # every space on every task its family fits: parameter counts
CLOSED_FORM = [s for s in SHIPPED if s.home and not s.meta_counted]  # every space on its own task: searches
META_COUNTED = [s for s in SHIPPED if s.home and s.meta_counted]


def ids(spaces: list[Shipped]) -> list[str]:
    return [f"{s.stem}-{s.task}" for s in spaces]


def test_every_shipped_family_is_covered():
    stems = {p.stem for p in SPACE_DIR.glob("*.yaml")}
    assert {s.stem for s in CLOSED_FORM + META_COUNTED} == stems and len(CLOSED_FORM + META_COUNTED) == len(stems)
    assert {s.family for s in CLOSED_FORM} == {"bert", "gpt2", "vit"}


# -- 1. whatever a strategy proposes satisfies the space's constraints, its parameter budget included --
def synthetic_value(architecture: dict[str, Any], fail_one_in: int | None) -> float | None:
    """A cheap stand-in for training: a hash of the architecture, or None (a failed candidate) for some."""
    h = int(architecture_key(architecture), 16)
    if fail_one_in and h % fail_one_in == 0:
        return None
    return (h % 10_000) / 10_000


def drive(strategy, proposals: int, fail_one_in: int | None) -> list[dict[str, Any]]:
    """Ask until ``proposals`` architectures were proposed (or the strategy has nothing left), telling values back a batch at a time."""
    proposed, outstanding = [], []
    while len(proposed) < proposals:
        proposal = strategy.ask()
        if proposal is None:
            if not outstanding:
                break  # finished or exhausted
            for p in outstanding:  # tells come in ask order
                strategy.tell(p, synthetic_value(p.architecture, fail_one_in))
            outstanding.clear()
            continue
        proposed.append(proposal.architecture)
        outstanding.append(proposal)
    return proposed


ALL_VARIANTS = ["random", "evolution", "ppo-modify", "ppo-controller"]


@st.composite
def strategy_settings(draw, variants: list[str]) -> tuple[str, dict[str, Any]]:
    """(strategy name, its make_strategy options) for one of ``variants``, with small drawn settings."""
    variant = draw(st.sampled_from(variants), label="variant")
    if variant == "random":
        return "random", {}
    if variant == "evolution":
        population = draw(st.integers(2, 6))
        return "evolution", {"evolution": {"population_size": population, "sample_size": draw(st.integers(1, population))}}
    # Small iterations, so a few dozen proposals span several PPO updates; iterations=None never ends the search early.
    ppo = {"iterations": None, "population_size": draw(st.integers(2, 4)), "hidden_size": 16,
           "start_pool": draw(st.integers(1, 4)), "model_iterations": draw(st.integers(0, 2)), "model_episodes": 8, "model_min_points": 3}
    if variant == "ppo-modify":
        ppo.update(env="modify", horizon=draw(st.integers(1, 3)))
    else:
        ppo.update(env="controller", screening=draw(st.sampled_from([1, 3])))
    return "ppo", {"ppo": ppo}


def propose(space: SearchSpace, strategy: tuple[str, dict], seed: int, initial: dict[str, Any] | None,
            fail_one_in: int | None, proposals: int) -> list[dict[str, Any]]:
    name, options = strategy
    proposed = drive(make_strategy(name, space, seed=seed, initial=initial, **options), proposals, fail_one_in)
    assert proposed, "the space has a valid architecture, but the strategy proposed none"
    if initial is not None:
        assert proposed[0] == initial
    return proposed


@st.composite
def constrained_spaces(draw) -> SearchSpace:
    """Small spaces with an additive cost under a drawn budget (a stand-in for max_params) and some forbidden pairs of choices."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=6), label="sizes")
    names = [f"d{i}" for i in range(len(sizes))]
    costs = {name: draw(st.lists(st.integers(0, 20), min_size=n, max_size=n), label=f"costs of {name}") for name, n in zip(names, sizes)}
    budget = draw(st.integers(sum(map(min, costs.values())), sum(map(max, costs.values()))), label="budget")
    pair = st.tuples(st.sampled_from(names), st.integers(0, 5))
    forbidden = draw(st.lists(st.tuples(pair, pair), max_size=4), label="forbidden pairs")

    def within_budget(a):
        return sum(costs[d][a[d]] for d in names) <= budget

    def allowed(a):
        return not any(a[d] == c and a[e] == f for (d, c), (e, f) in forbidden if d != e)

    space = SearchSpace.from_dict({name: list(range(n)) for name, n in zip(names, sizes)},
                                  [Constraint("within budget", within_budget), Constraint("no forbidden pair", allowed)])
    try:
        space.first_valid()
    except SpaceError:
        assume(False)  # unsatisfiable: make_space would have rejected it
    return space


@pytest.mark.parametrize("variant", ALL_VARIANTS)
@settings(PROPERTY, max_examples=10)
@given(data=st.data(), space=constrained_spaces(), seed=st.integers(0, 2**31 - 1), fail_one_in=st.sampled_from([None, 2, 5]))
def test_every_proposal_satisfies_drawn_constraints(variant, data, space, seed, fail_one_in):
    strategy = data.draw(strategy_settings([variant]), label="strategy")
    proposed = propose(space, strategy, seed, None, fail_one_in, proposals=24)
    for architecture in proposed:
        assert space.violations(architecture) == [], architecture
    if strategy[0] != "ppo":  # PPO may revisit; the others propose an architecture once
        assert len({architecture_key(a) for a in proposed}) == len(proposed)
    if len(proposed) < 24:  # a strategy gives up only once every valid architecture was proposed
        event("exhausted the space")
        valid = {e for e in space.all_encodings() if space.is_valid_encoding(e)}
        assert {space.encode(a) for a in proposed} == valid


def check_proposals_are_valid(shipped: Shipped, budget: int, strategy: tuple[str, dict], seed: int, use_initial: bool,
                              fail_one_in: int | None, proposals: int) -> None:
    event(shipped.stem)  # which spaces a run covered (--hypothesis-show-statistics)
    space = shipped.space(budget)
    # The shipped initial architecture may break a budget tighter than the shipped one.
    initial = shipped.initial if use_initial and shipped.initial and space.is_valid(shipped.initial) else None
    for architecture in propose(space, strategy, seed, initial, fail_one_in, proposals):
        assert space.violations(architecture) == [], architecture
        assert shipped.count(architecture) <= budget, architecture


# Parametrized by strategy, so each variant is certain to run; the shipped space is drawn.
@pytest.mark.parametrize("variant", ALL_VARIANTS)
@settings(PROPERTY, max_examples=3)
@given(data=st.data(), shipped=st.sampled_from(CLOSED_FORM), seed=st.integers(0, 2**31 - 1), use_initial=st.booleans(),
       fail_one_in=st.sampled_from([None, 2, 5]))
def test_every_proposal_satisfies_the_constraints(variant, data, shipped, seed, use_initial, fail_one_in):
    strategy = data.draw(strategy_settings([variant]), label="strategy")
    # Anywhere from the smallest architecture's count (few valid ones) to the largest's.
    budget = data.draw(st.integers(*shipped.count_range), label="max_params")
    check_proposals_are_valid(shipped, budget, strategy, seed, use_initial, fail_one_in, proposals=24)


# Meta-counted families cost tens of ms per count, so: fewer proposals, budgets that leave more than a
# sliver of the space valid (rejection sampling finds them), and no controller env, whose masks build
# every architecture under each infeasible prefix (5-70 s per example here). The controller env itself
# is family-agnostic and covered on the closed-form spaces above.
@pytest.mark.parametrize("variant", ["random", "evolution", "ppo-modify"])
@settings(PROPERTY, max_examples=3)
@given(data=st.data(), shipped=st.sampled_from(META_COUNTED), seed=st.integers(0, 2**31 - 1), use_initial=st.booleans(),
       fail_one_in=st.sampled_from([None, 2, 5]))
def test_every_proposal_satisfies_the_constraints_meta_counted(variant, data, shipped, seed, use_initial, fail_one_in):
    strategy = data.draw(strategy_settings([variant]), label="strategy")
    smallest, largest = shipped.count_range
    budget = data.draw(st.integers(smallest + (largest - smallest) // 4, largest), label="max_params")
    check_proposals_are_valid(shipped, budget, strategy, seed, use_initial, fail_one_in, proposals=12)


# -- 2. the space's parameter count is the real model's ----------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("shipped", SHIPPED, ids=ids(SHIPPED))
@settings(PROPERTY, max_examples=10)
@given(data=st.data())
def test_predicted_parameter_count_is_the_real_models(shipped, data):
    # No budget: every structurally valid architecture, the largest included.
    space = shipped.space()
    encoding = data.draw(st.tuples(*(st.integers(0, n - 1) for n in space.sizes)), label="encoding")
    assume(space.is_valid_encoding(encoding))
    architecture = space.decode(encoding)
    config = build_config(shipped.family, architecture, shipped.fields)
    # On the CPU, never the meta device: meta-counted families predict from a meta build, which would make this circular.
    model = build_model(config, shipped.task)
    predicted = parameter_count(config, shipped.task)
    assert sum(p.numel() for p in model.parameters()) == predicted, architecture
    smallest, largest = shipped.count_range
    assert smallest <= predicted <= largest  # what the budget draws above rely on
    assert {d: getattr(model.config, d) for d in architecture} == architecture  # the architecture is what lands in config.json


# -- 3. encoding: decode and encode are inverse; invalid choice lists are rejected, naming the dimension --
# Quotes, backslashes and regex metacharacters, often: error messages quote dimension names.
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " _.-'\"\\[](){}*+?^$|éß漢", max_size=8)
choices = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False), TEXT)
# unique=True means unique under == (so not both 1 and True): lists that are not are rejected (test below).
choice_lists = st.lists(choices, min_size=1, max_size=5, unique=True)
dimension_dicts = st.dictionaries(TEXT.filter(bool), choice_lists, min_size=1, max_size=5)


@st.composite
def spaces_and_encodings(draw) -> tuple[SearchSpace, tuple[int, ...]]:
    space = SearchSpace.from_dict(draw(dimension_dicts))
    return space, draw(st.tuples(*(st.integers(0, n - 1) for n in space.sizes)))


@settings(PROPERTY, max_examples=100)
@given(spaces_and_encodings(), st.randoms(use_true_random=False))
def test_encode_and_decode_are_inverse(space_and_encoding, rng):
    space, encoding = space_and_encoding
    architecture = space.decode(encoding)
    assert space.encode(architecture) == encoding
    again = space.decode(space.encode(architecture))
    assert again == architecture
    assert [type(v) for v in again.values()] == [type(v) for v in architecture.values()]  # not 1 for True
    # As a resumed search reads it back from candidates.jsonl: equal values, new objects.
    assert space.encode(json.loads(json.dumps(architecture))) == encoding
    shuffled = list(architecture.items())
    rng.shuffle(shuffled)
    assert architecture_key(dict(shuffled)) == architecture_key(architecture)


@settings(PROPERTY, max_examples=100)
@given(dimension_dicts, st.data())
def test_empty_or_duplicated_choices_are_rejected_naming_the_dimension(dimensions, data):
    dimension = data.draw(st.sampled_from(sorted(dimensions)), label="bad dimension")
    listed = dimensions[dimension]
    if data.draw(st.booleans(), label="empty"):
        dimensions[dimension], problem = [], "has an empty choice list"
    else:
        repeated = data.draw(st.sampled_from(listed), label="repeated")
        at = data.draw(st.integers(0, len(listed)), label="at")
        dimensions[dimension], problem = [*listed[:at], repeated, *listed[at:]], "twice"
    with pytest.raises(SpaceError, match=re.escape(f"dimension '{dimension}'") + ".*" + problem):
        SearchSpace.from_dict(dimensions)


# Choices that are == but not the same value: JSON tells them apart, list.index does not.
equal_but_distinct = st.one_of(
    st.sampled_from([(0, False), (1, True), (0, 0.0), (1, 1.0), (0.0, -0.0), (True, 1.0)]),
    st.integers(-1000, 1000).map(lambda n: (n, float(n))),
)


@settings(PROPERTY, max_examples=20)
@given(equal_but_distinct, st.booleans())
def test_choices_equal_under_eq_are_rejected_as_duplicates(pair, swap):
    # encode() finds a choice with ==, so keeping both would decode the second as the first.
    listed = list(reversed(pair)) if swap else list(pair)
    with pytest.raises(SpaceError, match=r"dimension 'p' lists choice .* twice"):
        SearchSpace.from_dict({"p": listed})
