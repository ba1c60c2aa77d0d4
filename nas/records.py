"""A candidate's record: one line of a search's candidates.jsonl, defined once.

The runner writes it, a resume replays it, the tracker logs it to the candidate's MLflow run,
``nas-final`` picks the best one, and the plots draw from it. Adding a field here is the whole change.
Light imports only (no torch): ``nas-final`` and the plots read records before any model exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.search import Evaluation

# Evaluation.info keys a record keeps; the rest (losses, tracebacks) go to MLflow only.
_INFO_FIELDS = ("metrics", "num_parameters", "train_seconds", "eval_seconds", "pretrain_seconds", "latency_ms", "metric_reward", "steps",
                "checkpoints")


def _metric(**kwargs: Any) -> Any:
    """A field the candidate's MLflow run carries as a metric of the same name (when it is set)."""
    return field(metadata={"mlflow_metric": True}, **kwargs)


_NOT_SAVED = {"saved": False}


@dataclass
class CandidateRecord:
    """One evaluated candidate, as candidates.jsonl holds it (the fields in this order)."""

    index: int
    architecture: dict[str, Any]
    architecture_hash: str
    status: str  # "ok", "failed", "over_budget", "stopped" (a hurdle ended its training)
    reward: float | None = _metric(default=None)  # what the strategy maximised
    metrics: dict[str, float] = field(default_factory=dict)  # the task's validation metrics at the last step
    num_parameters: int | None = _metric(default=None)
    train_seconds: float | None = _metric(default=None)
    eval_seconds: float | None = _metric(default=None)
    pretrain_seconds: float | None = _metric(default=None)
    latency_ms: float | None = _metric(default=None)
    metric_reward: float | None = _metric(default=None)  # the metric's reward before a cost traded against it
    steps: int | None = _metric(default=None)
    checkpoints: list[Any] = field(default_factory=list)  # [step, metrics] at each multi-fidelity checkpoint
    seconds: float = _metric(default=0.0)  # the whole candidate, as the search waited for it
    iteration: int = 0
    episode: int = 0
    step: int = 0
    error: str | None = None
    error_type: str | None = None
    mlflow_run_id: str | None = None
    # Curves MLflow gets but candidates.jsonl does not (too long for a line): [step, loss].
    losses: list[Any] = field(default_factory=list, metadata=_NOT_SAVED, repr=False, compare=False)
    pretrain_losses: list[Any] = field(default_factory=list, metadata=_NOT_SAVED, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    # -- to and from the search's Evaluation -----------------------------------------------------
    @classmethod
    def from_evaluation(cls, e: Evaluation, mlflow_run_id: str | None = None) -> CandidateRecord:
        from nas.evaluators import error_type_of

        info = e.info
        kept = {k: info[k] for k in _INFO_FIELDS if info.get(k) is not None}
        return cls(index=e.index, architecture=e.architecture, architecture_hash=e.key, status=e.status, reward=e.value, **kept,
                   seconds=e.seconds, iteration=e.iteration, episode=e.episode, step=e.step, error=e.error,
                   error_type=error_type_of(e.error) if e.error else None, mlflow_run_id=mlflow_run_id,
                   losses=info.get("losses", []), pretrain_losses=info.get("pretrain_losses", []))

    def to_evaluation(self) -> Evaluation:
        """The Evaluation a resume replays (what the strategy was told, and what the runner reports)."""
        from nas.search import Evaluation

        info = {k: getattr(self, k) for k in _INFO_FIELDS if getattr(self, k) is not None}
        return Evaluation(index=self.index, architecture=self.architecture, key=self.architecture_hash, value=self.reward,
                          status=self.status, iteration=self.iteration, episode=self.episode, step=self.step, error=self.error,
                          seconds=self.seconds, info=info)

    # -- to and from a JSON line ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("saved", True)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> CandidateRecord:
        """A saved record; fields added since it was written take their defaults, unknown keys are ignored."""
        missing = [k for k in _REQUIRED if k not in row]
        if missing:
            raise ValueError(f"not a candidate record: no {', '.join(missing)}")
        return cls(**{k: v for k, v in row.items() if k in _SAVED and (v is not None or k in ("reward", "error"))})

    @classmethod
    def from_json(cls, line: str) -> CandidateRecord:
        return cls.from_dict(json.loads(line))

    def mlflow_metrics(self) -> dict[str, float]:
        """The record's numbers a candidate's MLflow run carries (metric_reward only when a cost made it differ from reward)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("mlflow_metric")}
        if values["metric_reward"] == self.reward:
            values["metric_reward"] = None
        return {k: float(v) for k, v in values.items() if v is not None}


_REQUIRED = [f.name for f in dataclasses.fields(CandidateRecord) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
_SAVED = {f.name for f in dataclasses.fields(CandidateRecord) if f.metadata.get("saved", True)}


def as_rows(records: Iterable[CandidateRecord | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records as mappings, for the code that also reads hand-made or older rows (plots, Pareto tables)."""
    return [r.to_dict() if isinstance(r, CandidateRecord) else r for r in records]


def load_records(path: str | Path, drop_torn_last: bool = False) -> list[CandidateRecord]:
    """A search's candidates.jsonl, e.g. to redraw its plots afterwards.

    ``drop_torn_last``: a last line that is not JSON (cut by a kill mid-write) is left out rather than an error.
    """
    return records_in(Path(path).read_text(), path, drop_torn_last)


def records_in(text: str, path: str | Path, drop_torn_last: bool = False) -> list[CandidateRecord]:
    """The records of candidates.jsonl's ``text`` (read from ``path``, which errors name)."""
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(CandidateRecord.from_json(line))
        except json.JSONDecodeError as exc:
            if drop_torn_last and number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not a JSON record ({exc})") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: line {number} is not a candidate record ({exc})") from exc
    return records


def append_record(path: Path, record: CandidateRecord) -> None:
    """One line, on disk before the search goes on: a kill loses no recorded candidate."""
    try:
        with Path(path).open("a") as f:
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # write() does not say where
