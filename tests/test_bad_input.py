"""Bad input to the `nas` command: one message naming the key, value or file, exit status 2, no traceback,
and nothing trained or logged before the error.

The battery runs the real console entry point (nas.cli.main: Hydra composition, validation, data reading,
the search's checks) in this process, as test_final.run_cli does: a subprocess would pay ~10 s of imports
per case. One subprocess proves the console path itself.
"""

import dataclasses
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import nas.cli
from nas.config import CONF_DIR, DATA_DIR, SearchSpaceConfig
from nas.errors import EXIT_BAD_INPUT
from nas.models import get_family
from nas.tasks import TASKS, make_task

from .conftest import TINY, compose_config

REVIEWS = pd.read_csv(DATA_DIR / "rotten_tomatoes" / "train.csv.gz").head(40)  # both labels
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root reads and writes whatever its permissions say


def run_cli(monkeypatch, *args: str) -> None:
    """The nas command (its Hydra app), in this process; Hydra's logging set-up is undone afterwards."""
    monkeypatch.setattr(sys, "argv", ["nas", *args])
    GlobalHydra.instance().clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        nas.cli.main()
    finally:  # Hydra configured logging for its job (console and a log file): give the rest of the session its own back
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


def free_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- bad files, made once ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-files")
    (d / "empty.csv").write_bytes(b"")
    (d / "header_only.csv").write_text("text,label\n")
    accented = REVIEWS.assign(text=REVIEWS.text.radd("café déjà vu: "))
    (d / "latin1.csv").write_bytes(accented.to_csv(index=False).encode("latin-1", "replace"))
    (d / "utf16.csv").write_bytes(accented.to_csv(index=False).encode("utf-16"))
    REVIEWS.assign(label=[1, "pos", 0, *REVIEWS.label[3:]]).to_csv(d / "mixed_labels.csv", index=False)
    with open(d / "mixed_labels.jsonl", "w") as f:  # JSON keeps the types: 0, 1, "neg" and "pos" would be four classes
        for i, row in enumerate(REVIEWS.itertuples()):
            f.write(json.dumps({"text": row.text, "label": ["neg", "pos"][row.label] if i % 2 else int(row.label)}) + "\n")
    REVIEWS.assign(label=0).to_csv(d / "single_class.csv", index=False)
    REVIEWS.to_csv(d / "unreadable.csv", index=False)
    (d / "unreadable.csv").chmod(0)
    REVIEWS.to_csv(d / "reviews.xlsx", index=False)  # not a format the tasks read
    (d / "folder.csv").mkdir()
    rng = np.random.default_rng(0)
    np.savez(d / "small_images.npz", image=rng.integers(0, 255, (20, 16, 16), dtype=np.uint8), label=rng.integers(0, 3, 20))
    (d / "garbage.npz").write_bytes(rng.bytes(256))
    (d / "a_file").write_text("not a folder\n")
    (d / "read_only").mkdir(mode=0o500)
    os.mkfifo(d / "fifo.csv")  # not a regular file: opening it would wait for a writer forever
    os.mkfifo(d / "fifo.npz")
    REVIEWS.assign(label=REVIEWS.label.astype(bool)).to_csv(d / "bool_labels.csv", index=False)  # True/False; validation: 1/0
    REVIEWS.assign(label=REVIEWS.label.where(REVIEWS.index % 2 == 0)).to_csv(d / "nan_labels.csv", index=False)  # 20 of 40 NaN
    REVIEWS.assign(label=rng.random(len(REVIEWS)).round(4)).to_csv(d / "float_labels.csv", index=False)  # a score, not classes
    (d / "float_labels.jsonl").write_text("".join(json.dumps({"text": row.text, "label": float(score)}) + "\n"
                                                  for row, score in zip(REVIEWS.itertuples(), rng.random(len(REVIEWS)), strict=True)))
    np.savez(d / "float_label_images.npz", image=rng.integers(0, 255, (30, 28, 28), dtype=np.uint8), label=rng.random(30))
    (d / "conf" / "task").mkdir(parents=True)
    (d / "conf" / "task" / "broken.yaml").write_text(
        "defaults:\n  - text_classification\n  - _self_\n\ntrain_size: [64\nval_size: 32\n")  # an unclosed list
    return d


@pytest.fixture(scope="module")
def real_search(tmp_path_factory) -> Path:
    """One tiny finished PPO search, as the nas command leaves it (.hydra/config.yaml, search.json, candidates.jsonl,
    its runs in root/mlflow.db); one candidate: the resume cases give it the checkpoint.pt they need."""
    from nas.runner import run_search

    root = tmp_path_factory.mktemp("real-search")
    config = compose_config([*TINY, "budget=1", f"tracking.uri=sqlite:///{root / 'mlflow.db'}"])
    out = root / "search"
    run_search(config, out)
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))
    return out


