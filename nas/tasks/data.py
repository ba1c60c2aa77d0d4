"""Reading a task's data files (the user's or the shipped ones) with pandas, with errors that name the file."""

from __future__ import annotations

import logging
import math
import numbers
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from nas.errors import BadInput

log = logging.getLogger(__name__)


class DataError(BadInput):
    """A data file that is missing, unreadable, empty or lacks a named column."""


# Rows without a value in a column the task reads are dropped with a warning that counts them; when more than this share of
# the rows read lack one, the file is an error instead (a wrong column or a broken export, not a few gaps).
MAX_MISSING_SHARE = 0.10
# Float labels with more distinct values than this, not all whole numbers, are a continuous target (a score, a rating
# average), not classes: an error rather than one class per value. Whole-number floats (1.0, 2.0) are class ids.
MAX_FLOAT_CLASSES = 20


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
    if not path.exists():
        raise DataError(f"{key}: data file '{path}' does not exist")
    if not path.is_file():  # reading a fifo would wait for a writer forever; a device never ends
        raise DataError(f"{key}: '{path}' is not a regular file (a fifo, socket or device); name a data file")
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
    df = drop_missing(df[columns], path, key)
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


def drop_missing(df: pd.DataFrame, path: Path, key: str) -> pd.DataFrame:
    """``df`` without its rows that lack a value; a warning counts them, more than MAX_MISSING_SHARE of the rows is an error."""
    missing = df.isna()
    dropped = int(missing.any(axis=1).sum())
    if not dropped:
        return df
    columns = [c for c in df.columns if missing[c].any()]
    counted = f"{dropped} of the {len(df)} rows read from '{path}' have no value in column {columns}"
    if dropped > MAX_MISSING_SHARE * len(df):
        raise DataError(f"{key}: {counted}: more than {MAX_MISSING_SHARE:.0%} of them, so the file is refused; "
                        "fill in or remove those rows")
    log.warning("%s: %s: those rows are left out", key, counted)
    return df.dropna()


def check_class_labels(labels: Iterable[object], column: str, path: str | Path, key: str, what: str = "label column") -> None:
    """Labels that are classes: NaN is no class, and float labels with more than MAX_FLOAT_CLASSES distinct values, not all
    whole numbers, are a continuous target (one class per row otherwise)."""
    floats = [v for v in labels if isinstance(v, (float, np.floating))]
    if any(math.isnan(v) for v in floats):
        raise DataError(f"{key}: {what} '{column}' of '{path}' holds NaN labels; give every example a class")
    distinct = set(floats)
    if len(distinct) > MAX_FLOAT_CLASSES and not all(float(v).is_integer() for v in distinct):
        examples = ", ".join(f"{float(v):.4g}" for v in sorted(distinct)[:3])
        raise DataError(f"{key}: {what} '{column}' of '{path}' holds {len(distinct)} distinct float values ({examples}, ...): "
                        f"a continuous target, not classes (at most {MAX_FLOAT_CLASSES} distinct float labels, or whole numbers); "
                        "classification needs class labels: bin or round them")


def check_same_label_kinds(train: Iterable[object], other: Iterable[object], column: str, key: str) -> None:
    """The held-out split's labels are of the training labels' kinds: 1/0 against True/False compare equal in Python
    but are other labels in a file (and in the model's id2label)."""
    train_kinds = {_label_kind(v) for v in train}
    kinds: dict[str, set] = {}
    for value in other:
        kinds.setdefault(_label_kind(value), set()).add(value)
    foreign = {kind: values for kind, values in kinds.items() if kind not in train_kinds}
    if foreign:
        kind, values = min(foreign.items())
        shown = sorted(set(train), key=str)
        raise DataError(f"{key}: labels {sorted(values, key=str)[:5]} ({kind}) are not among the training labels "
                        f"{shown[:5]} ({', '.join(sorted(train_kinds))}) of column '{column}'; write the labels the same way in both files")
