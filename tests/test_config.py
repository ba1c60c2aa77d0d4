"""Real Hydra composition: every option of every group composes into the typed schema; bad keys fail by name."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from nas.config import CONF_DIR, Config
from nas.strategies import STRATEGIES
from nas.settings import EvolutionConfig, ObjectiveConfig, ParallelConfig, PPOConfig, TPEConfig, TrainerConfig
from nas.tasks import TASKS

from .conftest import TINY, compose_config

# The space `nas task=<task>` searches when no search_space is named.
TASK_SPACES = {"text_classification": "bert", "language_modeling": "gpt2", "image_classification": "vit", "translation": "t5",
               "audio_classification": "audio-spectrogram-transformer"}
GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in Path(CONF_DIR).iterdir() if g.is_dir()}
PAIRS = {"gpt2_small": "language_modeling", "vit_small": "image_classification"}  # options that need another group's option to make sense


@pytest.mark.parametrize("group, option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_converts_to_typed_objects(group, option):
    overrides = [f"{group}={option}"]
    if group in ("experiment_task", "experiment_strategy"):  # chosen by experiment and task (strategy) together, never alone
        experiment, other = option.split("_", 1)
        overrides = [f"experiment={experiment}", f"{group.split('_')[1]}={other}"]
    if group == "search_space" and option in PAIRS:
        overrides.append(f"task={PAIRS[option]}")
    config = compose_config(overrides)
    assert isinstance(config, Config) and isinstance(config.trainer, TrainerConfig)
    settings = STRATEGIES[config.strategy].settings  # the chosen strategy's settings, and no other strategy's
    assert type(config.strategy_settings) is (settings or type(None))
    assert not any(hasattr(config, other) for other in STRATEGIES if other != config.strategy)
    assert Path(config.task.train_file).is_file()


def test_required_keys_exist_with_their_names():
    c = compose_config()
    for key in ["iterations", "population_size", "horizon", "gamma", "gae_lambda", "clip_coef", "learning_rate", "update_epochs", "ent_coef", "vf_coef"]:
        assert hasattr(c.ppo, key)
    assert (c.seed, c.trainer.max_steps, c.trainer.batch_size, c.trainer.learning_rate) is not None
    assert c.task.train_size > 0 and c.task.val_size > 0
    assert c.tracking.uri.startswith("sqlite:///") and c.tracking.experiment_name


def test_the_cli_and_the_library_use_the_same_ppo_defaults():
    import dataclasses

    from nas import search

    cli = compose_config().ppo
    assert dataclasses.asdict(cli) == dataclasses.asdict(PPOConfig())
    # ... and a search run from nas.search with no settings builds exactly that config.
    result = search({"x": [0, 1, 2]}, lambda a: a["x"], budget=2)
    assert dataclasses.asdict(result.strategy.config) == dataclasses.asdict(PPOConfig())


@pytest.mark.parametrize("group, schema", [("trainer", TrainerConfig), ("parallel", ParallelConfig), ("objective", ObjectiveConfig)])
def test_the_cli_and_the_library_use_the_same_defaults(group, schema):
    assert dataclasses.asdict(getattr(compose_config(), group)) == dataclasses.asdict(schema())


@pytest.mark.parametrize("name", [name for name, spec in STRATEGIES.items() if spec.settings])
def test_every_strategy_option_holds_its_settings_defaults(name):
    from nas import search

    cli = compose_config([f"strategy={name}"]).strategy_settings
    assert dataclasses.asdict(cli) == dataclasses.asdict(STRATEGIES[name].settings())
    result = search({"x": [0, 1, 2]}, lambda a: a["x"], strategy=name, budget=2)  # nas.search builds the same settings
    assert dataclasses.asdict(result.strategy.config) == dataclasses.asdict(cli)


def test_a_strategys_settings_apply_only_with_it():
    assert compose_config(["strategy=tpe", "tpe.n_startup_trials=5"]).tpe == TPEConfig(n_startup_trials=5)
    assert compose_config(["strategy=evolution"]).evolution == EvolutionConfig()
    assert compose_config(["ppo.gamma=0.9"]).ppo.gamma == 0.9  # the default strategy's
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["strategy=tpe", "ppo.gamma=0.9"])
    assert "'ppo'" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["strategy=tpe", "tpe.n_startup=5"])
    assert "n_startup" in str(err.value.__cause__)


def test_configs_load_and_are_checked_without_torch_transformers_or_mlflow():
    code = ("import sys; from nas.config import Config, check_settings, to_typed; import nas; "
            "heavy = sorted(m for m in ('torch', 'transformers', 'mlflow', 'sklearn') if m in sys.modules); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_smoke_experiment_is_the_tests_tiny_settings():
    tiny = ["trainer=tiny", "budget=5", "ppo.population_size=2", "ppo.horizon=2", "ppo.iterations=3", "ppo.startup_candidates=1",
            "task.train_size=64", "task.val_size=32", "progress=false"]
    assert dataclasses.asdict(compose_config(TINY)) == dataclasses.asdict(compose_config([*tiny, "task.vocab_size=300"]))
    # a setting only some tasks have is set for those tasks alone (conf/experiment_task/): smoke works with every task
    for task in TASK_SPACES:
        assert dataclasses.asdict(compose_config([*TINY, f"task={task}"])) == dataclasses.asdict(compose_config(
            [*tiny, f"task={task}", *(["task.vocab_size=300"] if hasattr(TASKS[task].schema, "vocab_size") else [])]))
    # PPO's short rounds apply to PPO alone (conf/experiment_strategy/): smoke works with every strategy
    for name in STRATEGIES:
        if name != "ppo":
            without_ppo = [o for o in tiny if not o.startswith("ppo.")]
            assert dataclasses.asdict(compose_config([*TINY, f"strategy={name}"])) == dataclasses.asdict(compose_config(
                [*without_ppo, f"strategy={name}", "task.vocab_size=300"]))
    later = compose_config(["experiment=smoke", "budget=9", "task=language_modeling"])  # the command line still wins
    assert (later.budget, later.task.name, later.trainer.max_steps) == (9, "language_modeling", 4)


def test_overrides_apply():
    c = compose_config(["ppo.iterations=10", "task=language_modeling", "search_space=gpt2_small", "seed=7"])
    assert (c.ppo.iterations, c.task.name, c.search_space.family, c.strategy, c.seed) == (10, "language_modeling", "gpt2", "ppo", 7)
    c = compose_config(["strategy=evolution", "evolution.sample_size=2", "task=language_modeling"])
    assert (c.strategy, c.evolution.sample_size, c.task.name) == ("evolution", 2, "language_modeling")


def test_unknown_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException, match="ppo.clip_coeff"):
        compose_config(["ppo.clip_coeff=0.3"])
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="learning_rat"):
        compose_config(["+trainer.learning_rat=0.1"])


def test_wrong_type_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["ppo.horizon=three"])
    assert "horizon" in str(err.value.__cause__ or err.value)
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["strategy=grid"])
    assert "strategy" in str(err.value.__cause__ or err.value)


def test_unknown_group_option_fails_naming_it():
    with pytest.raises(ConfigCompositionException, match="search_space.*bert_huge|bert_huge"):
        compose_config(["search_space=bert_huge"])



@pytest.mark.parametrize("task, family", TASK_SPACES.items())
def test_a_task_alone_picks_a_fitting_space_and_the_command_line_wins(task, family):
    assert compose_config([f"task={task}"]).search_space.family == family
    assert compose_config([f"task={task}", "search_space=gpt2_small"]).search_space.family == "gpt2"


def test_every_task_option_has_a_default_space():
    assert set(GROUPS["task"]) == set(TASK_SPACES)


FLAT_IMAGE_TASK = {  # the task section of a run folder's .hydra/config.yaml, saved before each task had its own schema
    "name": "image_classification", "train_file": "${nas_data:fashion_mnist/train.npz}",
    "validation_file": "${nas_data:fashion_mnist/validation.npz}", "text_column": "text", "label_column": "label",
    "train_size": 64, "val_size": 32, "test_file": "${nas_data:fashion_mnist/test.npz}", "test_size": None, "max_length": 64,
    "tokenizer": "wordpiece", "vocab_size": 4000, "metric": "accuracy", "image_column": "image", "image_size": 28,
    "num_channels": 1, "source_column": "source", "target_column": "target", "max_new_tokens": 48, "audio_column": "audio",
    "sampling_rate": 8000, "num_mel_bins": 32, "test_files": {},
}


def test_a_config_saved_with_the_flat_task_schema_loads_with_its_tasks_settings_only():
    from omegaconf import OmegaConf

    from nas.config import to_typed

    saved = OmegaConf.to_container(OmegaConf.structured(compose_config(["task=image_classification"])))
    old = to_typed(OmegaConf.create({**saved, "task": FLAT_IMAGE_TASK}))
    # (an old run had no class names for images: they load as none)
    assert old.task == compose_config(["task=image_classification", "task.train_size=64", "task.val_size=32", "task.label_names=null"]).task
    with pytest.raises(ConfigKeyError, match="vocab_size"):  # one foreign key alone is no old config: refused
        to_typed(OmegaConf.create({**saved, "task": {**saved["task"], "vocab_size": 300}}))


@pytest.mark.parametrize("name", list(STRATEGIES)[:4])
def test_a_config_saved_with_every_strategys_settings_loads_with_its_own_only(name):
    from omegaconf import OmegaConf

    from nas.config import to_typed

    # a run folder's .hydra/config.yaml, saved when ppo, evolution and tpe were always-present sections
    saved = OmegaConf.to_container(OmegaConf.structured(compose_config()))
    flat = {**saved, "strategy": name, "ppo": saved["ppo"], "evolution": {"population_size": 12, "sample_size": 3},
            "tpe": {"n_startup_trials": 7, "multivariate": True, "n_ei_candidates": 24, "max_retries": 50}}
    old = to_typed(OmegaConf.create(flat))
    own = {k: v for k, v in saved.items() if k != "ppo"}
    own.update({"strategy": name, **({name: flat[name]} if name != "random" else {})})
    assert old.strategy == name and dataclasses.asdict(old) == dataclasses.asdict(to_typed(OmegaConf.create(own)))
    assert not any(hasattr(old, other) for other in ("ppo", "evolution", "tpe") if other != name)
    with pytest.raises(ConfigKeyError, match="tpe"):  # one foreign section alone is no old config: refused
        to_typed(OmegaConf.create({**saved, "tpe": flat["tpe"]}))
