"""Search plots: the series plotted are checked against numbers worked out by hand, and the figures against the series."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from nas.records import load_records
from nas.plots import (
    BEST_SO_FAR,
    REWARD_PER_ITERATION,
    best_so_far,
    best_so_far_figure,
    main,
    moving_mean,
    reward_label,
    reward_per_iteration,
    reward_per_iteration_figure,
    write_search_plots,
)
from tests.conftest import TINY, compose_config

PNG_SIZE = (900, 576)  # 7.5 x 4.8 inches at 120 dpi, as the Pareto plot
NAN = math.nan


def record(index, iteration, reward, metrics=None, status="ok", params=60_000, episode=0, step=0, steps=4, **extra):
    """One candidates.jsonl row with the fields the runner writes."""
    failed = status != "ok"
    row = {"index": index, "architecture": {"num_hidden_layers": 1 + index % 2, "hidden_size": 32 * (1 + index % 3)},
           "architecture_hash": f"{index:012x}", "status": status, "reward": None if failed else reward,
           "metrics": {} if failed else (metrics if metrics is not None else {"accuracy": reward, "macro_f1": reward - 0.05}),
           "num_parameters": params, "train_seconds": None if failed else 0.8, "eval_seconds": None if failed else 0.1,
           "pretrain_seconds": None, "latency_ms": None, "metric_reward": None if failed else reward,
           "steps": None if failed else steps, "checkpoints": [] if failed else [[steps, metrics or {"accuracy": reward}]],
           "seconds": 1.0, "iteration": iteration, "episode": episode, "step": step,
           "error": "FloatingPointError: training loss became nan at step 3" if failed else None, "mlflow_run_id": f"{index:032x}"}
    row.update(extra)
    return row


def ppo_records():
    """Three PPO iterations: iteration 1 has a failure, iteration 2 only failures."""
    return [
        record(0, 0, 0.60, params=60_000), record(1, 0, 0.64, params=90_000, episode=0, step=1),
        record(2, 0, 0.58, params=120_000, episode=1, step=1),
        record(3, 1, 0.70, params=150_000), record(4, 1, None, status="failed", params=300_000), record(5, 1, 0.66, params=80_000),
        record(6, 2, None, status="failed", params=310_000),
        record(7, 3, 0.62, params=70_000), record(8, 3, 0.72, params=200_000),
    ]


def lm_records():
    """A language-modelling search: reward = -loss = -ln(perplexity), perplexity from 2000 (near untrained) to 150."""
    rows = []
    for index, (iteration, perplexity) in enumerate([(0, 2000.0), (0, 400.0), (1, 300.0), (1, 900.0), (2, 150.0), (2, 220.0)]):
        loss = math.log(perplexity)
        rows.append(record(index, iteration, -loss, metrics={"loss": loss, "perplexity": perplexity}, params=100_000 + 20_000 * index))
    return rows


def nan_equal(a, b):
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == pytest.approx(y) for x, y in zip(a, b))


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == PNG_SIZE
        # Not blank: a plot has many colours (white, grey dots, the lines, text).
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


def line(ax, label):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return list(found.get_xdata()), list(found.get_ydata())


def collection(ax, label_start):
    (found,) = [c for c in ax.collections if c.get_label().startswith(label_start)]
    return found


# --- the series ---------------------------------------------------------------------------------

def test_reward_per_iteration_by_hand():
    series = reward_per_iteration(ppo_records())
    assert series.iterations == [0, 1, 2, 3]
    assert nan_equal(series.mean, [(0.60 + 0.64 + 0.58) / 3, (0.70 + 0.66) / 2, NAN, (0.62 + 0.72) / 2])
    assert nan_equal(series.max, [0.64, 0.70, NAN, 0.72])
    assert series.ok == [3, 2, 0, 2] and series.failed == [0, 1, 1, 0]
    assert series.total == 9 and series.total_failed == 2
    assert series.rewards[1] == [0.70, 0.66]


def test_reward_per_iteration_orders_by_index_and_defaults_iteration_to_zero():
    rows = [record(1, None, 0.5), record(0, None, 0.7)]
    series = reward_per_iteration(rows)
    assert series.iterations == [0] and series.rewards == [[0.7, 0.5]]


def test_best_so_far_maximises_accuracy_and_marks_failures():
    series = best_so_far(ppo_records(), "accuracy")
    assert series.key == "accuracy" and series.maximise
    assert series.evaluations == list(range(1, 10))
    assert nan_equal(series.values, [0.60, 0.64, 0.58, 0.70, NAN, 0.66, NAN, 0.62, 0.72])
    assert series.best == [0.60, 0.64, 0.64, 0.70, 0.70, 0.70, 0.70, 0.70, 0.72]
    assert series.failed == [5, 7]
    assert series.best_evaluation == 9 and series.indices[8] == 8


def test_best_so_far_minimises_perplexity_and_falls_back_to_reward():
    series = best_so_far(lm_records(), "perplexity")
    assert series.key == "perplexity" and not series.maximise
    assert series.best == [2000.0, 400.0, 300.0, 300.0, 150.0, 150.0]
    assert best_so_far(lm_records(), "perplexity", higher_is_better=True).best[-1] == 2000.0
    # A failed first candidate: nan until the first success.
    rows = [record(0, 0, None, status="failed")] + lm_records()[1:]
    assert nan_equal(best_so_far(rows, "perplexity").best, [NAN, 400.0, 300.0, 300.0, 150.0, 150.0])
    # No such metric (a plain objective): the reward, maximised.
    rows = [record(i, 0, r, metrics={}) for i, r in enumerate([-3.0, -1.0, -2.0])]
    fallback = best_so_far(rows, "accuracy")
    assert fallback.key == "reward" and fallback.maximise and fallback.best == [-3.0, -1.0, -1.0]


def test_best_so_far_notes_candidates_stopped_at_a_fidelity_hurdle():
    rows = [record(0, 0, 0.6, steps=100), record(1, 0, 0.5, steps=25), record(2, 0, 0.55, steps=50), record(3, 0, 0.7, steps=100)]
    assert best_so_far(rows, "accuracy").stopped_early == [2, 3]


def test_reward_label_reads_what_the_reward_is():
    assert reward_label(ppo_records(), "accuracy") == "reward = accuracy"
    assert reward_label(lm_records(), "perplexity") == "reward = −ln(perplexity)"
    assert reward_label(lm_records(), "loss") == "reward = −loss"
    penalised = [dict(r, reward=r["reward"] - 0.05) for r in ppo_records() if r["status"] == "ok"]  # metric_reward stays the accuracy
    assert reward_label(penalised, "accuracy") == "reward = accuracy − cost penalty"
    assert reward_label(ppo_records(), "macro_f1") == "reward"
    assert reward_label([record(0, 0, None, status="failed")], "accuracy") == "reward"


def test_moving_mean():
    assert moving_mean([1.0, 2.0, 3.0, 4.0], 2) == [1.5, 2.5, 3.5]
    assert moving_mean([1.0, 2.0], 3) == []


# --- the figures plot those series ---------------------------------------------------------------

def test_reward_per_iteration_figure_draws_the_series():
    rows = ppo_records()
    series = reward_per_iteration(rows)
    ax = reward_per_iteration_figure(rows, "accuracy").axes[0]
    xs, means = line(ax, "mean")
    assert xs == series.iterations and nan_equal(means, series.mean)
    assert nan_equal(line(ax, "max")[1], series.max)
    failed = collection(ax, "iteration with failures")
    assert [x for x, _ in failed.get_offsets()] == [1, 2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\n(3)", "1\n(3)", "2\n(1)", "3\n(2)"]
    assert "2 of 9 candidates failed" in ax.get_title()
    assert ax.get_ylabel().startswith("reward = accuracy")


def test_one_iteration_is_drawn_per_candidate():
    rewards = [0.55, 0.60, 0.57, None, 0.66, 0.61, 0.70, 0.58, 0.64]  # the fourth failed
    rows = [record(i, 0, r, episode=i, status="ok" if r is not None else "failed") for i, r in enumerate(rewards)]
    rows.reverse()  # plotted in index order, whatever the file's order
    ax = reward_per_iteration_figure(rows, "accuracy").axes[0]
    dots = collection(ax, "each candidate").get_offsets()
    assert [x for x, _ in dots] == [1, 2, 3, 5, 6, 7, 8, 9]  # evaluation numbers; 4 failed
    assert [y for _, y in dots] == pytest.approx([0.55, 0.60, 0.57, 0.66, 0.61, 0.70, 0.58, 0.64])
    xs, ys = line(ax, "mean of the last 3 candidates")
    assert xs == [3, 5, 6, 7, 8, 9] and ys == pytest.approx([0.5733333, 0.61, 0.6133333, 0.6566667, 0.63, 0.64])
    assert [x for x, _ in collection(ax, "failed").get_offsets()] == [4]
    assert "iteration 0" in ax.get_title()


def test_best_so_far_figure_draws_the_series():
    rows = ppo_records()
    series = best_so_far(rows, "accuracy")
    ax = best_so_far_figure(rows, "accuracy").axes[0]
    xs, ys = line(ax, "best so far (max)")
    assert xs == series.evaluations and ys == series.best
    assert [x for x, _ in collection(ax, "failed").get_offsets()] == series.failed == [5, 7]
    assert "highest accuracy so far: 0.72 (candidate #8, evaluation 9 of 9)" in ax.get_title()
    assert ax.get_ylabel() == "accuracy (higher is better)" and ax.get_xlim() == (0.5, 9.5)


def test_perplexity_is_minimised_on_a_log_axis_labelled_honestly():
    ax = best_so_far_figure(lm_records(), "perplexity").axes[0]
    assert ax.get_ylabel() == "perplexity (lower is better)" and ax.get_yscale() == "log"
    assert line(ax, "best so far (min)")[1] == [2000.0, 400.0, 300.0, 300.0, 150.0, 150.0]
    assert "lowest perplexity so far: 150" in ax.get_title()
    ax = reward_per_iteration_figure(lm_records(), "perplexity").axes[0]
    assert ax.get_ylabel() == "reward = −ln(perplexity)\n(higher is better)"
    assert line(ax, "max")[1] == pytest.approx([-math.log(400), -math.log(300), -math.log(150)])
    # A narrow range stays linear.
    narrow = [r for r in lm_records() if r["metrics"]["perplexity"] < 1000]
    assert best_so_far_figure(narrow, "perplexity").axes[0].get_yscale() == "linear"


# --- files -----------------------------------------------------------------------------------------

def test_write_search_plots_writes_every_plot(tmp_path):
    paths = write_search_plots(ppo_records(), "accuracy", tmp_path / "plots")
    assert [p.name for p in paths] == [REWARD_PER_ITERATION, BEST_SO_FAR, "pareto_num_parameters.csv", "pareto_num_parameters.png"]
    assert all(p.parent == tmp_path / "plots" for p in paths)
    for path in paths:
        if path.suffix == ".png":
            assert_png(path)


def test_latency_gets_its_own_pareto_plot_when_measured(tmp_path):
    rows = [dict(r, latency_ms=1.0 + r["index"]) for r in ppo_records()]
    names = [p.name for p in write_search_plots(rows, "accuracy", tmp_path)]
    assert names[-2:] == ["pareto_latency_ms.csv", "pareto_latency_ms.png"]
    assert [p.name for p in write_search_plots(rows, "accuracy", tmp_path / "only", pareto_costs=())] == [REWARD_PER_ITERATION, BEST_SO_FAR]


def test_no_successful_candidate_still_shows_the_failures(tmp_path):
    rows = [record(i, i // 2, None, status="failed") for i in range(4)]
    paths = write_search_plots(rows, "accuracy", tmp_path)
    assert [p.name for p in paths] == [REWARD_PER_ITERATION, BEST_SO_FAR]  # no Pareto front without an ok candidate
    for path in paths:
        assert_png(path)
    ax = best_so_far_figure(rows, "accuracy").axes[0]
    assert [x for x, _ in collection(ax, "failed").get_offsets()] == [1, 2, 3, 4]
    assert any("all 4 failed" in t.get_text() for t in ax.texts)
    ax = reward_per_iteration_figure(rows, "accuracy").axes[0]
    assert any("all 4 failed" in t.get_text() for t in ax.texts)
    assert write_search_plots([], "accuracy", tmp_path / "none") == [] and not (tmp_path / "none").exists()


def test_one_candidate(tmp_path):
    rows = [record(0, 0, 0.61)]
    paths = write_search_plots(rows, "accuracy", tmp_path)
    assert len(paths) == 4 and all(p.stat().st_size > 0 for p in paths)
    ax = best_so_far_figure(rows, "accuracy").axes[0]
    assert line(ax, "best so far (max)") == ([1], [0.61]) and ax.get_xlim() == (0.5, 1.5)


def test_cli_redraws_from_candidates_jsonl(tmp_path, capsys):
    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lm_records()))
    main([str(path), "perplexity"])
    written = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[1] for p in written] == [REWARD_PER_ITERATION, BEST_SO_FAR, "pareto_num_parameters.csv",
                                                      "pareto_num_parameters.png"]
    assert all(p.startswith(str(tmp_path / "plots")) for p in written)


@pytest.mark.slow
def test_plots_of_a_real_search(tmp_path, sqlite_uri):
    from nas.runner import run_search

    config = compose_config(TINY + [f"tracking.uri={sqlite_uri}"])
    result = run_search(config, tmp_path / "run")
    rows = load_records(tmp_path / "run" / "candidates.jsonl")
    assert len(rows) == len(result.history) >= 2
    paths = write_search_plots(rows, config.task.metric, tmp_path / "plots")
    assert [p.name for p in paths] == [REWARD_PER_ITERATION, BEST_SO_FAR, "pareto_num_parameters.csv", "pareto_num_parameters.png"]
    for path in paths:
        if path.suffix == ".png":
            assert_png(path)
    # The curve is the search's own best-so-far (reward = accuracy here, no cost), failures included.
    series = best_so_far(rows, config.task.metric)
    assert nan_equal(series.best, result.best_so_far())
    assert series.failed == [e.index + 1 for e in result.history if not e.ok]
    by_iteration = reward_per_iteration(rows)
    expected = sorted({e.iteration for e in result.history})
    assert by_iteration.iterations == expected
    for iteration, mean in zip(expected, by_iteration.mean):
        rewards = [e.value for e in result.history if e.iteration == iteration and e.ok]
        assert mean == pytest.approx(sum(rewards) / len(rewards))
