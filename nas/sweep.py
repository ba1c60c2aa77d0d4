"""A sweep (``nas -m ...``) checks every job's config before its first job trains.

``CheckSweep`` (a Hydra callback, conf/config.yaml) runs when a multirun starts, before the sweeper makes
the sweep folder or launches anything: it expands the sweep's overrides into each job's, as Hydra's basic
sweeper will, composes each job's config as the launcher will, and validates it as the search does before
any work (``nas.runner.validate_config``; with ``resume=DIR``, the interrupted search's own config). A bad job
stops the whole sweep with one message naming the job, its swept values and the key, exit 2: nothing has
trained, been logged or been written. Without it ``nas -m ppo.gamma=0.9,1.5`` trained job 0, failed job 1
and never ran the jobs after it.

Only compose and validate, no data is read (beyond what validate_config reads) and nothing trains. Other
sweepers (Optuna, Nevergrad, Ax) choose their jobs' values as they go: their jobs are checked as they run.
Hydra turns an ``Exception`` raised by a callback into a warning, so what this one finds reaches the
command's error reporting as a ``CallbackError`` (nas.errors), which reports it as the job would have.
"""

from __future__ import annotations

import copy
from typing import Any

from hydra.experimental.callback import Callback

from nas.errors import BadInput, CallbackError, describe, is_bad_input

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


class SweepJobError(BadInput):
    """A job of the sweep has bad input (its key, value or file); nothing of the sweep ran."""

    job_error: Exception | None = None  # the job's own error


def job_overrides(config: Any) -> list[list[str]]:
    """Each job's overrides, in the order (and so with the ``hydra.job.num``) the basic sweeper gives them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]  # the sweeper's own params come first, as in BasicSweeper.sweep
    arguments += list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    [jobs] = BasicSweeper.split_arguments(parser.parse_overrides(arguments), max_batch_size=None)
    return jobs


def job_config(config: Any, overrides: list[str]) -> Any:
    """The typed config job ``overrides`` of the sweep ``config`` runs with, as the nas command builds it."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    from nas.config import saved_config, to_typed

    composed = GlobalHydra.instance().config_loader().load_sweep_config(master_config=config, sweep_overrides=list(overrides))
    task_cfg = copy.deepcopy(composed)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]  # what the task function gets (hydra.core.utils.run_job)
    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    hydra_config.set_config(composed)  # ${hydra:...} in the job's config resolves against the job's own
    try:
        typed = to_typed(task_cfg)
        if typed.resume:  # as nas.cli.search_command: the interrupted search's own config
            return saved_config(typed.resume, [o for o in composed.hydra.overrides.task if not o.startswith("resume=")])
        return typed
    finally:
        hydra_config.cfg = before


def check_sweep(config: Any) -> int:
    """Compose and validate every job of the sweep ``config`` (the multirun's config, ``hydra`` included);
    SweepJobError naming the first bad job, its swept values and the error. Returns the number of jobs checked."""
    from omegaconf import OmegaConf

    from nas.runner import validate_config

    if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER:
        return 0  # the sweeper picks each job's values as it goes: each job checks its own
    jobs = job_overrides(config)
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    swept = {key for key, seen in values.items() if len(seen) > 1}
    bad: list[tuple[int, list[str], Exception]] = []
    for num, overrides in enumerate(jobs):
        try:
            validate_config(job_config(config, overrides))
        except Exception as exc:
            if not is_bad_input(exc):
                raise  # a bug, not the job's input: its traceback, and the sweep does not start
            bad.append((num, overrides, exc))
    if bad:
        num, overrides, exc = bad[0]
        shown = [o for o in overrides if o.partition("=")[0] in swept]
        job = f"job {num}" + (f" ({' '.join(shown)})" if shown else "")
        which = (f"sweep jobs {', '.join(str(b[0]) for b in bad)} of {len(jobs)} are refused, nothing ran; the first, {job}"
                 if len(bad) > 1 else f"sweep {job} of {len(jobs)} is refused, nothing ran")
        error = SweepJobError(f"{which}: {describe(exc)}")
        error.job_error = exc  # the traceback HYDRA_FULL_ERROR=1 shows; not the cause, which describe() would repeat
        raise error from None
    return len(jobs)


class CheckSweep(Callback):
    """Hydra callback: every job of a multirun is checked before the first one starts (``check_sweep``)."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        try:
            check_sweep(config)
        except SweepJobError as exc:  # Hydra would only warn of an Exception from a callback, and start the sweep
            raise CallbackError(exc) from exc.job_error
        except Exception as exc:
            raise CallbackError(exc) from exc
