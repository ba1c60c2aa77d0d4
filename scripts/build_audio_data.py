"""Build data/spoken_digits/: spoken digits 0-9 for the audio_classification task.

Sources (Debian packages; nothing is downloaded here):

    sudo apt-get install -y espeak-ng flite asterisk-core-sounds-en-wav

- train / validation: `espeak-ng` (formant synthesis), English accents x voice variants, speed and
  pitch drawn per clip (seed 0). The split is BY VOICE: validation voices combine held-out accents
  with held-out variants, so neither the accent nor the variant of a validation clip occurs in training.
- unseen: CMU `flite` (a different, diphone/clustergen synthesizer) with all its general voices,
  two speaking rates each. Never trained on.
- human: the recorded digits of Allison Smith in `asterisk-core-sounds-en-wav` (CC-BY-SA-3.0).
  Never trained on.

Every clip is resampled to 8 kHz (scipy's polyphase resampler), trimmed of leading and trailing
silence, peak-normalised, centred in a 1.0 s window (zero padding) and stored as 8-bit signed PCM:
`data/spoken_digits/<split>.npz` with arrays `audio` (N, 8000) int8, `label` (N,) int64,
`speaker` (N,) str and `sampling_rate` (scalar). Run: `python scripts/build_audio_data.py [--out DIR]`.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import tempfile
import wave
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

RATE = 8000  # Hz, telephone band: the human recordings are 8 kHz already
LENGTH = RATE  # 1.0 s per clip
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
OUT = Path(__file__).resolve().parent.parent / "data" / "spoken_digits"

# espeak-ng English accents and voice variants (espeak-ng-data/voices/!v). Validation takes the
# held-out accents x held-out variants: voices whose accent and variant training never saw.
TRAIN_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029"]
VAL_ACCENTS = ["en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
TRAIN_VARIANTS = ["m1", "m2", "m3", "m6", "f1", "f2", "f4", "klatt", "croak", "Alex", "Andrea", "john"]
VAL_VARIANTS = ["m5", "m7", "f3", "f5", "klatt2", "Annie", "david"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]  # flite -lv (awb_time only says times)
FLITE_STRETCH = [1.0, 1.25]  # duration_stretch: default and slower speech
ASTERISK_DIGITS = Path("/usr/share/asterisk/sounds/en_US_f_Allison/digits")


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM WAV bytes -> float waveform in [-1, 1] and its rate."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"expected mono 16-bit WAV, got {w.getnchannels()} channels x {8 * w.getsampwidth()} bits")
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768, rate


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    g = gcd(rate, RATE)
    return x if rate == RATE else resample_poly(x, RATE // g, rate // g)  # Kaiser-windowed sinc low-pass


def trim(x: np.ndarray, top_db: float = 35.0, frame: int = 80, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing 10 ms frames more than ``top_db`` below the loudest frame; keep 20 ms margins."""
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -top_db)
    start, stop = loud[0] * frame, (loud[-1] + 1) * frame
    return x[max(0, start - margin) : min(len(x), stop + margin)]


def clip(data: bytes, what: str) -> tuple[np.ndarray, int]:
    """WAV bytes -> one fixed-length int8 clip (8 kHz, trimmed, peak 0.95, centred) and its voiced length."""
    x, rate = read_wav(data)
    x = trim(resample(x, rate))
    if len(x) > LENGTH:
        raise ValueError(f"{what}: {len(x) / RATE:.2f} s after trimming, longer than {LENGTH / RATE:.2f} s")
    x = 0.95 * x / np.abs(x).max()
    out = np.zeros(LENGTH)
    start = (LENGTH - len(x)) // 2
    out[start : start + len(x)] = x
    return np.clip(np.round(out * 127), -127, 127).astype(np.int8), len(x)


def run(cmd: list[str]) -> bytes:
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def espeak_split(accents: list[str], variants: list[str], rng: np.random.Generator) -> list[tuple]:
    rows = []
    for accent in accents:
        for variant in variants:
            voice = f"{accent}+{variant}"
            for label, word in enumerate(WORDS):
                speed, pitch = int(rng.integers(130, 201)), int(rng.integers(25, 76))  # words/min, 0-99
                rows.append((voice, label, run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word])))
    return rows


def flite_split() -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        for voice in FLITE_VOICES:
            for stretch in FLITE_STRETCH:
                for label, word in enumerate(WORDS):
                    subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}", "-t", word, "-o", str(out)],
                                   check=True, capture_output=True)
                    rows.append((f"flite:{voice}", label, out.read_bytes()))
    return rows


def human_split() -> list[tuple]:
    return [("asterisk:allison", label, (ASTERISK_DIGITS / f"{label}.wav").read_bytes()) for label in range(10)]


def save(rows: list[tuple], path: Path, rng: np.random.Generator, prefix: str = "") -> None:
    order = rng.permutation(len(rows))  # shuffled: any first-n subset mixes voices and digits
    clips, lengths = zip(*(clip(rows[i][2], f"{rows[i][0]} '{WORDS[rows[i][1]]}'") for i in order))
    speakers = np.array([prefix + rows[i][0] for i in order])
    labels = np.array([rows[i][1] for i in order], dtype=np.int64)
    np.savez_compressed(path, audio=np.stack(clips), label=labels, speaker=speakers, sampling_rate=np.int64(RATE))
    lengths = np.array(lengths) / RATE
    print(f"{path}: {len(labels)} clips, {len(set(speakers))} voices, digits {np.bincount(labels, minlength=10).tolist()}, "
          f"voiced {lengths.min():.2f}-{lengths.max():.2f} s (mean {lengths.mean():.2f}), {path.stat().st_size / 1e3:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    missing = [tool for tool in ("espeak-ng", "flite") if shutil.which(tool) is None]
    if missing or not ASTERISK_DIGITS.is_dir():
        raise SystemExit(f"missing {missing or [str(ASTERISK_DIGITS)]}: "
                         "sudo apt-get install -y espeak-ng flite asterisk-core-sounds-en-wav")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    save(espeak_split(TRAIN_ACCENTS, TRAIN_VARIANTS, rng), args.out / "train.npz", rng, "espeak-ng:")
    save(espeak_split(VAL_ACCENTS, VAL_VARIANTS, rng), args.out / "validation.npz", rng, "espeak-ng:")
    save(flite_split(), args.out / "unseen.npz", rng)
    save(human_split(), args.out / "human.npz", rng)
    total = sum(p.stat().st_size for p in args.out.glob("*.npz"))
    print(f"{args.out}: {total / 1e6:.2f} MB in all")


if __name__ == "__main__":
    main()
