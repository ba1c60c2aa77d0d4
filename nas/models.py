"""Architecture + task -> Hugging Face config and model, per model family.

A family is a ``transformers`` ``model_type``. Search dimensions use the family's own config
attribute names (or their standard aliases, e.g. ``hidden_size`` for GPT-2's ``n_embd``), so an
architecture's values are exactly what lands in ``config.json``.

``FAMILIES`` holds the hand-written families (closed-form parameter counts, known constraints). Any other
model type ``transformers`` knows (roberta, llama, qwen2, ...) is a generic family (``generic_family``): it fits
the tasks whose Auto class has a head for its config class, is counted by a meta-device build, and is held to the
width/heads constraints its config has.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import json
import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from nas.space import Architecture, Constraint, SearchSpace, SpaceError, check_dimensions
from nas.tasks import TASKS, task_spec


def auto_model(task: str) -> type:
    """The transformers Auto class that builds ``task``'s models (its spec names it)."""
    name = task_spec(task).auto_model
    cls = getattr(transformers, name, None)
    if not (isinstance(cls, type) and name.startswith("AutoModel")):
        raise ValueError(f"task '{task}': auto_model '{name}' is not a transformers AutoModel class")
    return cls


# Self-supervised objectives for pre-training (trainer.pretrain): masked LM for encoders, causal LM for decoders.
PRETRAIN_MODELS = {"mlm": AutoModelForMaskedLM, "clm": AutoModelForCausalLM}


def _layer_params(h: int, i: int) -> int:
    # Attention (q, k, v, out with biases), two LayerNorms, and the two feed-forward projections:
    # the same count for a BERT encoder layer and a GPT-2 block.
    return 4 * h * h + 2 * h * i + 9 * h + i


# Closed-form counts of a family's model under the task's Auto class (the head depends on it); None for a head
# they do not know, which is then counted by building the model.
def _bert_params(cfg: PretrainedConfig, task: str) -> int | None:
    if task_spec(task).auto_model != "AutoModelForSequenceClassification":
        return None
    h, i = cfg.hidden_size, cfg.intermediate_size
    embeddings = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) * h + 2 * h
    n = embeddings + cfg.num_hidden_layers * _layer_params(h, i)
    return n + h * h + h + h * cfg.num_labels + cfg.num_labels  # pooler + classifier


def _gpt2_params(cfg: PretrainedConfig, task: str) -> int | None:
    head = task_spec(task).auto_model
    if head not in ("AutoModelForSequenceClassification", "AutoModelForCausalLM"):
        return None
    h = cfg.n_embd
    i = cfg.n_inner or 4 * h
    n = (cfg.vocab_size + cfg.n_positions) * h + cfg.n_layer * _layer_params(h, i) + 2 * h
    if head == "AutoModelForSequenceClassification":  # score head, no bias; the LM head is tied to the embeddings
        n += h * cfg.num_labels
    return n


