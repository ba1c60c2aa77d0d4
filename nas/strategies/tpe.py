"""TPE through Optuna's ask/tell API (Optuna is an optional dependency: ``pip install 'transformer-nas[tpe]'``).

Each dimension is a categorical parameter. Optuna never sees constraints or repeats: an invalid
architecture is told back as a failed trial, one already evaluated is told its known value, and
TPE is asked again. It costs no evaluation either way; when TPE keeps proposing only those, a
random unseen architecture is proposed instead so the search still moves.
"""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np

from nas.errors import MissingExtra
from nas.settings import TPEConfig
from nas.space import Architecture, Encoding, SearchSpace
from nas.strategies.base import Proposal, UnseenSampler


def _import_optuna():
    try:
        import optuna
    except ImportError as exc:
        raise MissingExtra("strategy=tpe needs Optuna: pip install 'transformer-nas[tpe]' (or pip install optuna)") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class TPEStrategy:
    name = "tpe"

    def __init__(self, space: SearchSpace, config: TPEConfig | None = None, seed: int = 0, initial: Architecture | None = None):
        optuna = _import_optuna()
        self.optuna = optuna
        self.space = space
        self.config = config or TPEConfig()
        self.config.validate()
        self.sampler = UnseenSampler(space, np.random.default_rng(seed))
        with warnings.catch_warnings():  # multivariate TPE is flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.config.n_startup_trials,
                                             multivariate=self.config.multivariate, n_ei_candidates=self.config.n_ei_candidates)
        self.study = optuna.create_study(direction="maximize", sampler=tpe)
        # Optuna takes None/bool/int/float/str choices; anything else is addressed by its index.
        self._choices = {
            name: (list(choices) if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices) else list(range(len(choices))))
            for name, choices in space.dimensions.items()
        }
        if initial is not None:
            self.study.enqueue_trial(self._params(space.encode(initial)))
        self.values: dict[Encoding, float | None] = {}
        self.iteration_stats: list[dict] = []
        self._outstanding: deque[tuple[Encoding, object | None]] = deque()  # (architecture, trial), in ask order

    def _params(self, encoding: Encoding) -> dict:
        return {name: self._choices[name][i] for name, i in zip(self.space.names, encoding, strict=True)}

    def _encoding(self, params: dict) -> Encoding:
        return tuple(self._choices[name].index(params[name]) for name in self.space.names)

    def ask(self) -> Proposal | None:
        """The startup trials all at once (they are random), then one trial at a time."""
        if self._outstanding and len(self.values) + len(self._outstanding) >= self.config.n_startup_trials:
            return None
        TrialState = self.optuna.trial.TrialState
        for _ in range(self.config.max_retries):
            trial = self.study.ask()
            encoding = self._encoding({name: trial.suggest_categorical(name, choices) for name, choices in self._choices.items()})
            if not self.space.is_valid_encoding(encoding):
                self.study.tell(trial, state=TrialState.FAIL)
            elif encoding in self.values:  # already evaluated: its value again, free
                value = self.values[encoding]
                if value is None:
                    self.study.tell(trial, state=TrialState.FAIL)
                else:
                    self.study.tell(trial, value)
            else:
                self.sampler.take(encoding)  # so the random fallback never proposes it again
                return self._propose(encoding, trial)
        encoding = self.sampler.next_random()
        if encoding is None:
            return None
        # Recorded in the study as a trial with fixed parameters once its value is known.
        return self._propose(encoding, None)

    def _propose(self, encoding: Encoding, trial) -> Proposal:
        self._outstanding.append((encoding, trial))
        count = len(self.values) + len(self._outstanding)
        return Proposal(self.space.decode(encoding), iteration=0, episode=count - 1, step=0)

    def state_dict(self) -> dict:
        return {}  # the seed and the values told determine every proposal: a resume replays them

    def tell(self, proposal: Proposal, value: float | None) -> None:
        if not self._outstanding:
            raise RuntimeError("tell() without an outstanding ask()")
        encoding, trial = self._outstanding.popleft()
        self.values[encoding] = value
        TrialState = self.optuna.trial.TrialState
        if trial is None:
            distributions = {name: self.optuna.distributions.CategoricalDistribution(choices) for name, choices in self._choices.items()}
            self.study.add_trial(self.optuna.trial.create_trial(
                params=self._params(encoding), distributions=distributions, value=value,
                state=TrialState.COMPLETE if value is not None else TrialState.FAIL))
        elif value is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, value)

