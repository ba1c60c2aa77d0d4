"""Multi-objective rewards, latency measurement and Pareto fronts, against numbers worked out by hand."""

import csv
import itertools
import math
import random

import pytest
import torch

from nas.latency import measure_latency
from nas.pareto import pareto_front, pareto_table
from nas.plots import write_pareto
from nas.records import load_records
from nas.settings import ObjectiveConfig, OverBudget

LN2 = math.log(2)


# --- Pareto front -----------------------------------------------------------------------------

def brute_force_front(points):
    def dominates(q, p):
        return q[0] >= p[0] and q[1] <= p[1] and (q[0] > p[0] or q[1] < p[1])
    return [not any(dominates(q, p) for q in points) for p in points]


def test_front_by_hand():
    # (metric, cost): b dominates a (better and cheaper); c is more expensive but better; d is dominated by c
    # (same metric, dearer); e is the cheapest; f is beaten by e on both.
    points = [(0.6, 200), (0.7, 100), (0.8, 300), (0.8, 400), (0.5, 50), (0.4, 60)]
    assert pareto_front(points) == [False, True, True, False, True, False]


def test_front_ties_and_degenerate_inputs():
    assert pareto_front([]) == []
    assert pareto_front([(0.3, 7.0)]) == [True]
    assert pareto_front([(0.5, 10)] * 4) == [True] * 4  # equal points do not dominate each other
    # Same cost, different metric: only the best of the group; same metric, different cost: only the cheapest.
    assert pareto_front([(0.5, 10), (0.6, 10), (0.6, 10)]) == [False, True, True]
    assert pareto_front([(0.6, 12), (0.6, 10)]) == [False, True]
    assert pareto_front([(-math.inf, 1), (-math.inf, 2)]) == [True, False]  # -inf is still a comparable metric
    with pytest.raises(ValueError, match="NaN"):
        pareto_front([(math.nan, 1.0)])


def test_front_matches_brute_force_on_random_points_with_ties():
    rng = random.Random(0)
    for _ in range(50):
        points = [(rng.choice([0.1, 0.2, 0.3, 0.4]), rng.choice([1, 2, 3, 5, 8])) for _ in range(rng.randint(1, 25))]
        assert pareto_front(points) == brute_force_front(points), points


# --- rewards ------------------------------------------------------------------------------------

def test_no_cost_is_the_metric_alone():
    config = ObjectiveConfig()
    config.validate()
    assert not config.enabled
    assert config.reward(0.7, {}) == 0.7
    assert config.reward(-4.2, {"num_parameters": 1e9}) == -4.2


def test_soft_penalises_only_over_the_target():
    config = ObjectiveConfig(cost="num_parameters", target=100_000, mode="soft", weight=0.1)
    assert config.reward(0.7, {"num_parameters": 50_000}) == 0.7  # within budget: metric only
    assert config.reward(0.7, {"num_parameters": 100_000}) == 0.7
    # Twice the budget: 0.7 - 0.1 * ln 2 = 0.7 - 0.0693147
    assert config.reward(0.7, {"num_parameters": 200_000}) == pytest.approx(0.6306853, abs=1e-7)
    # e times the budget costs exactly the weight, whatever the sign of the metric reward.
    assert config.reward(-5.0, {"num_parameters": 100_000 * math.e}) == pytest.approx(-5.1)
    assert config.reward(-5.0, {"num_parameters": 10}) == -5.0


def test_weighted_trades_on_both_sides():
    config = ObjectiveConfig(cost="latency_ms", target=20.0, mode="weighted", weight=0.07)
    assert config.reward(0.5, {"latency_ms": 20.0}) == pytest.approx(0.5)
    assert config.reward(0.5, {"latency_ms": 10.0}) == pytest.approx(0.5 + 0.07 * LN2)  # half the cost: a bonus
    assert config.reward(0.5, {"latency_ms": 40.0}) == pytest.approx(0.5 - 0.07 * LN2)
    # Negative (LM) reward -log(perplexity) = -4.0 at four times the target: -4 - 0.07 * 2 ln 2 = -4.0970406
    assert config.reward(-4.0, {"latency_ms": 80.0}) == pytest.approx(-4.0970406, abs=1e-7)
    # A better metric at a higher cost can lose: 0.60 at 2x vs 0.57 at 1x.
    assert config.reward(0.60, {"latency_ms": 40.0}) < config.reward(0.57, {"latency_ms": 20.0})


