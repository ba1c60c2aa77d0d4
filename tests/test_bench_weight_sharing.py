"""The weight-sharing benchmarks' arithmetic and reports (bench/weight_sharing_seeds.py, bench/weight_sharing_search.py),
on made-up scores: no training."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import weight_sharing_search  # noqa: E402
import weight_sharing_seeds as seeds  # noqa: E402
from weight_sharing import read_table  # noqa: E402


def test_a_constant_score_ranks_nothing_and_beyond_size_sees_through_a_size_trend():
    assert seeds.tau([0.5] * 6, [1, 2, 3, 4, 5, 6]) == 0.0
    params = np.array([1e4, 2e4, 4e4, 8e4, 1.6e5, 3.2e5])
    truth = [0.3, 0.1, 0.2, 0.0, 0.4, 0.5]
    assert seeds.beyond_size(truth, truth, list(params)) == pytest.approx(1.0)
    assert seeds.beyond_size(list(np.array(truth) + 5 * np.log(params)), truth, list(params)) == pytest.approx(1.0)  # a size trend added


def test_the_seed_report_counts_seeds_at_the_goal_and_ranks_the_truth_itself_perfectly():
    truth = read_table(seeds.TRUTH)
    keys = sorted(truth)
    perfect = {k: {"accuracy": truth[k]["best_accuracy"], "-loss": truth[k]["best_accuracy"]} for k in keys}
    constant = {k: {"accuracy": 0.5, "-loss": -0.7} for k in keys}
    runs = [{"seed": s, "rule": "sandwich", "subnet_steps": 12, "train_seconds": 1.0, "last_loss": 0.5, "scores": scores}
            for s, scores in enumerate([perfect, constant, perfect])]
    text = seeds.report(runs, {}, seeds.TRUTH, "python bench/weight_sharing_seeds.py")
    assert "| (b) weight sharing, sandwich, 12 subnet steps, accuracy | 3 | 1.000 [0.500, 1.000] | 0.000 to 1.000 | 2/3 |" in text
    assert "| sandwich | 12 | -loss | 2 | 3 | 1.000 [1.000, 1.000] | 1.000 | 3/3 |" in text  # a constant column adds nothing
    assert text.count("| sandwich | 12 | ") == 3 + 2 * 2  # a row per super-network; ensembles of k = 2 and 3 for each score


def test_the_end_to_end_report_pairs_each_mode_with_the_default_search_by_seed():
    rows = [{"mode": m, "seed": s, "wall_seconds": w, "final_test_accuracy": a}
            for s in range(6) for m, w, a in (("standalone", 90.0, 0.70), ("weight_sharing", 45.0, 0.72 + 0.001 * s))]
    [line] = [x for x in weight_sharing_search.paired(rows, ["standalone", "weight_sharing"]) if x.startswith("| weight_sharing")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "6" and cells[2] == "+0.0225 [+0.0200, +0.0250]"
    assert float(cells[3]) == pytest.approx(0.03125, abs=1e-4)  # six positive differences: the smallest two-sided Wilcoxon p
    assert cells[4] == "0.50 [0.50, 0.50]"
