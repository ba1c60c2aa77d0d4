"""What a strategy is, declared: its name, its settings dataclass and its class; and the registry of strategies.

This module imports nothing heavy (a config loads without torch or Optuna): a spec's ``load`` imports the
strategy's class when a search is built. The shipped strategies are declared in nas/strategies/__init__.py;
another strategy registers itself the same way::

    register_strategy(StrategySpec(name="anneal", settings=AnnealConfig, load=lambda: AnnealStrategy))

and ships a Hydra option ``strategy/anneal.yaml`` that puts its settings under ``anneal.*``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, is_dataclass
from typing import Any, Optional

from nas.errors import BadInput


@dataclass(frozen=True)
class StrategySpec:
    """A strategy, declared. Its class is built as ``cls(space, settings, seed=seed, initial=initial)``, or
    ``cls(space, seed=seed, initial=initial)`` when it has no settings; it keeps the ask/tell protocol of
    nas/strategies/base.py (``Strategy``)."""

    name: str  # the strategy= option; its settings sit under the top-level key of the same name
    settings: Optional[type]  # its settings dataclass (a validate() method, if any, checks them); None: it has none
    load: Callable[[], type]  # returns the strategy's class, importing its module on first use

    def settings_of(self, value: Any) -> Any:
        """``value`` (the settings dataclass, a dict of its fields, or None: the defaults) as the settings dataclass."""
        if self.settings is None:
            if value:
                raise BadInput(f"strategy '{self.name}' has no settings; got {value!r}")
            return None
        settings = value if is_dataclass(value) else self.settings(**dict(value or {}))
        if hasattr(settings, "validate"):
            settings.validate()
        return settings

    def build(self, space: Any, settings: Any = None, seed: int = 0, initial: Any = None) -> Any:
        cls = self.load()
        if self.settings is None:
            self.settings_of(settings)
            return cls(space, seed=seed, initial=initial)
        return cls(space, self.settings_of(settings), seed=seed, initial=initial)


STRATEGIES: dict[str, StrategySpec] = {}


def register_strategy(spec: StrategySpec) -> StrategySpec:
    """Add ``spec`` to the registry (replacing a strategy of the same name): ``strategy=<name>`` then finds it."""
    if spec.settings is not None and not is_dataclass(spec.settings):
        raise TypeError(f"strategy '{spec.name}': settings must be a dataclass (or None), got {spec.settings!r}")
    STRATEGIES[spec.name] = spec
    return spec


def strategy_spec(name: str) -> StrategySpec:
    try:
        return STRATEGIES[str(name)]
    except KeyError:
        raise BadInput(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}") from None


def settings_keys() -> Mapping[str, type]:
    """The top-level config key of each registered strategy with settings -> its settings dataclass."""
    return {name: spec.settings for name, spec in STRATEGIES.items() if spec.settings is not None}
