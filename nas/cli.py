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

from nas.config import CONF_DIR, Config, register_configs, to_typed

register_configs()


def quiet_libraries() -> None:
    # transformers and SQLAlchemy warn on every candidate about things that are fine here.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", message=".*noload.*")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    from nas.runner import run_search  # heavy imports (torch, transformers, mlflow) after composition

    config: Config = to_typed(cfg)
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    result = run_search(config, output_dir, output_dir / hydra_cfg.output_subdir if hydra_cfg.output_subdir else None)
    return result.best_value  # lets sweepers optimise over searches


if __name__ == "__main__":
    main()
