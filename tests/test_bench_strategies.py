"""The strategies benchmark's landscapes and report (bench/landscapes.py, bench/strategies.py), on tiny settings."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from landscapes import LANDSCAPES, TUNED_ON  # noqa: E402


def test_the_tables_are_real_trainings_and_the_top_one_percent_is_counted_right():
    for name, rows in (("bert-accuracy", 405), ("vit-accuracy", 486)):
        land = LANDSCAPES[name]()
        assert len(land.values) == rows
        assert sum(land.values >= land.threshold) >= int(np.ceil(0.01 * rows))  # ties may add more
        valid = [e for e in land.space.all_encodings() if land.space.is_valid_encoding(e)]
        assert len(valid) == rows  # the space's constraint is "in the table"
    assert set(TUNED_ON) <= set(LANDSCAPES)


def test_synthetic_landscapes_are_fixed_and_a_poor_start_is_poor():
    a, b = LANDSCAPES["synth-interacting-poor-start"](), LANDSCAPES["synth-interacting-poor-start"]()
    assert np.array_equal(a.values, b.values) and a.initial == b.initial
    assert a.lookup(a.initial) <= np.quantile(a.values, 0.1)
    assert len(a.values) == 5**6


@pytest.mark.slow
def test_the_report_compares_every_variant_with_tpe(tmp_path):
    out = tmp_path / "report"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "strategies.py"), "--landscapes", "synth-additive", "--seeds", "3", "--slow-seeds", "2",
                          "--budget", "12", "--workers", "1", "--variants", "random", "tpe", "ppo", "ppo-lr0", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = (out / "report.md").read_text()
    assert "## The bars" in report and "synth-additive (tuned)" in report and "| ppo-lr0 |" in report
    # The report is rebuilt from its results alone.
    again = tmp_path / "again"
    subprocess.run([sys.executable, str(ROOT / "bench" / "strategies.py"), "--from-results", str(out / "results.json"), "--out", str(again)],
                   check=True, capture_output=True, timeout=300)
    assert (again / "report.md").read_text().split("\n", 1)[1] == report.split("\n", 1)[1]  # the same but for the date line


def test_the_median_difference_interval_covers_a_known_shift_and_is_seeded():
    from strategies import median_difference_interval

    hits = np.random.default_rng(1).integers(10, 60, size=100)
    low, high = median_difference_interval(hits + 10, hits)
    assert 0 < low <= 10 <= high  # a shift of 10 over 100 seeds is told apart from none
    same = median_difference_interval(hits, hits)
    assert same[0] <= 0 <= same[1]
    assert median_difference_interval(hits, hits) == same  # a rebuilt report gives the same interval
