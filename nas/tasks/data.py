"""Reading a task's data files (the user's or the shipped ones) with pandas, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


class DataError(ValueError):
    """A data file that is missing, unreadable, empty or lacks a named column."""


def _suffixes(path: Path) -> list[str]:
    return [s for s in path.suffixes if s not in (".gz", ".bz2", ".zip", ".xz")]


def read_table(path: str | Path, columns: list[str], key: str, nrows: int | None = None) -> pd.DataFrame:
    """Rows of ``path`` (CSV, TSV, JSON lines, Parquet or plain text: one ``text`` row a line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{key}: data file '{path}' does not exist")
    kind = (_suffixes(path) or [""])[-1]
    try:
        if kind == ".csv":
            df = pd.read_csv(path, nrows=nrows)
        elif kind == ".tsv":
            df = pd.read_csv(path, sep="\t", nrows=nrows)
        elif kind in (".jsonl", ".json"):
            df = pd.read_json(path, lines=True, nrows=nrows)
        elif kind == ".parquet":
            df = pd.read_parquet(path)
        elif kind == ".txt":
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            df = pd.DataFrame({"text": lines})
        else:
            raise DataError(f"{key}: '{path}' is not a .csv, .tsv, .jsonl, .parquet or .txt file")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{key}: cannot read '{path}': {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{key}: '{path}' has no column {missing} (columns: {list(df.columns)})")
    df = df[columns].dropna()
    if nrows is not None:
        df = df.head(nrows)
    if df.empty:
        raise DataError(f"{key}: '{path}' has no rows")
    return df.reset_index(drop=True)
