"""The `nas` command: Hydra composes conf/, this shell turns it into typed objects and runs the search.

The only module that sees a DictConfig.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nas.config import CONF_DIR, Config, check_settings, register_configs, saved_config, to_typed
from nas.errors import reporting, run_command

register_configs()


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
    with reporting("nas"):  # inside the job too: Hydra would print its own "Error executing job" otherwise
        quiet_libraries()
        config: Config = to_typed(cfg)
        hydra_cfg = HydraConfig.get()
        if config.resume:  # the interrupted search's own config, its output directory, its MLflow run
            config = saved_config(config.resume, [o for o in hydra_cfg.overrides.task if not o.startswith("resume=")])
        check_settings(config)  # a bad setting is reported before torch, transformers and mlflow load
        from nas.runner import run_search

        if config.resume:
            return run_search(config, Path(config.resume)).best_value
        output_dir = Path(hydra_cfg.runtime.output_dir)
        result = run_search(config, output_dir, output_dir / hydra_cfg.output_subdir if hydra_cfg.output_subdir else None)
        return result.best_value  # lets sweepers optimise over searches


def main() -> None:
    """The ``nas`` console script: bad input is one message naming the key, value or file (exit 2), no traceback."""
    run_command(search_command, "nas")


if __name__ == "__main__":
    main()