def test_hard_rejects_over_the_target_with_a_message_naming_it():
    config = ObjectiveConfig(cost="latency_ms", target=12.5, mode="hard")
    assert config.reward(-3.0, {"latency_ms": 12.5}) == -3.0  # at the target: allowed, no penalty
    assert config.reward(0.8, {"latency_ms": 1.0}) == 0.8  # no bonus for being cheap
    config.check({"latency_ms": 3.0})
    with pytest.raises(OverBudget, match=r"latency_ms 13\.1 exceeds objective\.target 12\.5"):
        config.reward(0.9, {"latency_ms": 13.1})
    with pytest.raises(OverBudget):
        config.check({"latency_ms": 13.1})
    assert isinstance(OverBudget("x"), ValueError)  # caught by the runner's failed-candidate path like any error


def test_missing_or_bad_cost_value_is_named():
    config = ObjectiveConfig(cost="latency_ms", target=10.0)
    with pytest.raises(KeyError, match="latency_ms"):
        config.reward(0.5, {"num_parameters": 100})
    with pytest.raises(ValueError, match="latency_ms"):
        config.reward(0.5, {"latency_ms": 0.0})


@pytest.mark.parametrize("kwargs, key", [
    ({"cost": "flops", "target": 1.0}, "objective.cost"),
    ({"mode": "strict"}, "objective.mode"),
    ({"cost": "num_parameters", "mode": "Soft", "target": 1.0}, "objective.mode"),
    ({"cost": "num_parameters"}, "objective.target"),
    ({"cost": "num_parameters", "target": 0.0}, "objective.target"),
    ({"cost": "latency_ms", "target": -5.0}, "objective.target"),
    ({"cost": "latency_ms", "target": math.nan}, "objective.target"),
    ({"target": 100.0}, "objective.cost"),
    ({"cost": "latency_ms", "target": 5.0, "weight": -0.1}, "objective.weight"),
    ({"cost": "latency_ms", "target": 5.0, "weight": math.nan}, "objective.weight"),
])
def test_validation_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ObjectiveConfig(**kwargs).validate()
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):  # reward() validates too
        ObjectiveConfig(**kwargs).reward(0.5, {"num_parameters": 10, "latency_ms": 1.0})


def test_config_is_a_valid_structured_config_schema():
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(ObjectiveConfig), {"cost": "latency_ms", "target": 15, "mode": "hard"})
    typed = OmegaConf.to_object(cfg)
    assert isinstance(typed, ObjectiveConfig) and typed.target == 15.0
    typed.validate()


# --- latency ------------------------------------------------------------------------------------

def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


@pytest.mark.parametrize("training", [True, False])
def test_measure_latency_on_a_real_model_keeps_its_mode(training):
    model = tiny_bert()
    model.train(training)
    inputs = {"input_ids": torch.randint(0, 50, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long)}
    ms = measure_latency(model, inputs, repeats=3, warmup=1)
    assert isinstance(ms, float) and math.isfinite(ms) and 0 < ms < 10_000
    assert all(m.training == training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())  # no gradients were computed


def test_measure_latency_restores_a_mixed_mode_and_rejects_bad_repeats():
    model = tiny_bert()
    model.train()
    model.classifier.eval()
    measure_latency(model, {"input_ids": torch.randint(0, 50, (2, 8))}, repeats=1, warmup=0)
    assert model.training and not model.classifier.training and model.bert.training
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(model, {"input_ids": torch.randint(0, 50, (2, 8))}, repeats=0)


def test_measure_latency_grows_with_the_work():
    model = tiny_bert()
    small = {"input_ids": torch.randint(0, 50, (1, 4))}
    large = {"input_ids": torch.randint(0, 50, (256, 32))}
    assert measure_latency(model, large, repeats=3) > measure_latency(model, small, repeats=3)


# --- tables and plots ---------------------------------------------------------------------------