class Made:
    """What a case's arguments name as ``{made.<name>}``, made in the case's own tmp_path when asked for.

    ``store`` is the sqlite file the case must leave as it found it: the case's own (absent), or the copy of
    the real search's store that a resume target points at.
    """

    def __init__(self, tmp: Path, request: pytest.FixtureRequest):
        self.tmp, self.request = tmp, request
        self.store = tmp / "mlflow.db"

    def _search_copy(self, name: str) -> Path:
        original = self.request.getfixturevalue("real_search")
        copy = self.tmp / name
        shutil.copytree(original, copy)
        self.store = self.tmp / "store" / "mlflow.db"
        self.store.parent.mkdir()
        shutil.copy(original.parent / "mlflow.db", self.store)
        state = json.loads((copy / "search.json").read_text())
        (copy / "search.json").write_text(json.dumps({**state, "tracking_uri": f"sqlite:///{self.store}"}))
        return copy

    @property
    def missing_dir(self) -> Path:
        return self.tmp / "no-such-search"

    @property
    def not_a_search(self) -> Path:  # a Hydra output directory of a run that stopped before its search began
        copy = self._search_copy("not-a-search")
        for path in copy.iterdir():
            if path.name != ".hydra":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        return copy

    @property
    def foreign_state(self) -> Path:
        copy = self._search_copy("foreign-state")
        (copy / "search.json").write_text('{"something": "else"}')
        return copy

    @property
    def junk_checkpoint(self) -> Path:
        copy = self._search_copy("junk-checkpoint")
        (copy / "checkpoint.pt").write_bytes(np.random.default_rng(0).bytes(512))
        return copy

    @property
    def foreign_checkpoint(self) -> Path:
        import torch

        copy = self._search_copy("foreign-checkpoint")
        torch.save({"x": 1}, copy / "checkpoint.pt")
        return copy

    @property
    def free_port(self) -> int:
        return free_port()


# -- the battery ---------------------------------------------------------------------------------------------------