def _vit_params(cfg: PretrainedConfig, task: str) -> int | None:
    if task_spec(task).auto_model != "AutoModelForImageClassification":
        return None
    h, p = cfg.hidden_size, cfg.patch_size
    patches = (cfg.image_size // p) ** 2
    embeddings = h + (patches + 1) * h + cfg.num_channels * p * p * h + h  # cls token, positions, patch projection
    n = embeddings + cfg.num_hidden_layers * _layer_params(h, cfg.intermediate_size) + 2 * h
    return n + h * cfg.num_labels + cfg.num_labels  # classifier on the [CLS] token, no pooler


@functools.lru_cache(maxsize=4096)
def _meta_params(config_json: str, model_type: str, task: str) -> int:
    # Families without a closed form: build on the meta device (no memory, ~10-30 ms), once per config.
    fields = json.loads(config_json)
    fields.pop("model_type", None)
    config = AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        return build_model(config, task).num_parameters()


def _built_params(cfg: PretrainedConfig, task: str) -> int:
    return _meta_params(cfg.to_json_string(use_diff=True), cfg.model_type, task)


# (name, check on the built config): what transformers does not validate itself.
HEADS_DIVIDE_HIDDEN = ("num_attention_heads divides hidden_size", lambda c: c.hidden_size % c.num_attention_heads == 0)
PATCH_DIVIDES_IMAGE = ("patch_size divides image_size", lambda c: c.image_size % c.patch_size == 0)
HEADS_DIVIDE_D_MODEL = (
    "encoder and decoder attention heads divide d_model",
    lambda c: c.d_model % c.encoder_attention_heads == 0 and c.d_model % c.decoder_attention_heads == 0,
)
# AST builds patches larger than the spectrogram (the forward pass then fails) and strides larger
# than the patch (mel bins or frames are then silently skipped).
PATCH_FITS_SPECTROGRAM = (
    "patch_size fits the spectrogram and the strides skip no bin or frame",
    lambda c: c.patch_size <= min(c.num_mel_bins, c.max_length)
    and 1 <= c.frequency_stride <= c.patch_size and 1 <= c.time_stride <= c.patch_size,
)


@dataclass(frozen=True)
class Family:
    model_type: str
    tasks: tuple[str, ...]  # tasks whose Auto class has a head for this family (a task's spec may add itself: TaskSpec.families)
    parameter_count: Callable[[PretrainedConfig, str], int | None] = _built_params  # exact count of the task model
    constraints: tuple[tuple[str, Callable[[PretrainedConfig], bool]], ...] = (HEADS_DIVIDE_HIDDEN,)
    pretraining: Optional[str] = None  # self-supervised objective for trainer.pretrain: mlm | clm
    # Its constraints and parameter count read only fields its config keeps as given (none derived when built), so a
    # validity check reads them unbuilt: 0.03 ms instead of 0.4-0.9 ms (PPO checks most of a space; tests/test_models.py).
    checks_on_fields: bool = False


FAMILIES: dict[str, Family] = {
    "bert": Family("bert", ("text_classification",), _bert_params, pretraining="mlm", checks_on_fields=True),
    "gpt2": Family("gpt2", ("text_classification", "language_modeling"), _gpt2_params, pretraining="clm", checks_on_fields=True),
    # ViT silently shrinks the attention width when heads do not divide the hidden size, and
    # never checks that patches tile the image: both are constraints of the space.
    "vit": Family("vit", ("image_classification",), _vit_params, (HEADS_DIVIDE_HIDDEN, PATCH_DIVIDES_IMAGE), checks_on_fields=True),
    # T5's attention width is num_heads * d_kv, independent of d_model: nothing to check.
    "t5": Family("t5", ("translation",), constraints=()),
    "bart": Family("bart", ("translation",), constraints=(HEADS_DIVIDE_D_MODEL,)),
    "marian": Family("marian", ("translation",), constraints=(HEADS_DIVIDE_D_MODEL,)),
    "audio-spectrogram-transformer": Family(
        "audio-spectrogram-transformer", ("audio_classification",), constraints=(HEADS_DIVIDE_HIDDEN, PATCH_FITS_SPECTROGRAM)
    ),
}


def _has_head(auto_class_name: str, config_class: type) -> bool:
    """Whether the transformers Auto class ``auto_class_name`` builds a model from ``config_class``."""
    auto_class = getattr(transformers, auto_class_name, None)
    # _model_mapping (config class -> model class) is how the Auto classes themselves find a model: there is no public accessor.
    mapping = getattr(auto_class, "_model_mapping", None)
    return mapping is not None and config_class in mapping


def _divides(label: str, width: str, heads: str) -> tuple[str, Callable[[PretrainedConfig], bool]]:
    def check(c: PretrainedConfig) -> bool:
        w, h = getattr(c, width, None), getattr(c, heads, None)
        return not (isinstance(w, int) and isinstance(h, int) and h > 0) or w % h == 0

    return label, check


def _generic_constraints(config_class: type) -> tuple[tuple[str, Callable[[PretrainedConfig], bool]], ...]:
    """Heads divide the width wherever the config has both (named as the config names them: DistilBERT's n_heads
    and dim), encoder-decoder heads divide d_model, and grouped-query attention's key/value heads divide the heads."""
    defaults = config_class()
    aliases = getattr(config_class, "attribute_map", {})
    constraints = []
    if isinstance(getattr(defaults, "hidden_size", None), int) and isinstance(getattr(defaults, "num_attention_heads", None), int):
        width, heads = aliases.get("hidden_size", "hidden_size"), aliases.get("num_attention_heads", "num_attention_heads")
        constraints.append(_divides(f"{heads} divides {width}", "hidden_size", "num_attention_heads"))
    if isinstance(getattr(defaults, "d_model", None), int) and isinstance(getattr(defaults, "decoder_attention_heads", None), int):
        constraints.append(_divides("decoder_attention_heads divides d_model", "d_model", "decoder_attention_heads"))
    if hasattr(defaults, "num_key_value_heads") and hasattr(defaults, "num_attention_heads"):
        # None (the default) means as many key/value heads as heads: multi-head attention.
        constraints.append(("num_key_value_heads divides num_attention_heads",
                            lambda c: c.num_key_value_heads is None or c.num_attention_heads % c.num_key_value_heads == 0))
    return tuple(constraints)


class _FieldView:
    """A config's attributes (aliases resolved) from ``fields`` over the config class's declared defaults, without
    building it: a default another field derives (Llama's num_key_value_heads) stays None, as declared."""

    def __init__(self, model_type: str, fields: Mapping[str, Any]):
        config_class = CONFIG_MAPPING[model_type]
        aliases = getattr(config_class, "attribute_map", {})
        self._fields = {aliases.get(k, k): v for k, v in fields.items()}
        self._aliases, self._class = aliases, config_class

    def __getattr__(self, name: str) -> Any:
        name = self._aliases.get(name, name)
        if name in self._fields:
            return self._fields[name]
        return _declared_defaults(self._class).get(name)


@functools.lru_cache(maxsize=None)
def _declared_defaults(config_class: type) -> dict[str, Any]:
    if dataclasses.is_dataclass(config_class):
        return {f.name: f.default for f in dataclasses.fields(config_class) if f.default is not dataclasses.MISSING}
    return vars(config_class())


@functools.lru_cache(maxsize=None)
def generic_family(model_type: str) -> Family | None:
    """Any model type transformers knows, as a family (None if it knows none by that name): the tasks whose Auto class
    has a head for its config class, a parameter count from a meta-device build, the constraints its config has."""
    if model_type not in CONFIG_MAPPING:
        return None
    config_class = CONFIG_MAPPING[model_type]
    # An encoder with a masked LM head (RoBERTa) also has a causal LM class, but it attends both ways unless built
    # with is_decoder=True: next-token prediction would read the next token. Causal LM tasks take decoders only.
    encoder = _has_head("AutoModelForMaskedLM", config_class)
    tasks = tuple(name for name, spec in TASKS.items() if _has_head(spec.auto_model, config_class)
                  and not (encoder and spec.auto_model == "AutoModelForCausalLM"))
    pretraining = ("mlm" if encoder
                   else "clm" if _has_head("AutoModelForCausalLM", config_class) else None)
    return Family(model_type, tasks, constraints=_generic_constraints(config_class), pretraining=pretraining)


def get_family(model_type: str, task: str | None = None) -> Family:
    family = FAMILIES.get(model_type) or generic_family(model_type)
    if family is None:
        close = difflib.get_close_matches(model_type, list(CONFIG_MAPPING.keys()), n=3)
        raise SpaceError(f"search_space.family '{model_type}' is not a transformers model type"
                         + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else "")
                         + f"; a family is any model type transformers.AutoConfig knows (bert, roberta, llama, qwen2, ...)")
    if task is not None and task not in tasks_of(family):
        raise SpaceError(f"search_space.family '{model_type}' does not fit task '{task}' (it fits {tasks_of(family)})")
    return family


