"""Which data a task's settings name: the shipped task's own files, or the user's.

``nas task.train_file=my_train.csv task.validation_file=my_val.csv`` keeps every other value of the
shipped task's YAML, including those that describe the shipped data only: its test split(s) and its
class names. Those apply to the shipped data alone; for the user's files they are dropped (a test
split or class names given for the user's data are kept). Light: no torch, no transformers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas.config import CONF_DIR

# Settings of a shipped task that describe its data, not the task: kept only for that data.
SHIPPED_DATA_KEYS = ("test_file", "test_files", "label_names")


def file_digest(path: str, length: int = 8) -> str:
    """A short SHA-256 of a file's bytes: the same data gives the same digest, wherever its file is."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:length]


def shipped_task(name: str) -> DictConfig | None:
    """The shipped task's YAML (conf/task/<name>.yaml), or None for a task nas does not ship."""
    path = CONF_DIR / "task" / f"{name}.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def shipped_value(conf: DictConfig, key: str) -> Any:
    """A shipped task's value, its ${nas_data:...} resolved (None when its file is not installed here)."""
    try:
        value = OmegaConf.select(conf, key)
    except Exception:  # a shipped data file that is not installed: nothing to compare with
        return None
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def same_file(a: str | None, b: str | None) -> bool:
    return isinstance(a, str) and isinstance(b, str) and Path(a).resolve() == Path(b).resolve()


def on_shipped_data(task: Any) -> bool:
    """Whether the task trains and validates on its shipped files."""
    shipped = shipped_task(task.name)
    return shipped is not None and same_file(task.train_file, shipped_value(shipped, "train_file")) \
        and same_file(task.validation_file, shipped_value(shipped, "validation_file"))


def own_data_settings(task: Any) -> Any:
    """``task`` without the shipped data's test split(s) and class names when it reads the user's own files
    (a value that differs from the shipped one was given for the user's data and is kept)."""
    shipped = shipped_task(task.name)
    if shipped is None or on_shipped_data(task):
        return task
    fields = {f.name for f in dataclasses.fields(task)}
    dropped: dict[str, Any] = {}
    if "test_file" in fields and same_file(task.test_file, shipped_value(shipped, "test_file")):
        dropped["test_file"] = None
    if "test_files" in fields:
        shipped_sets = shipped_value(shipped, "test_files") or {}
        kept = {k: v for k, v in task.test_files.items() if not same_file(v, shipped_sets.get(k))}
        if kept != task.test_files:
            dropped["test_files"] = kept
    if "label_names" in fields and task.label_names is not None and _names(task.label_names) == _names(shipped_value(shipped, "label_names")):
        dropped["label_names"] = None
    return dataclasses.replace(task, **dropped) if dropped else task


def _names(names: Any) -> dict[str, str]:
    return {str(k): v for k, v in (names or {}).items()}