# (id, arguments, what the message must say: a regex). {files}: the bad files above; {made.<name>}: see Made.
# Each case also gets its own hydra.run.dir, and (unless it resumes: a resume takes no other override) the TINY
# settings and its own sqlite store.
CASES = [
    # Hydra composition: malformed YAML, unknown options and keys, wrong types
    ("malformed yaml", ["--config-dir={files}/conf", "task=broken"], r'in ".*/conf/task/broken\.yaml", line 5'),
    ("unknown task option", ["task=nope"], r"Could not find 'task/nope'"),
    ("misspelled key", ["ppo.clip_coeff=0.1"], r"Could not override 'ppo\.clip_coeff'"),
    ("misspelled key added with +", ["+trainer.learning_rat=0.1"],
     r"Key 'learning_rat' not in 'TrainerConfig'\s+full_key: trainer\.learning_rat"),
    ("wrong type", ["ppo.horizon=three"], r"ppo\.horizon=three\s+Value 'three' of type 'str' could not be converted to Integer"),
    ("unknown strategy", ["strategy=grid"], r"Could not find 'strategy/grid'"),
    ("another strategy's setting", ["strategy=tpe", "ppo.gamma=0.9"], r"Could not override 'ppo\.gamma'[\s\S]*Key 'ppo' not in"),
    ("another strategy's setting added with +", ["strategy=random", "+tpe.multivariate=false"], r"Key 'tpe' not in 'Config'"),
    ("missing shipped data", ["task.train_file=${{nas_data:nope/train.csv}}"], r"shipped data file 'nope/train\.csv' not found"),
    # settings out of range (validate_config)
    ("negative population", ["ppo.population_size=-1"], r"ppo\.population_size must be >= 1, got -1"),
    ("zero horizon", ["ppo.horizon=0"], r"ppo\.horizon must be >= 1, got 0"),
    ("gamma above 1", ["ppo.gamma=1.5"], r"ppo\.gamma must be in \[0, 1\], got 1\.5"),
    ("gamma below 0", ["ppo.gamma=-0.1"], r"ppo\.gamma must be in \[0, 1\], got -0\.1"),
    ("zero clip_coef", ["ppo.clip_coef=0"], r"ppo\.clip_coef must be a finite number > 0, got 0"),
    ("nan ppo learning rate", ["ppo.learning_rate=nan"], r"ppo\.learning_rate must be a number >= 0, got nan"),
    ("negative exploration", ["ppo.exploration=-1"], r"ppo\.exploration must be a number >= 0, got -1"),
    ("one-member ensemble", ["ppo.ensemble_members=1"], r"ppo\.ensemble_members must be >= 2, got 1"),
    ("ensemble fit without steps", ["ppo.ensemble_steps=0"], r"ppo\.ensemble_steps must be >= 1, got 0"),
    ("nan trainer learning rate", ["trainer.learning_rate=nan"], r"trainer\.learning_rate must be a positive number, got nan"),
    ("zero max_steps", ["trainer.max_steps=0"], r"trainer\.max_steps must be >= 1, got 0"),
    ("zero budget", ["budget=0"], r"budget must be >= 1.*got 0"),
    ("no budget and no iterations", ["budget=null", "ppo.iterations=null"], r"budget is null: set budget=N, or strategy=ppo with ppo\.iterations=N"),
    ("zero workers", ["parallel.workers=0"], r"parallel\.workers must be >= 1, got 0"),
    ("unknown cost", ["objective.cost=flops"], r"objective\.cost must be one of .*got 'flops'"),
    ("fidelity steps past max_steps", ["fidelity.steps=[2,9]"], r"fidelity\.steps must be .*trainer\.max_steps=4, got \[2, 9\]"),
    ("unknown device", ["trainer.device=tpu"], r"trainer\.device='tpu' is not a device"),
    ("infinite entropy coefficient", ["ppo.ent_coef=inf"], r"ppo\.ent_coef must be a finite number >= 0, got inf"),
    ("infinite clip coefficient", ["ppo.clip_coef=inf"], r"ppo\.clip_coef must be a finite number > 0, got inf"),
    ("infinite value coefficient", ["ppo.vf_coef=inf"], r"ppo\.vf_coef must be a finite number >= 0, got inf"),
    ("negative seed", ["seed=-1"], r"seed must be an integer in \[0, 2\*\*32 - 1\], got -1"),
    # task settings (TaskConfig.validate)
    ("zero train_size", ["task.train_size=0"], r"task\.train_size must be >= 1 .*got 0"),
    ("negative train_size", ["task.train_size=-5"], r"task\.train_size must be >= 1 .*got -5"),
    ("zero vocab_size", ["task.vocab_size=0"], r"task\.vocab_size must be >= 1, got 0"),
    ("zero max_length", ["task.max_length=0"], r"task\.max_length must be >= 1, got 0"),
    ("unknown tokenizer", ["task.tokenizer=sentencepiece"],
     r"task\.tokenizer must be one of \['wordpiece', 'byte_bpe'\], got 'sentencepiece'"),
    ("metric of another task", ["task.metric=bleu"], r"task\.metric 'bleu' is not a text_classification metric"),
    ("text column is the label column", ["task.text_column=label"],
     r"task\.text_column and task\.label_column both name column 'label'"),
    ("one-token language-model blocks", ["task=language_modeling", "task.max_length=1"],
     r"task\.max_length must be >= 2 for language_modeling .*got 1"),
    # the search space
    ("empty choice list", ["search_space.dimensions.hidden_size=[]"], r"search_space\.dimensions\.hidden_size has an empty choice list"),
    ("duplicated choice", ["search_space.dimensions.hidden_size=[64,64]"], r"search_space\.dimensions\.hidden_size lists choice 64 twice"),
    ("attribute the family lacks", ["+search_space.dimensions.n_embd=[32]"], r"\['n_embd'\] are not attributes of a 'bert' config"),
    ("family that does not fit the task", ["task=translation", "search_space=gpt2_small"],
     r"search_space\.family 'gpt2' does not fit task 'translation'"),
    ("max_params below the smallest", ["search_space.max_params=10"], r"search_space\.max_params=10 is below the smallest architecture"),
    ("unsatisfiable constraints", ["search_space.dimensions.hidden_size=[30]", "search_space.dimensions.num_attention_heads=[4]",
                                   "search_space.initial=null"],
     r"no architecture satisfying its constraints \(num_attention_heads divides hidden_size"),
    ("initial not a choice", ["search_space.initial.hidden_size=48"], r"search_space\.initial: 'hidden_size=48' is not a choice"),
    ("negative hidden sizes", ["search_space.dimensions.hidden_size=[-32,-64]", "search_space.initial=null"],
     r"search_space\.dimensions\.hidden_size: -32 is not a size: it must be >= 1"),
    ("strings for a size", ["search_space.dimensions.hidden_size=[abc,def]", "search_space.initial=null"],
     r"search_space\.dimensions\.hidden_size: 'abc' is not a valid 'bert' hidden_size: expected int, got str"),
    ("fractional layer counts", ["search_space.dimensions.num_hidden_layers=[1.5,2.5]", "search_space.initial=null"],
     r"search_space\.dimensions\.num_hidden_layers: 1\.5 is not a valid 'bert' num_hidden_layers: expected int, got float"),
    ("unknown activation", ["search_space.dimensions.hidden_act=[nosuchact]", "search_space.initial=null"],
     r"search_space\.dimensions\.hidden_act: 'nosuchact' is not an activation transformers knows \(.*'gelu'"),
    ("dropout above 1", ["search_space.dimensions.hidden_dropout_prob=[1.5]", "search_space.initial=null"],
     r"search_space\.dimensions\.hidden_dropout_prob: 1\.5 is not a probability: it must be in \[0, 1\]"),
    ("negative fixed vocab_size", ["+search_space.fixed.vocab_size=-1"], r"search_space\.fixed\.vocab_size: -1 is not a size: it must be >= 1"),
    ("fixed attribute the family lacks", ["+search_space.fixed.nosuchattr=3"],
     r"search_space\.fixed: \['nosuchattr'\] are not attributes of a 'bert' config"),
    ("fixed pad token outside the vocabulary", ["+search_space.fixed.pad_token_id=5000"],
     r"search_space: the architecture \{.*\} of 'bert' cannot be built as a 'bert' text_classification model .*Padding_idx"),
    ("max_length beyond the parameter budget", ["task.max_length=100000"],
     r"task\.max_length: .*100,000 positions.*search_space\.max_params=300000"),
    # data files
    ("missing data file", ["task.train_file={files}/nope.csv"], r"task\.train_file: data file '.*/nope\.csv' does not exist"),
    ("a folder as data file", ["task.validation_file={files}/folder.csv"], r"task\.validation_file: '.*/folder\.csv' is a directory"),
    ("empty data file", ["task.train_file={files}/empty.csv"], r"task\.train_file: '.*/empty\.csv' is empty"),
    ("header-only data file", ["task.validation_file={files}/header_only.csv"],
     r"task\.validation_file: '.*/header_only\.csv' has no rows"),
    pytest.param("unreadable data file", ["task.train_file={files}/unreadable.csv"],
                 r"task\.train_file: cannot read '.*/unreadable\.csv': .*Permission denied",
                 marks=pytest.mark.skipif(AS_ROOT, reason="root reads a file whatever its mode"), id="unreadable data file"),
    ("latin-1 data file", ["task.train_file={files}/latin1.csv"], r"task\.train_file: '.*/latin1\.csv' is not UTF-8"),
    ("utf-16 data file", ["task.train_file={files}/utf16.csv"], r"task\.train_file: '.*/utf16\.csv' is not UTF-8"),
    ("unknown file format", ["task.train_file={files}/reviews.xlsx"], r"task\.train_file: '.*/reviews\.xlsx' is not a \.csv"),
    ("missing text column", ["task.text_column=body"], r"task\.train_file: '.*train\.csv\.gz' has no column \['body'\]"),
    ("missing label column", ["task.label_column=stars"], r"task\.train_file: '.*train\.csv\.gz' has no column \['stars'\]"),
    ("mixed label types (csv)", ["task.train_file={files}/mixed_labels.csv"],
     r"task\.train_file: label column 'label' of '.*/mixed_labels\.csv' mixes label types: "
     r"numbers written as strings .* and strings \('pos'\)"),
    ("mixed label types (json)", ["task.train_file={files}/mixed_labels.jsonl"],
     r"label column 'label' of '.*/mixed_labels\.jsonl' mixes label types: numbers \(.*\) and strings \('(neg|pos)'"),
    ("single class", ["task.train_file={files}/single_class.csv"], r"task\.train_file: '.*/single_class\.csv' has a single label \[0\]"),
    ("images of the wrong shape", ["task=image_classification", "search_space=vit_small", "task.train_file={files}/small_images.npz"],
     r"task\.train_file: '.*/small_images\.npz' holds images of shape \(1, 16, 16\).*\(1, 28, 28\)"),
    ("not an npz archive", ["task=image_classification", "search_space=vit_small", "task.validation_file={files}/garbage.npz"],
     r"task\.validation_file: '.*/garbage\.npz' is not a \.npz archive"),
    ("a fifo as data file", ["task.train_file={files}/fifo.csv"], r"task\.train_file: '.*/fifo\.csv' is not a regular file"),
    ("a fifo as image file", ["task=image_classification", "search_space=vit_small", "task.validation_file={files}/fifo.npz"],
     r"task\.validation_file: '.*/fifo\.npz' is not a regular file"),
    ("validation labels of another type", ["task.train_file={files}/bool_labels.csv"],
     r"task\.validation_file: labels \[0, 1\] \(numbers\) are not among the training labels \[False, True\] \(booleans\)"),
    ("labels missing in many rows", ["task.train_file={files}/nan_labels.csv"],
     r"task\.train_file: 20 of the 40 rows read from '.*/nan_labels\.csv' have no value in column \['label'\].*more than 10%"),
    ("continuous float labels (csv)", ["task.train_file={files}/float_labels.csv"],
     r"task\.train_file: label column 'label' of '.*/float_labels\.csv' holds 40 distinct float values"),
    ("continuous float labels (json)", ["task.train_file={files}/float_labels.jsonl"],
     r"task\.train_file: label column 'label' of '.*/float_labels\.jsonl' holds 40 distinct float values"),
    ("continuous float labels (npz)", ["task=image_classification", "search_space=vit_small", "task.train_file={files}/float_label_images.npz"],
     r"task\.train_file: label array 'label' of '.*/float_label_images\.npz' holds 30 distinct float values"),
    # where the search writes: its output directory, its tracking store, a warm start
    ("output dir under a file", ["hydra.run.dir={files}/a_file/run"], r"'.*/a_file/run'"),
    pytest.param("read-only output dir", ["hydra.run.dir={files}/read_only/run"], r"Permission denied: '.*/read_only/run'",
                 marks=pytest.mark.skipif(AS_ROOT, reason="root writes a folder whatever its mode"), id="read-only output dir"),
    ("sqlite store under a file", ["tracking.uri=sqlite:///{files}/a_file/mlflow.db"], r"tracking\.uri: .*'.*/a_file/mlflow\.db'"),
    ("unreachable tracking server", ["tracking.uri=http://127.0.0.1:{made.free_port}"],
     r"tracking\.uri: no MLflow tracking server answers at http://127\.0\.0\.1:\d+"),
    ("missing warm-start controller", ["ppo.init_from={files}/nope.pt"], r"ppo\.init_from: '.*/nope\.pt' is not a controller file"),
    # resume targets
    ("resume a missing directory", ["resume={made.missing_dir}"],
     r"resume: '.*/no-such-search(/\.hydra/config\.yaml' does not exist|' (does not exist|is not a directory))"),
    ("resume a directory that is not a search", ["resume={made.not_a_search}"], r"resume: '.*/not-a-search' has no search\.json"),
    ("resume a foreign search state", ["resume={made.foreign_state}"], r"resume: .*/foreign-state/search\.json is not a nas search state"),
    ("resume with other overrides", ["resume={made.missing_dir}", "budget=3"], r"drop the other overrides: budget=3"),
    ("resume a junk checkpoint", ["resume={made.junk_checkpoint}"],
     r"resume: '.*/junk-checkpoint/checkpoint\.pt' is not a readable checkpoint"),
    ("resume a foreign checkpoint", ["resume={made.foreign_checkpoint}"],
     r"resume: '.*/foreign-checkpoint/checkpoint\.pt' is not a nas search checkpoint"),
]


