"""What a user sees of the commands: the progress bar's total, --help, --version, the summary, no leftovers after a refusal.

The real commands (their Hydra apps, in this process) and a real tiny search.
"""

import re
from importlib.metadata import version

import pytest

from nas.runner import progress_total, run_search

from .conftest import TINY, compose_config, run_nas
from .test_final import run_cli


def test_progress_total_is_the_real_cap():
    assert progress_total(compose_config([])) == 44  # the budget
    # PPO's rounds end the search first: the start-up candidates, then population_size a round.
    assert progress_total(compose_config(["ppo.iterations=3", "ppo.population_size=4"])) == 22
    assert progress_total(compose_config(["ppo.iterations=3", "ppo.population_size=4", "ppo.startup_candidates=1"])) == 13
    assert progress_total(compose_config(["ppo.iterations=30"])) == 44
    assert progress_total(compose_config(["strategy=random"])) == 44  # random search has no rounds (and no ppo.* settings)


@pytest.mark.slow
def test_a_search_cut_short_by_its_rounds_ends_its_bar_full_and_logs_rounded_metrics(tmp_path, sqlite_uri, capsys, caplog):
    overrides = [*TINY, "budget=10", "ppo.iterations=2", "progress=true", f"tracking.uri={sqlite_uri}"]
    with caplog.at_level("INFO", logger="nas.runner"):
        result = run_search(compose_config(overrides), tmp_path / "run")
    n = len(result.history)
    assert n == 5  # 1 + 2 rounds x 2
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    finals = [line for line in bar if line.startswith("ppo search")]
    assert f"{n}/{n}" in finals[-1] and "/10" not in "".join(finals)
    [summary] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("best reward")]
    metrics = summary.split("metrics ", 1)[1].split("}", 1)[0]
    assert re.findall(r"\d+\.\d+", metrics) and not re.findall(r"\d+\.\d{5,}", metrics), summary  # 0.3846, not 0.38461538461538464


def test_option_lists_offer_the_options_not_the_schemas(monkeypatch, capsys):
    """Schemas live in Hydra's _schemas/ group: an unknown option's error and shell completion list conf/'s options only."""
    assert run_nas(monkeypatch, "task=nope") == 2
    listed = capsys.readouterr().err.split("Available options in 'task':")[1].split("Config search path")[0].split()
    assert listed == ["audio_classification", "image_classification", "language_modeling", "text_classification", "translation"]
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nas.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        repository = GlobalHydra.instance().config_loader().get_group_options
        assert repository("strategy") == ["evolution", "ppo", "random", "tpe"]
        assert repository("trainer") == ["default", "final", "pretrain_finetune", "tiny"]
    GlobalHydra.instance().clear()


def test_help_names_the_commands_and_their_groups(monkeypatch, capsys):
    assert run_nas(monkeypatch, "--help") in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("nas: neural-architecture search") and "powered by Hydra" not in out
    assert "  task: audio_classification, image_classification" in out and "base_" not in out.split("== Settings")[0]
    assert "  strategy: evolution, ppo, random, tpe" in out  # a group now, each option with its own settings
    with _exit_ok():  # Hydra may end --help with exit 0
        run_cli(monkeypatch, "--help")
    out = capsys.readouterr().out
    groups = out.split("== Groups (group=option) ==")[1].split("==")[0]
    assert out.startswith("nas-final: train a finished search's best architecture") and "powered by Hydra" not in out
    assert groups.strip() == "trainer: default, final, pretrain_finetune, tiny"  # not task, search_space, strategy... it ignores


class _exit_ok:
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is None or (kind is SystemExit and exc.code in (0, None))


def test_version_is_the_projects(monkeypatch, capsys):
    assert run_nas(monkeypatch, "--version") == 0
    assert capsys.readouterr().out.strip() == f"nas {version('transformer-nas')}"
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, "--version")
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"nas-final {version('transformer-nas')}"


@pytest.mark.parametrize("bad", [["ppo.gamma=1.5"], ["task.train_file=/nonexistent/train.csv"], ["search_space.max_params=1"]])
def test_a_refused_search_leaves_no_run_folder(bad, tmp_path, monkeypatch, capsys):
    run = tmp_path / "runs" / "refused"
    assert run_nas(monkeypatch, *TINY, *bad, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"hydra.run.dir={run}") == 2
    assert "error:" in capsys.readouterr().err
    assert not run.exists()


def test_a_refused_command_keeps_the_users_own_files_in_the_folder(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert run_nas(monkeypatch, "ppo.gamma=1.5", f"hydra.run.dir={mine}") == 2
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_refused_final_leaves_no_run_folder(tmp_path, monkeypatch):
    out = tmp_path / "final"
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, f"search={tmp_path / 'nope'}", f"hydra.run.dir={out}")
    assert exit_.value.code == 2 and not out.exists()


def test_the_readme_starts_mlflow_without_telemetry():
    from nas.config import CONF_DIR

    readme = (CONF_DIR.parent / "README.md").read_text()
    commands = [line for line in readme.splitlines() if re.search(r"\bmlflow (ui|server)\b", line) and "`" not in line]
    assert commands and all(line.startswith("MLFLOW_DISABLE_TELEMETRY=true ") for line in commands), commands
