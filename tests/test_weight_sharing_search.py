"""evaluation=weight_sharing end to end: a real super-network, real subnets scored, the shortlist trained standalone,
a real sqlite MLflow store; the same seed gives the same search, a killed one resumes to it, bad input is refused first."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from nas.errors import BadInput
from nas.folders import RunDirectory
from nas.runner import run_search
from nas.weight_sharing import SCORES_TABLE, SUPERNET_FORMAT

from .conftest import TINY, compose_config, kill_when, run_nas
from .test_final import FINAL_TINY, final_config, search

# PPO over weight-sharing scores (12 of them, in rounds of 2), a super-network of 6 steps, the best 3 trained standalone.
SEARCH = [*TINY, "evaluation=weight_sharing", "evaluation.supernet_steps=6", "evaluation.top_k=3", "budget=12", "ppo.iterations=null"]
SAME = ("architecture_hash", "status", "reward", "metrics", "num_parameters", "iteration", "episode", "step")


def lines(records) -> list[tuple]:
    return [tuple(json.dumps(getattr(r, k), sort_keys=True) for k in SAME) for r in records]


def runs_of(uri: str, experiment: str) -> tuple[object, list]:
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return parent, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> SimpleNamespace:
    """One weight-sharing search (its folder as the nas command leaves it, .hydra/ included), shared by the tests below."""
    root = tmp_path_factory.mktemp("ws")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    done = search(root, "search", [*SEARCH, f"tracking.uri={uri}"])
    return SimpleNamespace(root=root, uri=uri, dir=done.dir, best=done.best)


def test_a_weight_sharing_search_scores_with_shared_weights_then_trains_its_shortlist(ws, tmp_path):
    folder = RunDirectory(ws.dir)
    scores, candidates = folder.read_scores(), folder.read_records()

    assert len(scores) == 12 and all(r.steps == 0 and r.train_seconds is None and r.mlflow_run_id is None for r in scores)
    assert all(r.reward == -r.metrics["loss"] for r in scores)  # evaluation.score=loss, the default
    assert len({r.architecture_hash for r in scores}) == 12
    # Stage three: the three best scores (ties: the first scored), trained standalone for trainer.max_steps, in that order.
    ranked = sorted((r for r in scores if r.ok), key=lambda r: (-r.reward, r.index))[:3]
    assert [r.architecture for r in candidates] == [r.architecture for r in ranked]
    max_steps = compose_config(SEARCH).trainer.max_steps
    assert all(r.ok and r.steps == max_steps and r.train_seconds > 0 for r in candidates)
    best = max(candidates, key=lambda r: r.reward)
    assert ws.best.architecture == best.architecture
    assert json.loads((ws.dir / "best" / "config.json").read_text())["hidden_size"] == best.architecture["hidden_size"]

    saved = torch.load(folder.supernet, weights_only=True)
    assert saved["format"] == SUPERNET_FORMAT and len(saved["losses"]) == 6

    # MLflow: a run for the super-network with its loss curve, one per standalone candidate, the scores as a table.
    client = MlflowClient(ws.uri)
    parent, children = runs_of(ws.uri, "nas")
    supernet = [r for r in children if r.data.tags.get("nas.role") == "supernet"]
    assert len(supernet) == 1 and len(client.get_metric_history(supernet[0].info.run_id, "supernet_loss")) == 6
    assert sorted(r.info.run_id for r in children if r not in supernet) == sorted(r.mlflow_run_id for r in candidates)
    table = json.loads(Path(client.download_artifacts(parent.info.run_id, SCORES_TABLE, str(tmp_path / "dl"))).read_text())
    assert len(table["data"]) == 12 and "reward" in table["columns"]
    assert parent.data.params["evaluation.mode"] == "weight_sharing" and parent.info.status == "FINISHED"
    assert parent.data.metrics["ws_scores_per_minute"] > 0


@pytest.mark.slow
def test_a_weight_sharing_search_killed_while_scoring_resumes_to_the_same_search_without_training_the_supernet_again(
        ws, tmp_path, monkeypatch):
    """The uninterrupted search is ``ws``: the same config and seed, so also the check that a seed gives one search."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nas", *SEARCH, f"tracking.uri={uri}", f"hydra.run.dir={run_dir}"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when(proc, lambda: len(RunDirectory(run_dir).read_scores()) >= 3)  # once stage two has scored a few
    folder = RunDirectory(run_dir)
    assert len(folder.read_scores()) >= 3 and len(folder.read_records()) < 3  # killed while scoring (or early in stage three)
    trained = folder.supernet.stat().st_mtime_ns

    assert run_nas(monkeypatch, f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume'}") == 0
    assert folder.supernet.stat().st_mtime_ns == trained  # loaded, not trained again
    done = RunDirectory(ws.dir)
    weights = [torch.load(d.supernet, weights_only=True)["model"] for d in (folder, done)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the seed's super-network, in another process
    assert lines(folder.read_scores()) == lines(done.read_scores())
    assert lines(folder.read_records()) == lines(done.read_records())
    parent, children = runs_of(uri, "nas")
    assert parent.info.status == "FINISHED"
    assert sum(r.data.tags.get("nas.role") == "supernet" for r in children) == 1


def test_a_saved_supernet_of_other_settings_is_refused_on_resume(ws, tmp_path):
    from nas.runner import CandidateObjective, build_search_space
    from nas.tasks import make_task
    from nas.weight_sharing import build_supernet, prepare_supernet

    folder = RunDirectory(tmp_path)
    shutil.copy(RunDirectory(ws.dir).supernet, folder.supernet)
    config = compose_config([*SEARCH, "evaluation.supernet_steps=7"])  # trained with 6
    task = make_task(config.task)
    objective = CandidateObjective(task, config)
    supernet = build_supernet(config, task, build_search_space(config, task, objective.fixed), objective.fixed)
    with pytest.raises(BadInput, match="supernet.pt was trained with other settings"):
        prepare_supernet(supernet, config, task, folder)


def test_a_subnet_is_scored_by_minus_its_validation_loss_or_by_the_tasks_metric():
    from nas.runner import CandidateObjective, build_search_space
    from nas.tasks import make_task
    from nas.weight_sharing import SharedWeightsObjective, build_supernet

    outcomes = {}
    for score in ("loss", "metric"):
        config = compose_config([*SEARCH, f"evaluation.score={score}"])
        task = make_task(config.task)
        objective = CandidateObjective(task, config)
        space = build_search_space(config, task, objective.fixed)
        supernet = build_supernet(config, task, space, objective.fixed)
        outcomes[score] = SharedWeightsObjective(supernet, task, config)(space.decode(next(iter(space.all_encodings()))))
    by_loss, by_metric = outcomes["loss"], outcomes["metric"]
    assert by_loss.info["metrics"] == by_metric.info["metrics"]  # the same seed's super-network, the same subnet
    assert by_loss.value == by_loss.info["metric_reward"] == -by_loss.info["metrics"]["loss"] < 0
    assert by_metric.value == by_metric.info["metrics"]["accuracy"]


@pytest.mark.parametrize("overrides,match", [
    (["evaluation.mode=nope"], "evaluation.mode must be one of standalone, weight_sharing"),
    (["evaluation.top_k=0"], "evaluation.top_k must be >= 1"),
    (["evaluation.sampling=sometimes"], "evaluation.sampling must be one of sandwich, uniform"),
    (["evaluation.score=accuracy"], "evaluation.score must be one of loss, metric"),
    (["fidelity.steps=[2]"], "cannot be combined with fidelity.steps"),
    (["task=image_classification", "search_space.dimensions.patch_size=[4,7]"], "patch_size"),
])
def test_what_cannot_share_weights_is_refused_before_any_run_starts(tmp_path, sqlite_uri, overrides, match):
    with pytest.raises(BadInput, match=match):
        run_search(compose_config([*SEARCH, f"tracking.uri={sqlite_uri}", *overrides]), tmp_path / "run")
    assert not (tmp_path / "run" / "search.json").exists()  # no MLflow run, no folder claimed as a search's


@pytest.mark.parametrize("overrides", [
    ["task=language_modeling"],  # GPT-2: its fused query/key/value sliced block by block
    ["task=image_classification", "search_space.dimensions.patch_size=[7]", "evaluation.sampling=uniform"],  # ViT, one patch size
])
def test_gpt2_and_vit_searches_share_weights(tmp_path, sqlite_uri, overrides):
    run_dir = tmp_path / "run"
    run_search(compose_config([*SEARCH, "budget=6", "evaluation.top_k=2", f"tracking.uri={sqlite_uri}", *overrides]), run_dir)
    folder = RunDirectory(run_dir)
    assert len(folder.read_scores()) == 6 and all(r.ok for r in folder.read_scores())
    assert len(folder.read_records()) == 2 and (run_dir / "best" / "config.json").is_file()


def test_the_vit_space_with_several_patch_sizes_is_refused_with_the_fix(tmp_path, sqlite_uri):
    with pytest.raises(BadInput, match=r"Give search_space.dimensions.patch_size one choice, or use evaluation=standalone"):
        run_search(compose_config([*SEARCH, f"tracking.uri={sqlite_uri}", "task=image_classification"]), tmp_path / "run")


def test_the_supernet_is_pre_trained_once_then_fine_tuned_on_the_labels(tmp_path, sqlite_uri):
    run_dir = tmp_path / "run"
    # the corpus: the shipped reviews without labels; 4 pre-training steps of the masked-LM super-network
    run_search(compose_config([*SEARCH, "budget=6", "evaluation.top_k=1", f"tracking.uri={sqlite_uri}", "trainer=pretrain_finetune",
                               "trainer.max_steps=3", "trainer.pretrain.steps=4", "trainer.pretrain.corpus_size=200",
                               "trainer.pretrain.batch_size=8"]), run_dir)
    saved = torch.load(RunDirectory(run_dir).supernet, weights_only=True)
    assert len(saved["pretrain_losses"]) == 4 and len(saved["losses"]) == 6
    assert saved["settings"]["pretrain"]["steps"] == 4
    client = MlflowClient(sqlite_uri)
    _, children = runs_of(sqlite_uri, "nas")
    supernet = next(r for r in children if r.data.tags.get("nas.role") == "supernet")
    assert len(client.get_metric_history(supernet.info.run_id, "supernet_pretrain_loss")) == 4
    # the shortlist trains as trainer.* says: pre-trained, then fine-tuned, like any candidate of that trainer
    (candidate,) = RunDirectory(run_dir).read_records()
    assert candidate.ok and candidate.pretrain_seconds > 0


def test_pre_training_moves_the_body_into_the_task_supernet():
    from nas.space import SearchSpace
    from nas.supernet import SuperNetwork
    from nas.tasks import make_task
    from nas.weight_sharing import pretrain_supernet

    config = compose_config([*SEARCH, "trainer=pretrain_finetune", "trainer.pretrain.steps=2", "trainer.pretrain.corpus_size=64",
                             "trainer.pretrain.batch_size=8", "task.vocab_size=300"])
    task = make_task(config.task)
    dims = {"num_hidden_layers": [1, 2], "hidden_size": [16, 32], "num_attention_heads": [2], "intermediate_size": [32]}
    space = SearchSpace.from_dict(dims)
    supernet = SuperNetwork(space, "bert", task.name, task.config_fields(), seed=0)
    before = {k: v.clone() for k, v in supernet.model.state_dict().items()}
    from nas.pretrain import PretrainingCorpus, read_corpus

    corpus = PretrainingCorpus(read_corpus(config.trainer.pretrain, task.name), task.preprocessor, task.config_fields()["max_position_embeddings"],
                               config.trainer.pretrain)
    losses = pretrain_supernet(supernet, corpus, config, (space.decode((1, 1, 0, 0)), space.decode((0, 0, 0, 0))))
    assert len(losses) == 2 and all(np.isfinite(losses))
    after = supernet.model.state_dict()
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert any(k.startswith("bert.encoder.layer.1.") for k in changed)  # the largest subnet's second layer was pre-trained
    assert not any(k.startswith("classifier.") for k in changed)  # the task head stays as initialised


def test_nas_final_trains_the_best_of_the_shortlist(ws, tmp_path):
    from nas.final import run_final

    best = max(RunDirectory(ws.dir).read_records(), key=lambda r: r.reward)  # stage three's, not the best weight-sharing score
    result = run_final(final_config([f"search={ws.dir}", *FINAL_TINY]), tmp_path / "final")
    saved = json.loads((tmp_path / "final" / "config.json").read_text())
    assert {k: saved[k] for k in best.architecture} == best.architecture
    assert "val_accuracy" in result.metrics and "test_accuracy" in result.metrics