TIME_LIMITS = {"unreachable tracking server": 10}  # fail fast: well before any connection timeout or retry


def _case_id(case) -> str:
    return case.id if hasattr(case, "id") else case[0]


def store_runs(db: Path) -> list[tuple]:
    """Every run in a sqlite store, with what would change if anything were logged to it; [] when there is no store."""
    if not db.exists():
        return []
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = client.search_runs(experiments, run_view_type=ViewType.ALL) if experiments else []
    return sorted((r.info.run_id, r.info.status, r.info.end_time, sorted(r.data.metrics.items()), sorted(r.data.tags.items()))
                  for r in runs)


def recorded_candidates(tmp: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in tmp.rglob("candidates.jsonl")}


@pytest.mark.parametrize("case_id, arguments, expected", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_one_message_naming_it(case_id, arguments, expected, files, tmp_path, request, monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("NAS_TRACEBACK", raising=False)
    made = Made(tmp_path, request)
    arguments = [a.format(files=files, made=made) for a in arguments]
    options = [a for a in arguments if a.startswith("--")]  # Hydra's own flags come before the overrides
    overrides = [a for a in arguments if not a.startswith("--")]
    settings = [] if any(a.startswith("resume=") for a in overrides) else [*TINY, f"tracking.uri=sqlite:///{made.store}"]
    runs_before, candidates_before = store_runs(made.store), recorded_candidates(tmp_path)
    # The case's own overrides last (Hydra: the last one wins), hydra.run.dir first (a case may name another).
    argv = [*options, f"hydra.run.dir={tmp_path / 'run'}", *settings, *overrides]
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, *argv)
    seconds = time.monotonic() - started
    err = capsys.readouterr().err

    assert exit_.value.code == EXIT_BAD_INPUT, err
    assert "nas: error:" in err and "nas: (set HYDRA_FULL_ERROR=1 for the traceback)" in err, err
    message = err.split("nas: error:", 1)[1]
    assert re.search(expected, message), f"expected /{expected}/ in:\n{err}"
    assert "Traceback" not in err, err
    assert recorded_candidates(tmp_path) == candidates_before  # nothing trained
    assert store_runs(made.store) == runs_before  # nothing logged: no store, no run, no run changed
    assert seconds < TIME_LIMITS.get(case_id, 60), f"took {seconds:.1f} s to fail"


# -- tracebacks on request, the console script, and a training subset larger than the data ---------------------

@pytest.mark.parametrize("override, error", [("ppo.gamma=1.5", ValueError), ("task=nope", ConfigCompositionException)],
                         ids=["validation", "composition"])
def test_hydra_full_error_shows_the_traceback(override, error, tmp_path, monkeypatch, capsys):
    # In this process the exception itself propagates (a console script prints it with its traceback).
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(error) as raised:
        run_cli(monkeypatch, f"hydra.run.dir={tmp_path / 'run'}", *TINY, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", override)
    assert not isinstance(raised.value, SystemExit)
    assert override.split("=")[1] in str(raised.value) + str(raised.value.__cause__)
    assert "nas: error:" not in capsys.readouterr().err  # the traceback, not the one-line message
    assert not (tmp_path / "mlflow.db").exists()


def test_the_console_command_reports_bad_input_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "NAS_TRACEBACK")}
    proc = subprocess.run([sys.executable, "-m", "nas", "ppo.gamma=1.5", f"hydra.run.dir={tmp_path / 'run'}",
                           f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-3000:]
    assert "nas: error: ppo.gamma must be in [0, 1], got 1.5\nnas: (set HYDRA_FULL_ERROR=1 for the traceback)\n" in proc.stderr, \
        proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.rglob("candidates.jsonl"))


