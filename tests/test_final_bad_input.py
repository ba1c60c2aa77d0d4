"""nas-final: every setting is checked before the search is read, anything trains or anything is logged.

Each case runs the real ``nas-final`` command (its Hydra app, in this process) on a real finished search,
and must end with exit 2 and one line naming the key and its value, without a traceback; the store then
holds the same runs and no registered model, and the output folder no model.
"""

import re

import pytest
from mlflow.tracking import MlflowClient

from nas.final import REGISTERED_NAME_MAX, check_registered_name

from .conftest import TINY
from .test_final import run_cli, search

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("final-bad-input")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return search(root, "search", [*TINY, "budget=1", "strategy=random", f"tracking.uri={uri}"]), uri


LONG_NAME = "m" * (REGISTERED_NAME_MAX + 1)

CASES = {  # case -> (overrides, the error line after "nas-final: error: ", a regular expression)
    # The trainer: every key of conf/trainer/final.yaml.
    "max_steps=0": (["trainer.max_steps=0"], r"trainer\.max_steps must be >= 1, got 0"),
    "max_steps<0": (["trainer.max_steps=-5"], r"trainer\.max_steps must be >= 1, got -5"),
    "batch_size=0": (["trainer.batch_size=0"], r"trainer\.batch_size must be >= 1, got 0"),
    "learning_rate=nan": (["trainer.learning_rate=nan"], r"trainer\.learning_rate must be a positive number, got nan"),
    "learning_rate<0": (["trainer.learning_rate=-0.1"], r"trainer\.learning_rate must be a positive number, got -0\.1"),
    "eval_batch_size=0": (["trainer.eval_batch_size=0"], r"trainer\.eval_batch_size must be >= 1, got 0"),
    "warmup_ratio>1": (["trainer.warmup_ratio=1.5"], r"trainer\.warmup_ratio must be in \[0, 1\], got 1\.5"),
    "weight_decay=inf": (["trainer.weight_decay=inf"], r"trainer\.weight_decay must be a finite number >= 0, got inf"),
    "max_grad_norm=0": (["trainer.max_grad_norm=0"], r"trainer\.max_grad_norm must be a positive number, got 0\.0"),
    "log_every=0": (["trainer.log_every=0"], r"trainer\.log_every must be >= 1, got 0"),
    "num_threads=0": (["trainer.num_threads=0"], r"trainer\.num_threads must be >= 1 \(or null\), got 0"),
    "eval_every=0": (["trainer.eval_every=0"], r"trainer\.eval_every must be >= 1 \(or null\), got 0"),
    "pretrain.steps<0": (["trainer.pretrain.steps=-1"], r"trainer\.pretrain\.steps must be >= 0, got -1"),
    "pretrain.mlm_probability=1": (["trainer.pretrain.steps=2", "trainer.pretrain.mlm_probability=1"],
                                   r"trainer\.pretrain\.mlm_probability must be in \(0, 1\), got 1\.0"),
    "device unknown to torch": (["trainer.device=tpu"], r"trainer\.device='tpu' is not a device"),
    "device not for training": (["trainer.device=meta"], r"trainer\.device='meta' is not a device .* trains on"),
    "malformed cuda index": (["trainer.device=cuda:x"], r"trainer\.device='cuda:x' is not a device"),
    # The seed, the data, the store, the names MLflow gets (the data sizes: TaskConfig.validate, already before any work).
    "seed<0": (["seed=-1"], r"seed must be an integer in \[0, 4294967295\] \(or null: the search's\), got -1"),
    "seed too large": (["seed=4294967296"], r"seed must be an integer in \[0, 4294967295\] .*got 4294967296"),
    "empty test_file": (["task.test_file=''"], r"task\.test_file is empty"),
    "empty tracking.uri": (["tracking.uri=''"], r"tracking\.uri is empty"),
    "sqlite uri with one slash": (["tracking.uri=sqlite:/relative.db"], r"tracking\.uri: 'sqlite:/relative\.db'"),
    "uri without a scheme": (["tracking.uri=http//localhost:5000"], r"tracking\.uri: 'http//localhost:5000'"),
    "register_as with / and :": (["register_as=bad/name:x"], r"register_as='bad/name:x': .*cannot contain '/' or ':'"),
    "register_as with %": (["register_as=50%"], r"register_as='50%': .*cannot contain '%'"),
    "register_as ..": (["register_as=.."], r"register_as='\.\.': .*would resolve to"),
    "register_as blank": (["register_as=' '"], r"register_as=' ' is empty"),
    "register_as too long": ([f"register_as={LONG_NAME}"], r"register_as='m+': 257 characters, MLflow keeps at most 256"),
    "empty run_name": (["run_name=''"], r"run_name is empty"),
    "run_name too long": ([f"run_name={'r' * 251}"], r"run_name='r+': 251 characters, MLflow keeps at most 250"),
    "empty search": (["search=''"], r"search is empty"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_setting_is_one_line_exit_2_before_anything_trains_or_is_logged(case, finished, tmp_path, monkeypatch, capsys):
    found, uri = finished
    overrides, message = CASES[case]
    client = MlflowClient(uri)
    runs_before = [r.info.run_id for r in client.search_runs([found.experiment_id])]
    out = tmp_path / "out"
    args = [f"search={found.dir}", f"tracking.uri={uri}", "trainer=tiny", *overrides, f"hydra.run.dir={out}"]
    # The last override of a key wins: a case's own search= / tracking.uri= replace the good ones.
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, *args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = err.strip().splitlines()
    assert re.fullmatch(f"nas-final: error: {message}.*", lines[0]), lines[0]
    assert "Traceback" not in err and len(lines) == 2  # the message, then the hint about HYDRA_FULL_ERROR
    assert [r.info.run_id for r in client.search_runs([found.experiment_id])] == runs_before
    assert client.search_registered_models() == []
    assert not (out / "metrics.json").exists() and not (out / "config.json").exists()


@pytest.mark.parametrize("name", ["bad/name:x", "a:b", "50%", "..", "../x", "/abs", "a/./b", ".", " ", "", LONG_NAME])
def test_registered_names_refused_are_names_mlflow_refuses(name):
    """The rules are MLflow 3's (its validator, its file registry's extra rules, its database column's length)."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.model_registry.file_store import _validate_model_name

    with pytest.raises(ValueError, match="register_as"):
        check_registered_name(name)
    if len(name) <= REGISTERED_NAME_MAX:  # the length is the database's limit, not the validator's
        with pytest.raises(MlflowException):
            _validate_model_name(name)


@pytest.mark.parametrize("name", ["nas-text-classification", "my model v2", "sentiment_small.1", "x" * REGISTERED_NAME_MAX])
def test_registered_names_mlflow_accepts_are_accepted(name):
    from mlflow.store.model_registry.file_store import _validate_model_name

    _validate_model_name(name)
    check_registered_name(name)


def test_a_deleted_experiment_is_refused_before_anything_trains(tmp_path, monkeypatch, capsys):
    """The search's experiment deleted in the store: MLflow would refuse the final run only after the training."""
    from mlflow.entities import ViewType

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    found = search(tmp_path, "search", [*TINY, "budget=1", "strategy=random", f"tracking.uri={uri}"])
    client = MlflowClient(uri)
    client.delete_experiment(found.experiment_id)
    runs_before = [r.info.run_id for r in client.search_runs([found.experiment_id], run_view_type=ViewType.ALL)]
    out = tmp_path / "out"
    capsys.readouterr()  # the search's own output
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, f"search={found.dir}", "trainer=tiny", f"hydra.run.dir={out}")
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert re.fullmatch(rf"nas-final: error: the search's MLflow experiment 'nas' \(id {found.experiment_id}\) is deleted in sqlite:///.*",
                        err.strip().splitlines()[0]), err
    assert [r.info.run_id for r in client.search_runs([found.experiment_id], run_view_type=ViewType.ALL)] == runs_before
    assert client.search_registered_models() == [] and not (out / "metrics.json").exists()