def tasks_of(family: Family) -> list[str]:
    """The tasks ``family`` fits: those it names, and those whose spec names it."""
    return [*family.tasks, *(name for name, spec in TASKS.items() if family.model_type in spec.families and name not in family.tasks)]


# RoBERTa-style embeddings number positions from pad_token_id + 1, so a model with max_position_embeddings = the
# task's length fails on a full-length input: such families get pad_token_id + 1 more positions than the task needs.
POSITIONS_AFTER_PADDING = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "data2vec-text"})


def config_fields(model_type: str, architecture: Mapping[str, Any], fixed: Mapping[str, Any] = ()) -> dict[str, Any]:
    """The fields an architecture's HF config is built from: ``fixed`` fields (task-derived), then the architecture."""
    fields = {**dict(fixed), **dict(architecture)}
    if model_type in POSITIONS_AFTER_PADDING and isinstance(fields.get("max_position_embeddings"), int):
        pad = fields.get("pad_token_id")
        fields["max_position_embeddings"] += (pad if isinstance(pad, int) else CONFIG_MAPPING[model_type]().pad_token_id) + 1
    return fields


def build_config(model_type: str, architecture: Mapping[str, Any], fixed: Mapping[str, Any] = ()) -> PretrainedConfig:
    """The HF config of an architecture: the family defaults, then ``fixed`` fields (task-derived), then the architecture."""
    return AutoConfig.for_model(model_type, **config_fields(model_type, architecture, fixed))