def test_a_train_size_larger_than_the_data_uses_all_of_it_with_a_warning(tmp_path, caplog):
    # task.train_size is "the first N examples": a smaller file is not an error, the search goes on with all of it.
    REVIEWS.to_csv(tmp_path / "train.csv", index=False)
    config = compose_config([*TINY, f"task.train_file={tmp_path / 'train.csv'}", f"task.validation_file={tmp_path / 'train.csv'}",
                             "task.train_size=100000", "task.val_size=20"])
    with caplog.at_level(logging.WARNING, logger="nas.tasks.data"):
        task = make_task(config.task)
    assert len(task.train["labels"]) == len(REVIEWS) == 40
    assert len(task.val["labels"]) == 20
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert re.fullmatch(r"task\.train_size=100000 but '.*/train\.csv' has only 40 rows: all 40 are used", warning), warning


# -- the checks runner.validate_config can make before any file is read ---------------------------------------------

def shipped(group: str, schema: Callable[[str], type]):
    """Every option of a conf/ group as its typed schema (``schema(option)``), without Hydra (its defaults list dropped)."""
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        yaml = OmegaConf.load(path)
        yaml.pop("defaults", None)
        yield path.stem, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema(path.stem)), yaml))


def test_every_shipped_task_and_space_passes_validation():
    # TaskConfig.validate and SearchSpaceConfig.validate run before any data is read: they must accept what conf/ ships.
    tasks = dict(shipped("task", lambda option: TASKS[option].schema))
    for task in tasks.values():
        task.validate()
    for name, space in shipped("search_space", lambda option: SearchSpaceConfig):
        fits = [t.name for t in tasks.values() if t.name in get_family(space.family).tasks]
        assert fits, name
        space.validate(fits[0])