def records():
    """candidates.jsonl rows as the runner writes them: (accuracy, parameters) per candidate, one failed."""
    rows = []
    for index, (acc, params, layers, hidden) in enumerate([
        (0.62, 120_000, 1, 64), (0.70, 90_000, 1, 32), (0.74, 250_000, 2, 64), (0.66, 60_000, 1, 32),
        (0.70, 140_000, 2, 32), (0.74, 250_000, 2, 96), (0.55, 40_000, 1, 16),
    ]):
        rows.append({"index": index, "architecture": {"num_hidden_layers": layers, "hidden_size": hidden}, "status": "ok",
                     "reward": acc - 0.01, "metrics": {"accuracy": acc, "macro_f1": acc - 0.05}, "num_parameters": params})
    rows.append({"index": 7, "architecture": {"num_hidden_layers": 2, "hidden_size": 128}, "status": "failed", "reward": None,
                 "metrics": {}, "num_parameters": 300_000, "error": "FloatingPointError: loss nan"})
    return rows


def test_pareto_table_rows_columns_and_order():
    table = pareto_table(records(), "accuracy", "num_parameters")
    assert list(table.columns) == ["index", "accuracy", "num_parameters", "on_front", "reward", "num_hidden_layers", "hidden_size"]
    assert 7 not in set(table["index"])  # the failed candidate
    assert list(table["num_parameters"]) == sorted(table["num_parameters"])
    # Front by hand: 40k/0.55, 60k/0.66, 90k/0.70, 250k/0.74 (twice, a tie); 120k/0.62 and 140k/0.70 are dominated.
    assert sorted(table.loc[table["on_front"], "index"]) == [1, 2, 3, 5, 6]


def test_pareto_table_lower_is_better_metric_and_nested_lookup():
    rows = [{"index": i, "status": "ok", "metrics": {"perplexity": p}, "num_parameters": n, "architecture": {}}
            for i, (p, n) in enumerate([(150.0, 1e5), (120.0, 2e5), (160.0, 3e5)])]
    table = pareto_table(rows, "perplexity", "num_parameters")  # perplexity is minimised by default
    assert dict(zip(table["index"], table["on_front"])) == {0: True, 1: True, 2: False}
    flipped = pareto_table(rows, "perplexity", "num_parameters", higher_is_better=True)
    assert dict(zip(flipped["index"], flipped["on_front"])) == {0: True, 1: False, 2: True}  # 150 is now the cheap best


def test_write_pareto_csv_matches_the_front_and_png_is_an_image(tmp_path):
    from PIL import Image

    rows = records()
    paths = write_pareto(rows, "accuracy", "num_parameters", tmp_path / "out")
    assert [p.name for p in paths] == ["pareto.csv", "pareto.png"]
    with paths[0].open() as f:
        table = list(csv.DictReader(f))
    ok = [r for r in rows if r["status"] == "ok"]
    expected = dict(zip((r["index"] for r in ok), pareto_front([(r["metrics"]["accuracy"], r["num_parameters"]) for r in ok])))
    assert {int(r["index"]): r["on_front"] == "True" for r in table} == expected
    assert len(table) == 7
    data = paths[1].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(paths[1]) as image:
        assert image.format == "PNG" and image.size == (900, 576)  # 7.5 x 4.8 inches at 120 dpi


def test_write_pareto_with_no_ok_candidate_writes_nothing(tmp_path):
    failed = [r for r in records() if r["status"] == "failed"]
    assert write_pareto(failed, "accuracy", "num_parameters", tmp_path) == []
    assert write_pareto([], "accuracy", "num_parameters", tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_load_records_round_trip_and_named_outputs(tmp_path):
    import json

    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps({**r, "architecture_hash": f"h{r['index']}"}) + "\n" for r in records()))
    rows = load_records(path)
    assert [{k: v for k, v in r.to_dict().items() if k in written} for r, written in zip(rows, records())] == records()
    assert rows[-1].error == "FloatingPointError: loss nan" and not rows[-1].ok and rows[0].ok
    for r, ms in zip(rows, itertools.cycle([3.0, 7.5, 1.2])):
        r.latency_ms = ms
    paths = write_pareto(rows, "accuracy", "latency_ms", tmp_path, name="pareto_latency")
    assert [p.name for p in paths] == ["pareto_latency.csv", "pareto_latency.png"]