def model_positions(config: PretrainedConfig) -> int | None:
    """How many tokens the model embeds (its tokenizer's model_max_length): max_position_embeddings (GPT-2's
    n_positions), less the pad_token_id + 1 positions a RoBERTa-style family skips; None when it has no such limit."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions < 1:
        return None
    if config.model_type in POSITIONS_AFTER_PADDING:
        positions -= (config.pad_token_id or 0) + 1
    return positions


def build_model(config: PretrainedConfig, task: str) -> torch.nn.Module:
    return auto_model(task).from_config(config)


def pretraining_objective(model_type: str) -> str:
    """The family's self-supervised objective (mlm | clm); raises naming the families that have one."""
    objective = get_family(model_type).pretraining
    if objective is None:
        raise SpaceError(f"trainer.pretrain: family '{model_type}' has no self-supervised objective "
                         f"(families that have one: {sorted(k for k, f in FAMILIES.items() if f.pretraining)}, "
                         "or any model type with a masked or causal LM head)")
    return objective


def build_pretraining_model(config: PretrainedConfig) -> tuple[str, torch.nn.Module]:
    """The family's self-supervised model (objective, model) on the same config; its body is then fine-tuned."""
    objective = pretraining_objective(config.model_type)
    return objective, PRETRAIN_MODELS[objective].from_config(config)


def parameter_count(config: PretrainedConfig, task: str) -> int:
    count = get_family(config.model_type).parameter_count(config, task)
    return _built_params(config, task) if count is None else count


def validate_attributes(model_type: str, names: list[str], where: str) -> None:
    defaults = AutoConfig.for_model(model_type)
    unknown = [n for n in names if not hasattr(defaults, n)]
    if unknown:
        raise SpaceError(f"{where}: {unknown} are not attributes of a '{model_type}' config")


# What a value of a config attribute must be, by the attribute's name: transformers checks the types of most
# fields, never their signs or ranges, and a bad value then fails every candidate at build or training time.
_SIZE = re.compile(r"^(num|n|d|max)_|_(size|dim|stride|bins|buckets|distance|heads)$")  # hidden_size, n_embd, d_kv, max_length...
_COUNT = re.compile(r"layers?$")  # num_hidden_layers, n_layer, decoder_layers: 0 layers builds (embeddings only)
_PROBABILITY = re.compile(r"dropout|_prob$|pdrop$|layerdrop$")  # hidden_dropout_prob, attn_pdrop, encoder_layerdrop
_EPSILON = re.compile(r"(^|_)eps(ilon)?$")
_ACTIVATION = re.compile(r"_act$|_act_fn$|^activation_function$|^summary_activation$|^feed_forward_proj$")


def _activations() -> list[str]:
    from transformers.activations import ACT2FN

    return sorted(ACT2FN)


def _field_types(model_type: str) -> dict[str, Any]:
    config_class = type(AutoConfig.for_model(model_type))
    return {f.name: f.type for f in dataclasses.fields(config_class)} if dataclasses.is_dataclass(config_class) else {}