@pytest.mark.parametrize("change, message", [
    ({"dimensions": {"hidden_size": []}}, r"search_space\.dimensions\.hidden_size has an empty choice list"),
    ({"dimensions": {"hidden_size": [64, 64]}}, r"search_space\.dimensions\.hidden_size lists choice 64 twice"),
    ({"dimensions": {"n_embd": [32]}}, r"\['n_embd'\] are not attributes of a 'bert' config"),
    ({"max_params": 0}, r"search_space\.max_params must be >= 1"),
    ({"initial": {"hidden_size": 48}}, r"search_space\.initial: 'hidden_size=48' is not a choice"),
    ({"family": "vit"}, r"search_space\.family 'vit' does not fit task 'text_classification'"),
    ({"dimensions": {"intermediate_size": [0, 64]}}, r"search_space\.dimensions\.intermediate_size: 0 is not a size: it must be >= 1"),
    ({"dimensions": {"num_hidden_layers": [-1, 1]}}, r"search_space\.dimensions\.num_hidden_layers: -1 is not a number of layers"),
    ({"dimensions": {"attention_probs_dropout_prob": [0.1, -0.2]}},
     r"search_space\.dimensions\.attention_probs_dropout_prob: -0\.2 is not a probability"),
    ({"dimensions": {"hidden_dropout_prob": [0.0, float("nan")]}}, r"search_space\.dimensions\.hidden_dropout_prob: nan is not a finite"),
    ({"dimensions": {"layer_norm_eps": [0.0]}}, r"search_space\.dimensions\.layer_norm_eps: 0\.0 is not an epsilon: it must be > 0"),
    ({"dimensions": {"initializer_range": [1]}},
     r"search_space\.dimensions\.initializer_range: 1 is not a valid 'bert' initializer_range: expected float, got int"),
    ({"fixed": {"hidden_act": "nosuchact"}}, r"search_space\.fixed\.hidden_act: 'nosuchact' is not an activation"),
    ({"fixed": {"type_vocab_size": 0}}, r"search_space\.fixed\.type_vocab_size: 0 is not a size"),
    ({"fixed": {"hidden_size": 64}}, r"search_space\.fixed: \['hidden_size'\] are also search_space\.dimensions"),
], ids=["empty choices", "duplicate choice", "unknown attribute", "zero max_params", "initial not a choice", "family misfit",
        "zero size", "negative layers", "negative dropout", "nan dropout", "zero epsilon", "int for a float", "fixed activation",
        "fixed zero size", "fixed and a dimension"])
def test_search_space_validation_needs_no_data(change, message):
    # For runner.validate_config: the space's own mistakes, found before the task reads any file.
    from nas.space import SpaceError

    space, change = dict(shipped("search_space", SearchSpaceConfig))["bert_small"], dict(change)
    dimensions = {**space.dimensions, **change.pop("dimensions", {})}
    initial = {**space.initial, **change.pop("initial", {})}
    space = dataclasses.replace(space, dimensions=dimensions, initial=initial, **change)
    with pytest.raises(SpaceError, match=message):
        space.validate("text_classification")


