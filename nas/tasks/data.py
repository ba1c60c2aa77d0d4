"""Reading a task's data files (the user's or the shipped ones) with pandas, with errors that name the file."""

from __future__ import annotations

import logging
import numbers
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data file that is missing, unreadable, empty or lacks a named column."""


def _suffixes(path: Path) -> list[str]:
    return [s for s in path.suffixes if s not in (".gz", ".bz2", ".zip", ".xz")]


def size_key(key: str) -> str:
    """The setting that sizes the subset read from the file setting ``key``: task.train_file -> task.train_size."""
    return {"task.validation_file": "task.val_size", "trainer.pretrain.corpus_file": "trainer.pretrain.corpus_size"}.get(
        key, key.replace("_file", "_size"))


def check_data_file(path: str | Path, key: str) -> Path:
    """``path`` as a Path, when it is a non-empty file; else a DataError naming ``key`` and the file."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{key}: '{path}' is a directory, not a data file")
    if not path.is_file():
        raise DataError(f"{key}: data file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"{key}: '{path}' is empty (0 bytes)")
    return path


def check_npz(path: Path, key: str, arrays: str) -> None:
    """A .npz file that is a zip archive (what numpy writes), else a DataError naming ``key`` and the file."""
    if path.suffix != ".npz":
        raise DataError(f"{key}: '{path}' is not a .npz file (arrays {arrays})")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{key}: '{path}' is not a .npz archive (not a zip file: write it with numpy.savez)")


def warn_if_short(rows: int, nrows: int | None, path: Path, key: str) -> None:
    """``task.train_size`` and friends are "the first N": a file with fewer rows is used whole, with a warning."""
    if nrows is not None and rows < nrows:
        log.warning("%s=%d but '%s' has only %d rows: all %d are used", size_key(key), nrows, path, rows, rows)


def read_table(path: str | Path, columns: list[str], key: str, nrows: int | None = None) -> pd.DataFrame:
    """Rows of ``path`` (CSV, TSV, JSON lines, Parquet or plain text: one ``text`` row a line), UTF-8 encoded."""
    path = check_data_file(path, key)
    kind = (_suffixes(path) or [""])[-1]
    try:
        if kind == ".csv":
            df = pd.read_csv(path, nrows=nrows, encoding="utf-8")
        elif kind == ".tsv":
            df = pd.read_csv(path, sep="\t", nrows=nrows, encoding="utf-8")
        elif kind in (".jsonl", ".json"):
            df = pd.read_json(path, lines=True, nrows=nrows, encoding="utf-8")
        elif kind == ".parquet":
            df = pd.read_parquet(path)
        elif kind == ".txt":
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            df = pd.DataFrame({"text": lines})
        else:
            raise DataError(f"{key}: '{path}' is not a .csv, .tsv, .jsonl, .parquet or .txt file")
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"{key}: '{path}' is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start} "
                        "cannot be decoded); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{key}: '{path}' is empty (no header, no rows)") from None
    except Exception as exc:
        raise DataError(f"{key}: cannot read '{path}': {exc}") from exc
    warn_if_short(len(df), nrows, path, key)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{key}: '{path}' has no column {missing} (columns: {list(df.columns)})")
    df = df[columns].dropna()
    if nrows is not None:
        df = df.head(nrows)
    if df.empty:
        raise DataError(f"{key}: '{path}' has no rows")
    return df.reset_index(drop=True)


def _label_kind(value: object) -> str:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return "strings"
        return "numbers written as strings"
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, numbers.Number):
        return "numbers"
    return type(value).__name__


def check_label_types(labels: Iterable[object], column: str, path: str | Path, key: str) -> None:
    """Labels of one kind: a column mixing numbers and strings (1, "pos", 0) is a data error, not three classes."""
    kinds: dict[str, list] = {}
    for value in labels:
        examples = kinds.setdefault(_label_kind(value), [])
        if len(examples) < 3 and value not in examples:
            examples.append(value)
    if len(kinds) > 1:
        found = " and ".join(f"{kind} ({', '.join(repr(v) for v in examples)})" for kind, examples in sorted(kinds.items()))
        raise DataError(f"{key}: label column '{column}' of '{path}' mixes label types: {found}; "
                        "give every label the same type (all numbers or all strings)")
