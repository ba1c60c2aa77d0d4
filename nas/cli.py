"""The `nas` command: Hydra composes conf/, this shell turns it into typed objects and runs the search.

The only module that sees a DictConfig.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nas.config import CONF_DIR, Config, check_settings, register_configs, saved_config, to_typed
from nas.errors import is_bad_input, reporting, run_command
from nas.folders import LOCK_FILE, search_files

register_configs()


def register_help() -> None:
    """``${nas_groups:task,trainer}`` in a help template (conf/hydra/help/): each group with its options, read from
    conf/ (the schemas Hydra also lists, base_*, left out), so ``--help`` names what a user can choose."""
    def groups(*names: str) -> str:
        return "\n".join(f"  {name}: " + ", ".join(sorted(p.stem for p in (CONF_DIR / name).glob("*.yaml"))) for name in names)

    if not OmegaConf.has_resolver("nas_groups"):
        OmegaConf.register_new_resolver("nas_groups", groups)


register_help()


def distribution_version() -> str:
    """The installed version of the distribution whose console scripts run this package (whatever its name on PyPI)."""
    from importlib.metadata import entry_points

    for script in entry_points(group="console_scripts"):
        if script.value.startswith(f"{__package__}.") and script.dist is not None:
            return script.dist.version
    return "unknown (not installed)"


def discard_rejected_run(folder: Path) -> None:
    """A command refused for bad input leaves nothing behind: the files Hydra and the folder lock wrote before the
    refusal go, and the folder too when nothing else is in it. A folder holding a search's records is left as it is."""
    import shutil

    if not folder.is_dir() or search_files(folder):
        return
    shutil.rmtree(folder / ".hydra", ignore_errors=True)
    for path in [folder / LOCK_FILE, *folder.glob("*.log")]:
        path.unlink(missing_ok=True)
    try:
        folder.rmdir()  # only when empty: a folder the user gave with files of their own keeps them
    except OSError:
        pass


@contextmanager
def rejected_runs_discarded() -> Iterator[None]:
    """Inside a Hydra job: bad input removes the job's own output folder (see discard_rejected_run)."""
    try:
        yield
    except BaseException as exc:
        if is_bad_input(exc):
            discard_rejected_run(Path(HydraConfig.get().runtime.output_dir))
        raise


def quiet_libraries() -> None:
    # transformers and SQLAlchemy warn on every candidate about things that are fine here.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # MLflow 3 looks up config.mlflow-telemetry.io and sends usage records unless told not to: nothing here goes online.
    # (Before mlflow is imported: the heavy imports come after this.)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    warnings.filterwarnings("ignore", message=".*noload.*")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def search_command(cfg: DictConfig) -> float | None:
    with reporting("nas"), rejected_runs_discarded():  # inside the job too: Hydra would print its own "Error executing job" otherwise
        quiet_libraries()
        config: Config = to_typed(cfg)
        hydra_cfg = HydraConfig.get()
        if config.resume:  # the interrupted search's own config, its output directory, its MLflow run
            config = saved_config(config.resume, [o for o in hydra_cfg.overrides.task if not o.startswith("resume=")])
        check_settings(config)  # a bad setting is reported before torch, transformers and mlflow load
        from hydra.types import RunMode

        from nas.runner import SweepJob, run_search

        if config.resume:
            return run_search(config, Path(config.resume)).best_value
        output_dir = Path(hydra_cfg.runtime.output_dir)
        sweep = SweepJob(str(Path(hydra_cfg.sweep.dir).absolute()), hydra_cfg.job.num) if hydra_cfg.mode == RunMode.MULTIRUN else None
        result = run_search(config, output_dir, output_dir / hydra_cfg.output_subdir if hydra_cfg.output_subdir else None, sweep)
        return result.best_value  # lets sweepers optimise over searches


def print_version(prog: str) -> None:
    """``--version``: this project's version (Hydra's own flag would print Hydra's)."""
    if "--version" in sys.argv[1:]:
        print(f"{prog} {distribution_version()}")
        sys.exit(0)


def main() -> None:
    """The ``nas`` console script: bad input is one message naming the key, value or file (exit 2), no traceback."""
    print_version("nas")
    run_command(search_command, "nas")


if __name__ == "__main__":
    main()