@pytest.mark.parametrize("family, name, value", [
    ("gpt2", "hidden_size", "wide"), ("gpt2", "n_layer", -1), ("gpt2", "activation_function", "nosuchact"), ("gpt2", "attn_pdrop", 2.0),
    ("t5", "feed_forward_proj", "gated-nosuchact"), ("t5", "d_kv", 0), ("bart", "encoder_attention_heads", 0),
    ("bart", "encoder_layerdrop", 1.5), ("vit", "patch_size", -4), ("audio-spectrogram-transformer", "num_mel_bins", 0),
])
def test_every_family_refuses_values_no_candidate_can_take(family, name, value):
    from nas.models import check_attribute_values
    from nas.space import SpaceError

    with pytest.raises(SpaceError, match=rf"search_space\.dimensions\.{name}: {re.escape(repr(value))} is not"):
        check_attribute_values(family, {name: [value]}, "search_space.dimensions")


def test_every_default_value_of_every_family_is_accepted():
    # The rules go by attribute name: none may refuse what transformers itself ships as a default.
    from transformers import AutoConfig

    from nas.models import FAMILIES, _field_types, value_problem

    for family in FAMILIES:
        defaults = AutoConfig.for_model(family)
        for name in _field_types(family):
            assert value_problem(family, name, getattr(defaults, name)) is None, (family, name)


def test_the_build_check_draws_no_random_number_and_names_an_architecture_that_cannot_build():
    import torch

    from nas.models import make_space
    from nas.space import SpaceError

    space = dict(shipped("search_space", SearchSpaceConfig))["bert_small"]
    fields = {"vocab_size": 300, "max_position_embeddings": 64, "pad_token_id": 0, "num_labels": 2}
    torch.manual_seed(0)
    make_space("bert", space.dimensions, "text_classification", fields, space.max_params, name="bert")
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after)  # the meta-device builds left the generator where it was
    with pytest.raises(SpaceError, match=r"the architecture \{'num_hidden_layers': 1, 'hidden_size': 32.*cannot be built.*Padding_idx"):
        make_space("bert", space.dimensions, "text_classification", {**fields, "pad_token_id": 300}, space.max_params, name="bert")


@pytest.mark.parametrize("name, message", [("tpu", "is not a device nas trains on"), ("meta", "is not a device nas trains on"),
                                           ("cuda:x", "is not a device nas trains on"), ("cuda:99", "CUDA")])
def test_devices_this_machine_cannot_train_on_are_named(name, message):
    from nas.train import resolve_device

    with pytest.raises(ValueError, match=rf"trainer\.device='{re.escape(name)}'.*{message}"):
        resolve_device(name)
    assert resolve_device("cpu").type == "cpu"


def _labelled(tmp_path: Path, labels: list, name: str = "train.csv") -> Path:
    REVIEWS.assign(label=labels).to_csv(tmp_path / name, index=False)
    return tmp_path / name


def test_a_few_rows_without_a_label_are_left_out_with_a_warning_that_counts_them(tmp_path, caplog):
    # At most 10% of the rows read (nas.tasks.data.MAX_MISSING_SHARE) may lack a value; more is an error (see CASES).
    labels = [None if i in (3, 17) else int(v) for i, v in enumerate(REVIEWS.label)]
    config = compose_config([*TINY, f"task.train_file={_labelled(tmp_path, labels)}", "task.train_size=40"])
    with caplog.at_level(logging.WARNING, logger="nas.tasks.data"):
        task = make_task(config.task)
    assert len(task.train["labels"]) == 38
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert re.fullmatch(r"task\.train_file: 2 of the 40 rows read from '.*/train\.csv' have no value in column \['label'\]: "
                        r"those rows are left out", warning), warning


def test_whole_number_float_labels_and_few_float_labels_are_classes(tmp_path):
    # A label column with a gap reads as floats (0.0, 1.0): still two classes; so are 20 distinct fractional values at most.
    from nas.tasks.data import MAX_FLOAT_CLASSES, DataError, check_class_labels

    labels = [None if i == 5 else int(v) for i, v in enumerate(REVIEWS.label)]
    config = compose_config([*TINY, f"task.train_file={_labelled(tmp_path, labels)}", "task.train_size=40"])
    assert make_task(config.task).config_fields()["num_labels"] == 2
    check_class_labels([float(i) for i in range(100)], "label", "f.csv", "task.train_file")
    check_class_labels([i / 2 for i in range(MAX_FLOAT_CLASSES)], "label", "f.csv", "task.train_file")
    with pytest.raises(DataError, match=rf"holds {MAX_FLOAT_CLASSES + 1} distinct float values"):
        check_class_labels([i / 2 for i in range(MAX_FLOAT_CLASSES + 1)], "label", "f.csv", "task.train_file")
    with pytest.raises(DataError, match="holds NaN labels"):
        check_class_labels(np.array([0.0, np.nan, 1.0]).tolist(), "label", "f.npz", "task.train_file", what="label array")


