"""Rebuild data/bible_en_es/: verse-aligned English -> Spanish Bible pairs (see data/README.md).

Both texts are public domain and come from Debian, read with ``diatheke``:
    apt-get install -y diatheke sword-text-web sword-text-sparv
    python scripts/build_translation_data.py

English: World English Bible (SWORD module engWEB2015eb, NRSVA versification). Spanish: Reina-Valera
1909 (module spaRV1909eb, KJV versification). Markup and headings are stripped, RV1909's capitalised
chapter openings ("EN el principio") re-cased, and verses aligned by reference. The Spanish text keeps
the Hebrew chapter/verse division in a few places (e.g. Job 38-40, Jonah 2, Numbers 30) and puts the
psalm titles into verse 1, so chapters whose verses do not line up are dropped (see ``aligned``), as
are all psalm first verses and pairs whose lengths disagree (Spanish/English characters outside
0.6-1.7). Kept: English verses of at most --max-words words. Validation and test are whole held-out
chapters (random, seed 0), so no chapter is on two sides; pairs whose English text also occurs in an
earlier split are dropped from them. Every split is shuffled (seed 0): the first N rows are a random
subset. Rerunnable: the same packages give byte-identical files.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "data"
SEED = 0
ENGLISH, SPANISH = "engWEB2015eb", "spaRV1909eb"
# "Genesis 1:1: ", "I Samuel 24:2: ", "Song of Solomon 2:1: ", "Revelation of John 22:21: ".
REFERENCE = re.compile(r"(?:^|(?<=\s))((?:I{1,3} )?[A-Z][a-z]+(?: of [A-Z][a-z]+)?) (\d+):(\d+): ", re.MULTILINE)
UPPER = "A-ZÁÉÍÓÚÑÜ"


def read_module(module: str) -> dict[tuple[str, int, int], str]:
    """(book, chapter, verse) -> plain verse text of a SWORD Bible module."""
    text = subprocess.run(
        ["diatheke", "-b", module, "-f", "plaintext", "-k", "Genesis 1:1-Revelation 22:21"],
        check=True, capture_output=True, text=True,
    ).stdout
    text = re.sub(r"\(\w+\)\s*$", "", text)  # diatheke's trailing "(module)"
    text = re.sub(r"<(title|speaker)\b[^>]*>.*?</\1>", " ", text, flags=re.DOTALL)  # headings, not verse text
    text = text.replace("</w><w", "</w> <w")
    # Structural milestones (poetry lines, paragraphs, lists) can sit right before a reference.
    text = re.sub(r"<(?:l|lg|lb|div|chapter|milestone|list|/list|item|/item)\b[^>]*>", " ", text)
    text = re.sub(r"<[^>]+>", "", text)
    parts = REFERENCE.split(text)
    return {
        (book, int(chapter), int(verse)): re.sub(r"\s+", " ", body).strip()
        for book, chapter, verse, body in zip(parts[1::4], parts[2::4], parts[3::4], parts[4::4])
    }


def fix_drop_caps(verses: dict[tuple[str, int, int], str]) -> dict[tuple[str, int, int], str]:
    """RV1909 sets the first word(s) of a chapter in capitals ("EN el principio", "Y MOISÉS dijo"):
    re-case each as it is usually written elsewhere in the text (lower case, or capitalised for names)."""
    usual = Counter(w for t in verses.values() for w in re.findall(rf"(?<=[a-záéíóúñü,;] )[{UPPER}]?[a-záéíóúñü]+", t))

    def recase(match: re.Match) -> str:
        words = match.group(2).split(" ")
        out = []
        for i, w in enumerate(words):
            lower, title = w.lower(), w.capitalize()
            out.append(title if i == 0 or usual[title] > usual[lower] else lower)
        return match.group(1) + " ".join(out)

    lead = re.compile(rf"^([¿¡(]?)([{UPPER}]+(?: [{UPPER}]+)*)\b(?![a-záéíóúñü])")
    return {key: lead.sub(recase, text) for key, text in verses.items()}


def aligned(en: dict, es: dict) -> set[tuple[str, int]]:
    """Chapters whose verses line up: no empty verse on either side, verse lengths correlate (r >= 0.3)
    and better at offset 0 than shifted by one verse (a shifted division correlates better shifted)."""
    chapters = defaultdict(list)
    for key in es:
        chapters[key[:2]].append(key)
    good = set()
    for chapter, keys in chapters.items():
        keys.sort()
        if any(not en.get(k) or not es[k] for k in keys):
            continue
        a = np.array([len(en[k]) for k in keys], float)
        b = np.array([len(es[k]) for k in keys], float)
        if len(keys) < 4:
            good.add(chapter)
            continue
        r0 = np.corrcoef(a, b)[0, 1]
        shifted = max(np.corrcoef(a[1:], b[:-1])[0, 1], np.corrcoef(a[:-1], b[1:])[0, 1])
        if r0 >= 0.3 and r0 > shifted:
            good.add(chapter)
    return good


def build(max_words: int, n_train: int, n_eval: int, out: Path) -> None:
    en, es = read_module(ENGLISH), fix_drop_caps(read_module(SPANISH))
    good = aligned(en, es)
    rows = []
    for (book, chapter, verse), spanish in es.items():
        english = en.get((book, chapter, verse), "")
        if (book, chapter) not in good or (book == "Psalms" and verse == 1):
            continue
        if not english or not spanish or len(english.split()) > max_words:
            continue
        if not 0.6 <= len(spanish) / len(english) <= 1.7:  # a residual misalignment
            continue
        rows.append({"en": english, "es": spanish, "reference": f"{book} {chapter}:{verse}", "chapter": f"{book} {chapter}"})
    df = pd.DataFrame(rows)
    print(f"{len(en)} English / {len(es)} Spanish verses, {len(good)} aligned chapters, {len(df)} pairs of <= {max_words} English words")
    rng = np.random.default_rng(SEED)
    in_order = df["chapter"].unique().tolist()  # canonical order
    chapters = [in_order[i] for i in rng.permutation(len(in_order))]
    held, count = {"validation": [], "test": []}, {"validation": 0, "test": 0}
    per_chapter = df["chapter"].value_counts()
    # Held-out chapters, drawn at random until each split has n_eval pairs (a little margin for de-duplication).
    for name, chosen in held.items():
        while count[name] < n_eval * 1.05:
            chapter = chapters.pop()
            chosen.append(chapter)
            count[name] += per_chapter[chapter]
    train = df[df["chapter"].isin(chapters)].drop_duplicates(["en", "es"])
    splits = {"train": train.sample(n=min(n_train, len(train)), random_state=SEED)}
    seen = set(train["en"])
    for name, chs in held.items():
        part = df[df["chapter"].isin(chs) & ~df["en"].isin(seen)].drop_duplicates("en")
        seen |= set(part["en"])
        splits[name] = part.sample(frac=1.0, random_state=SEED).head(n_eval)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        path = out / f"{name}.csv.gz"
        part[["en", "es", "reference"]].to_csv(path, index=False, compression={"method": "gzip", "mtime": 0})
        words = part["en"].str.split().str.len()
        print(f"{out.name}/{name}: {len(part)} pairs from {part['chapter'].nunique()} chapters, "
              f"{words.sum()} English words (mean {words.mean():.1f}), {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-words", type=int, default=20, help="longest English verse kept (words)")
    parser.add_argument("--train", type=int, default=8000, help="training pairs")
    parser.add_argument("--eval", type=int, default=500, help="validation and test pairs each")
    parser.add_argument("--out", type=Path, default=DATA / "bible_en_es")
    args = parser.parse_args()
    build(args.max_words, args.train, args.eval, args.out)