def value_problem(model_type: str, name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the ``model_type`` config's attribute ``name`` (a dimension's choice or a fixed value), or None."""
    from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
    from transformers.utils import logging as hf_logging

    canonical = getattr(type(AutoConfig.for_model(model_type)), "attribute_map", {}).get(name, name)  # gpt2: hidden_size -> n_embd
    if canonical in _field_types(model_type):  # the config's own type check (aliases are set unchecked)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the value alone, against the other defaults, may draw warnings about them
        try:
            AutoConfig.for_model(model_type, **{canonical: value})
        except StrictDataclassFieldValidationError as exc:
            found = re.search(r"expected (.+?), got (\w+)", str(exc))
            why = f"expected {found.group(1)}, got {found.group(2)}" if found else str(exc).strip().splitlines()[-1].strip()
            return f"{value!r} is not a valid '{model_type}' {name}: {why}"
        except StrictDataclassClassValidationError:
            pass  # the value against the other defaults (Llama: hidden_size 30 with 32 heads): the space's constraints judge combinations
        finally:
            hf_logging.set_verbosity(verbosity)
    if value is None or isinstance(value, bool):
        return None
    names = (name, canonical)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if any(_PROBABILITY.search(n) for n in names) and not 0 <= value <= 1:
            return f"{value!r} is not a probability: it must be in [0, 1]"
        if any(_EPSILON.search(n) for n in names) and not value > 0:
            return f"{value!r} is not an epsilon: it must be > 0"
        if isinstance(value, numbers.Integral):
            if any(_COUNT.search(n) for n in names):
                if value < 0:
                    return f"{value!r} is not a number of layers: it must be >= 0"
            elif any(_SIZE.search(n) for n in names) and value < 1:
                return f"{value!r} is not a size: it must be >= 1"
    if isinstance(value, str) and any(_ACTIVATION.search(n) for n in names):
        activation = value.removeprefix("gated-") if canonical == "feed_forward_proj" else value
        if activation not in _activations():
            return f"{value!r} is not an activation transformers knows (one of {_activations()})"
    return None


def check_attribute_values(model_type: str, values: Mapping[str, Any], where: str, choices: bool = True) -> None:
    """SpaceError naming ``<where>.<attribute>`` and the first value that no ``model_type`` config can take: a wrong type,
    a size below 1, a probability outside [0, 1], a non-finite number, an activation transformers does not know.
    ``values``: attribute -> its choices (a dimension) or, with ``choices=False``, its one value (search_space.fixed)."""
    for name, value in values.items():
        for choice in (value if choices else [value]):
            problem = value_problem(model_type, str(name), choice)
            if problem:
                raise SpaceError(f"{where}.{name}: {problem}")


def make_space(
    model_type: str,
    dimensions: Mapping[str, list[Any]],
    task: str,
    fixed: Mapping[str, Any],
    max_params: int | None = None,
    name: str = "space",
) -> SearchSpace:
    """A validated search space for ``model_type`` on ``task``; raises SpaceError naming what is wrong."""
    family = get_family(model_type, task)
    check_dimensions(dimensions)
    validate_attributes(model_type, list(dimensions), f"search_space.dimensions of '{name}'")
    check_attribute_values(model_type, dimensions, "search_space.dimensions")
    if max_params is not None and max_params < 1:
        raise SpaceError(f"search_space.max_params must be >= 1 (or null: no budget), got {max_params}")

    # A validity check asks every constraint about the same architecture in turn: its config is built once for all of
    # them (building one is most of a check's time, and PPO's action masks check hundreds of architectures a search).
    last: list[tuple[str, PretrainedConfig] | None] = [None]  # (architecture as JSON, its config), read and replaced whole

    def config_of(arch: Architecture) -> PretrainedConfig:
        key, known = json.dumps(arch, sort_keys=True, default=str), last[0]
        if known is None or known[0] != key:
            known = last[0] = (key, build_config(model_type, arch, fixed))
        return known[1]

    def on_config(check: Callable[[PretrainedConfig], bool]) -> Callable[[Architecture], bool]:
        return lambda arch: check(config_of(arch))

    def fields_of(arch: Architecture) -> _FieldView:
        return _FieldView(model_type, config_fields(model_type, arch, fixed))

    generic = model_type not in FAMILIES
    # Some configs (Llama) refuse heads that do not divide the width when built: a generic family's fields are checked
    # unbuilt; so are those of a family whose checks read only fields kept as given (the faster way).
    if generic or family.checks_on_fields:
        def on_config(check: Callable[[PretrainedConfig], bool]) -> Callable[[Architecture], bool]:  # noqa: F811
            return lambda arch: check(fields_of(arch))

    constraints = [Constraint(label, on_config(check)) for label, check in family.constraints]
    buildable = tuple(constraints)
    if max_params is not None:
        def within_budget(arch: Architecture) -> bool:
            if generic and not all(c.check(arch) for c in buildable):
                return True  # it cannot be built, let alone counted: the constraint it breaks says so
            count = family.parameter_count(fields_of(arch), task) if family.checks_on_fields else None
            return (parameter_count(config_of(arch), task) if count is None else count) <= max_params

        constraints.append(Constraint(f"at most {max_params:,} parameters", within_budget))
    space = SearchSpace.from_dict(dimensions, constraints, name=name)
    try:
        first = space.first_valid()  # raises when no architecture satisfies the constraints
    except SpaceError:
        if max_params is None:
            raise
        unbudgeted = SearchSpace.from_dict(dimensions, constraints[:-1], name=name)
        try:
            smallest = unbudgeted.decode(unbudgeted.first_valid())
        except SpaceError:
            raise SpaceError(f"search_space.dimensions: no architecture satisfying its constraints "
                             f"({', '.join(c.name for c in unbudgeted.constraints)}) in search space '{name}', "
                             "even without search_space.max_params") from None
        count = parameter_count(build_config(model_type, smallest, fixed), task)
        positions = fixed.get("max_position_embeddings")
        if isinstance(positions, int) and positions > 1:  # is it the positions (task.max_length) that do not fit?
            without = parameter_count(build_config(model_type, smallest, {**fixed, "max_position_embeddings": 1}), task)
            if without <= max_params:
                raise SpaceError(f"task.max_length: {positions:,} positions give the smallest architecture of '{name}' ({smallest}) "
                                 f"{count:,} parameters, {count - without:,} of them position embeddings, over "
                                 f"search_space.max_params={max_params}; lower task.max_length (or raise max_params)") from None
        raise SpaceError(f"search_space.max_params={max_params} is below the smallest architecture: no architecture satisfying "
                         f"the constraints of '{name}' has at most {max_params:,} parameters (the first valid one, {smallest}, "
                         f"has {count:,}); raise it or add smaller choices") from None
    except Exception as exc:  # noqa: BLE001 (a constraint had to build a config or a model that transformers or torch refuse)
        raise SpaceError(f"search_space: checking the constraints of '{name}' failed: an architecture cannot be built as a "
                         f"'{model_type}' {task} model (with search_space.fixed and the task's fields): {type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ''}") from None
    check_buildable(model_type, task, space, fixed, first)
    return space


def check_buildable(model_type: str, task: str, space: SearchSpace, fixed: Mapping[str, Any], first: tuple[int, ...],
                    max_checks: int = 32) -> None:
    """Build the first valid architecture and the last one (among the last ``max_checks``: usually the smallest and the
    largest) on the meta device, with the task's fields: a size that cannot build fails here, not in every candidate.
    No memory is allocated and no random number drawn (the search proposes and scores as without this check)."""
    def build(encoding: tuple[int, ...]) -> bool:
        if encoding != first and not space.is_valid_encoding(encoding):
            return False
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            build_model(build_config(model_type, space.decode(encoding), fixed), task)
        return True

    for encoding in [first, *itertools.islice(itertools.product(*(range(n - 1, -1, -1) for n in space.sizes)), max_checks)]:
        architecture = space.decode(encoding)
        try:
            if build(encoding) and encoding != first:
                return  # the last valid one built too
        except Exception as exc:  # noqa: BLE001 (whatever transformers or torch raise: the architecture cannot build)
            message = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
            raise SpaceError(f"search_space: the architecture {architecture} of '{space.name}' cannot be built as a '{model_type}' "
                             f"{task} model (with search_space.fixed and the task's fields): {type(exc).__name__}: {message}") from None