# -- a bug is not bad input: its traceback is shown --------------------------------------------------------------

@pytest.mark.parametrize("bug", [ValueError("a bug's ValueError"),
                                 FileNotFoundError(2, "No such file or directory", "/internal/state.json")], ids=["ValueError", "OSError"])
def test_a_plain_error_inside_the_command_keeps_its_traceback(bug, tmp_path, monkeypatch, capsys):
    # Only BadInput (and Hydra's composition errors) is the user's: a ValueError or an OSError from nas's own code is a bug.
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("NAS_TRACEBACK", raising=False)

    def buggy_check(config):
        raise bug

    monkeypatch.setattr(nas.cli, "check_settings", buggy_check)
    with pytest.raises(type(bug)) as raised:  # not SystemExit(2): the console script prints the traceback
        run_cli(monkeypatch, f"hydra.run.dir={tmp_path / 'run'}", *TINY, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}")
    assert raised.value is bug
    assert "nas: error:" not in capsys.readouterr().err


def test_the_console_command_shows_a_bugs_traceback():
    # The reporting path itself, in a fresh interpreter as the console script runs it (nas.errors alone: no heavy imports).
    program = ("from nas.errors import run_command\n"
               "def search():\n"
               "    raise ValueError('not the user input: a bug')\n"
               "run_command(search, 'nas')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "NAS_TRACEBACK")}
    proc = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.returncode != EXIT_BAD_INPUT, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr and "in search" in proc.stderr, proc.stderr
    assert proc.stderr.rstrip().endswith("ValueError: not the user input: a bug") and "nas: error:" not in proc.stderr


def test_which_errors_are_bad_input():
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ValidationError
    from yaml import YAMLError

    from nas.controller import ControllerError
    from nas.errors import BadInput, CallbackError, MissingExtra, ReplayError, ResumeError, SearchStopped, UnusablePath, is_bad_input
    from nas.space import SpaceError
    from nas.sweep import SweepJobError
    from nas.tasks.data import DataError

    user = [BadInput("x"), DataError("x"), SpaceError("x"), ControllerError("x"), ResumeError("x"), SweepJobError("x"),
            MissingExtra("x"), CallbackError(BadInput("x")), ConfigCompositionException("x"), ValidationError("x"), YAMLError("x"),
            ReplayError("x")]
    bugs = [ValueError("x"), OSError(2, "No such file or directory", "f"), ImportError("x"), KeyError("x"), TypeError("x"),
            RuntimeError("x"), CallbackError(ValueError("x")), SearchStopped("x")]
    assert [e for e in user if not is_bad_input(e)] == []
    assert [e for e in bugs if is_bad_input(e)] == []
    assert isinstance(BadInput("x"), ValueError) and isinstance(MissingExtra("x"), ImportError)  # what callers caught before
    assert not isinstance(UnusablePath(OSError(13, "Permission denied", "f")), OSError)  # a run's own OSError stops it, not this


def test_a_user_named_file_that_cannot_be_opened_is_bad_input_naming_it(tmp_path):
    from nas.errors import UnusablePath, describe, user_path

    missing = tmp_path / "corpus.txt"
    with pytest.raises(UnusablePath) as raised, user_path("trainer.pretrain.corpus_file"):
        missing.read_text()
    assert describe(raised.value) == f"trainer.pretrain.corpus_file: No such file or directory: '{missing}'"


@pytest.mark.parametrize("setting, package, message", [
    ("strategy=tpe", "optuna", "strategy=tpe needs Optuna: pip install 'transformer-nas[tpe]'"),
    ("parallel.backend=ray", "ray", "parallel.backend=ray needs Ray: pip install 'transformer-nas[ray]'"),
], ids=["tpe", "ray"])
def test_a_missing_optional_extra_is_one_message_with_its_install_hint(setting, package, message, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("NAS_TRACEBACK", raising=False)
    monkeypatch.setitem(sys.modules, package, None)  # importing it raises ImportError, as when the extra is not installed
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, f"hydra.run.dir={tmp_path / 'run'}", *TINY, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", setting)
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_BAD_INPUT, err
    assert f"nas: error: {message}" in err and "Traceback" not in err, err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "run").exists()  # found before anything is logged or kept


def test_a_launcher_that_is_not_installed_is_named_with_its_install_hint():
    # Without the launchers extra Hydra only says it cannot find the option (its plugins are installed here: its own error).
    from hydra.errors import MissingConfigException

    from nas.errors import describe, is_bad_input

    missing = MissingConfigException("In 'hydra/config': Could not find 'hydra/launcher/submitit_slurm'\n\n"
                                     "Available options in 'hydra/launcher':\n\tbasic")
    assert is_bad_input(missing)
    hint = "hydra/launcher=submitit_slurm needs Hydra's launcher plugins: pip install 'transformer-nas[launchers]'"
    assert describe(missing).endswith("\n" + hint)
    misspelled = MissingConfigException("In 'hydra/config': Could not find 'hydra/launcher/jobilb'")
    assert "pip install" not in describe(misspelled)
