"""Where a default candidate's wall time goes: data, model build, training steps, evaluation, MLflow, controller.

Composes the DEFAULT config (exactly as the tests do: Hydra compose + ``nas.config.to_typed``), builds
the default task, and measures in one process:

A. Breakdown. ``nas.runner.run_search`` runs for real (default config, an sqlite MLflow store
   in a temp dir, warmed up with one throw-away run first) over N default candidates: the space's
   initial architecture, then valid architectures sampled from the space with the config's seed. The
   strategy is replaced by that fixed list so the candidates are known; everything else is the
   runner's own code, with timers wrapped around its calls: model build (``build_config``,
   ``parameter_count``, ``build_model``), training (``fit``'s own ``data_seconds``: fetching batches;
   forward passes timed by hooks on the model; gradient clipping, the LR schedule and the loss check
   (``nas.train.finite_losses``) timed where fit calls them; the rest is backward + AdamW step), evaluation (forward
   passes timed by hooks; the rest is batch slicing and metrics), MLflow (``Tracker.start_candidate``/``finish_candidate``
   plus the ``best_reward`` metric),
   the rest of the runner's per-candidate bookkeeping (config JSON, ``candidates.jsonl``), and the
   search loop. Wall per candidate = CandidateObjective call + the runner's per-candidate callback +
   loop + controller. What a search makes once and every candidate reuses (the recorded training batches, the
   evaluation batches) is paid by the first candidate: its excess over the others' median is reported as
   per-search set-up, not in the per-candidate mean.
B. Controller. ``nas.search.run_loop`` with the default ``PPOStrategy`` (default ppo config, a fresh
   copy of the same space, the default budget) on a near-free objective: ask/tell/update seconds per
   evaluation, and the runner's per-update hook (``save_controller`` + the iteration metrics in MLflow).
C. Throughput. The initial architecture (same seed init) trained for the default number of steps by
   a bare PyTorch loop (pre-materialised batches, AdamW, zero_grad/forward/backward/step) and by
   ``nas.train.fit`` (on the search's recorded batch stream, as a candidate trains; on the task's live stream, as
   nas-final trains; and on the same pre-materialised batches), plus the bare loop with fit's gradient clipping and LR schedule (to tell
   the recipe's cost from the framework's), interleaved in rotating order over repeats; medians of steps/s.

Framework share = (wall - training forward/backward/optimizer - evaluation forward) / wall, the training
recipe (gradient clipping, LR schedule) counted as training; targets (issue 18): at most 2.5 %, the framework's
own time at most 15 ms per candidate without the controller, MLflow at most 5 ms per candidate on the critical
path (median), nas training throughput at least 0.9x bare.

    .venv/bin/python bench/candidate_cost.py [--candidates N] [--repeats R] [--out DIR] [HYDRA_OVERRIDE ...]

Writes DIR/report.md and DIR/cost.json (default DIR: outputs/bench/candidate_cost/) and prints the
table. About 1.5-2.5 minutes on 2 idle CPU cores with the defaults; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nas.candidate as candidate  # noqa: E402
import nas.runner as runner  # noqa: E402
import nas.train  # noqa: E402
from nas.config import CONF_DIR, Config, register_configs, to_typed  # noqa: E402
from nas.folders import RunDirectory  # noqa: E402
from nas.records import CandidateRecord  # noqa: E402
from nas.models import build_config, build_model  # noqa: E402
from nas.search import Evaluation, run_loop  # noqa: E402
from nas.space import architecture_key  # noqa: E402
from nas.strategies import make_strategy  # noqa: E402
from nas.strategies.base import Proposal, UnseenSampler  # noqa: E402
from nas.tasks import make_task  # noqa: E402
from nas.tasks.cache import setup_cache  # noqa: E402
from nas.tracking import Tracker  # noqa: E402
from nas.train import RecordedBatches, fit, resolve_device  # noqa: E402
from transformers import get_scheduler  # noqa: E402

MLFLOW_CALLS = ("create_run", "log_batch", "log_text", "set_terminated")  # what Tracker.start_candidate/finish_candidate/log_metrics call

FRAMEWORK_TARGET = 0.025  # share of a candidate's wall time
FRAMEWORK_MS_TARGET = 15.0  # per candidate, the controller aside
MLFLOW_TARGET_MS = 5.0  # per candidate, median
THROUGHPUT_TARGET = 0.9  # nas fit steps/s over a bare loop's


def compose_default(overrides: list[str] = ()) -> Config:
    """The default config, composed the way tests/conftest.py does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return to_typed(cfg)


def now() -> float:
    return time.perf_counter()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- A. the breakdown: run_search over a fixed list of candidates, with timers around its calls -------------------


class FixedStrategy:
    """Proposes a given list of architectures, one each, then stops (stands in for PPO in part A)."""

    name = "fixed"

    def __init__(self, architectures: list[dict[str, Any]]):
        self.todo = list(architectures)
        self.iteration_stats: list[dict[str, Any]] = []

    def ask(self) -> Proposal | None:
        return Proposal(self.todo.pop(0), 0, 0, 0) if self.todo else None

    def tell(self, proposal: Proposal, value: float | None) -> None:
        pass


class Probe:
    """Timers around the search's calls (its loop, tracker and a candidate's training); one record of seconds per candidate."""

    def __init__(self, device: torch.device):
        self.device = device
        self.records: list[dict[str, float]] = []
        self.rec: dict[str, float] = defaultdict(float)
        self.in_objective = False
        self.in_callback = False
        self.loop_seconds = 0.0
        self.fwd_start = 0.0
        self.background: dict[str, float] = defaultdict(float)  # MlflowClient seconds spent in Tracker's writer thread

    def timed(self, fn, key: str, when: str):
        def wrapper(*args, **kwargs):
            start = now()
            try:
                return fn(*args, **kwargs)
            finally:
                if getattr(self, when):
                    self.rec[key] += now() - start
        return wrapper

    def client_call(self, fn, name: str):
        """An MlflowClient method: timed per candidate when the search waits for it, in ``background`` when
        Tracker's writer thread makes it (off the critical path)."""
        def wrapper(*args, **kwargs):
            start = now()
            try:
                return fn(*args, **kwargs)
            finally:
                if threading.current_thread() is not threading.main_thread():
                    self.background[name] += now() - start
                elif self.in_callback:
                    self.rec[f"mlflow.{name}"] += now() - start
        return wrapper

    def build_model(self, fn):
        def wrapper(*args, **kwargs):
            start = now()
            model = fn(*args, **kwargs)
            if self.in_objective:
                self.rec["model_build"] += now() - start
            model.register_forward_pre_hook(self._pre, with_kwargs=True)
            model.register_forward_hook(self._post, with_kwargs=True)
            return model
        return wrapper

    def _pre(self, module, args, kwargs):
        sync(self.device)
        self.fwd_start = now()

    def _post(self, module, args, kwargs, output):
        sync(self.device)
        self.rec["train_forward" if module.training else "eval_forward"] += now() - self.fwd_start

    def train_and_evaluate(self, fn):
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            self.rec.update(train_seconds=result.train_seconds, eval_seconds=result.eval_seconds,
                            data=result.data_seconds, steps=result.steps)
            return result
        return wrapper

    def run_loop(self, fn):
        def wrapper(space, strategy, objective, budget, on_evaluation=None, on_iteration=None, **kwargs):
            started: dict[str, float] = {}  # what on_start (the child run's creation) spent, before the objective
            on_start = kwargs.get("on_start")

            def timed_start(index, proposal) -> None:
                saved, self.rec = self.rec, defaultdict(float)
                self.in_callback, start = True, now()
                try:
                    on_start(index, proposal)
                finally:
                    self.in_callback = False
                    self.rec["start_callback"] = now() - start
                    started.clear()
                    started.update(self.rec)
                    self.rec = saved

            if on_start is not None:
                kwargs["on_start"] = timed_start

            def timed_objective(architecture):
                self.rec = defaultdict(float, started)
                self.in_objective, start = True, now()
                try:
                    return objective(architecture)
                finally:
                    self.rec["objective"] = now() - start
                    self.in_objective = False

            def timed_callback(evaluation: Evaluation) -> None:
                self.in_callback, start = True, now()
                try:
                    on_evaluation(evaluation)
                finally:
                    self.rec["callback"] = now() - start + self.rec.get("start_callback", 0.0)
                    self.in_callback = False
                    self.rec["status_ok"] = float(evaluation.ok)
                    self.records.append(dict(self.rec))

            start = self.loop_started = now()
            try:
                return fn(space, strategy, timed_objective, budget, timed_callback, on_iteration, **kwargs)
            finally:
                self.loop_ended = now()
                self.loop_seconds = self.loop_ended - start
        return wrapper


def warm_store(uri: str, experiment: str) -> dict[str, float]:
    """Create the sqlite store and log one throw-away search with one candidate (MLflow's first-use costs)."""
    start = now()
    tracker = Tracker(uri, experiment)
    created = now() - start
    tracker.start_search("warm-up", {"warm_up": True}, {"strategy": "warm-up"})
    e = Evaluation(index=0, architecture={"x": 1}, key="warmup", value=0.5, status="ok", iteration=0, episode=0, step=0,
                   seconds=1.0, info={"metrics": {"accuracy": 0.5}, "num_parameters": 1, "losses": [(10, 1.0), (20, 0.9)]})
    start = now()
    run_id = tracker.start_candidate(e.index, e.key, e.architecture, 0, 0, 0).result()
    tracker.finish_candidate(CandidateRecord.from_evaluation(e, run_id), '{"model_type": "bert"}')
    tracker.flush()  # candidate logging in a background writer: wait for it
    first_log = now() - start
    tracker.end_search()
    return {"store_create_seconds": created, "first_log_candidate_seconds": first_log}


class TimedClient:
    """Tracker's MLflow client with the calls a candidate makes timed: per candidate when the search waits for
    them, in ``background`` when Tracker's writer thread makes them (off the critical path)."""

    def __init__(self, client: Any, probe: Probe):
        self._client, self._probe = client, probe

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        return self._probe.client_call(method, name) if name in MLFLOW_CALLS else method


class TimedTracker(Tracker):
    """The search's tracker, its candidate calls timed as MLflow's share of the runner's callbacks."""

    def __init__(self, probe: Probe, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.client = TimedClient(self.client, probe)
        self.probe = probe

    def start_candidate(self, *args: Any, **kwargs: Any) -> Any:
        return self.probe.timed(super().start_candidate, "mlflow", "in_callback")(*args, **kwargs)

    def finish_candidate(self, *args: Any, **kwargs: Any) -> None:
        self.probe.timed(super().finish_candidate, "mlflow", "in_callback")(*args, **kwargs)

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        self.probe.timed(super().log_metrics, "mlflow", "in_callback")(*args, **kwargs)


def breakdown(config: Config, task, architectures: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    probe = Probe(resolve_device(config.trainer.device))
    config = dataclasses.replace(config, budget=len(architectures))
    # The search's own parts: the task built once by main() (timed there), a fixed list of candidates instead of
    # PPO, a tracker and a loop that time what they do. The patches below are profiling hooks inside a candidate's
    # training (model build, the training recipe), which no part of the search exposes.
    patches = {
        (candidate, "build_config"): probe.timed(candidate.build_config, "model_build", "in_objective"),
        (candidate, "parameter_count"): probe.timed(candidate.parameter_count, "model_build", "in_objective"),
        (candidate, "build_model"): probe.build_model(candidate.build_model),
        (candidate, "train_and_evaluate"): probe.train_and_evaluate(candidate.train_and_evaluate),
        (torch.nn.utils, "clip_grad_norm_"): probe.timed(torch.nn.utils.clip_grad_norm_, "train_recipe", "in_objective"),
        (torch.optim.lr_scheduler.LambdaLR, "step"): probe.timed(torch.optim.lr_scheduler.LambdaLR.step, "train_recipe", "in_objective"),
        (nas.train, "finite_losses"): probe.timed(nas.train.finite_losses, "train_checks", "in_objective"),
    }
    saved = {key: key[0].__dict__.get(key[1], getattr(*key)) for key in patches}
    inherited = {key for key in patches if key[1] not in vars(key[0])}
    for (owner, name), value in patches.items():
        setattr(owner, name, value)
    run_dir = RunDirectory(workdir / "run")
    try:
        start = now()
        runner.validate_config(config)
        tracker = TimedTracker(probe, config.tracking.uri, config.tracking.experiment_name, config.tracking.artifact_location,
                               config.tracking.retry_seconds)
        parts = runner.build_search(config, run_dir, task=task, strategy=FixedStrategy(architectures), tracker=tracker,
                                    loop=probe.run_loop(run_loop))
        result = runner.run_parts(parts)
        search_seconds = now() - start
        before_first = probe.loop_started - start  # checks, folder, tracker and parent run: before the first candidate
    finally:
        run_dir.release()
        for (owner, name), value in saved.items():
            if (owner, name) in inherited:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
    failed = [e.error for e in result.history if not e.ok]
    if failed:
        raise RuntimeError(f"candidates failed: {failed}")

    rows = []
    for arch, r in zip(architectures, probe.records, strict=True):
        row = {
            "data": r["data"],
            "model_build": r["model_build"],
            "train_forward": r["train_forward"],
            "train_backward_optimizer": r["train_seconds"] - r["data"] - r["train_forward"] - r["train_recipe"] - r["train_checks"],
            "train_recipe": r["train_recipe"],
            "train_checks": r["train_checks"],
            "eval_forward": r["eval_forward"],
            "eval_other": r["eval_seconds"] - r["eval_forward"],
            "trainer_setup": r["objective"] - r["model_build"] - r["train_seconds"] - r["eval_seconds"],
            "mlflow": r["mlflow"],
            "runner_callback": r["callback"] - r["mlflow"],
        }
        rows.append({"architecture": arch, "seconds": row, "objective": r["objective"], "callback": r["callback"],
                     "steps": r["steps"], "train_seconds": r["train_seconds"], "eval_seconds": r["eval_seconds"],
                     "mlflow_calls": {name: r.get(f"mlflow.{name}", 0.0) for name in MLFLOW_CALLS}})
    per_candidate_loop = (probe.loop_seconds - sum(r["objective"] + r["callback"] for r in probe.records)) / len(rows)
    for row in rows:
        row["seconds"]["search_loop"] = per_candidate_loop
    # Made once per search, by the first candidate: its excess over the others' median is set-up, not per candidate.
    made_once = {}
    for key in ("data", "eval_other"):
        others = statistics.median(r["seconds"][key] for r in rows[1:]) if len(rows) > 1 else rows[0]["seconds"][key]
        made_once[key] = max(0.0, rows[0]["seconds"][key] - others)
        rows[0]["seconds"][key] -= made_once[key]
    return {"candidates": rows, "run_search_seconds": search_seconds, "loop_seconds": probe.loop_seconds,
            "setup_seconds": search_seconds - probe.loop_seconds, "made_once_seconds": made_once,
            "before_first_candidate_seconds": before_first, "after_last_candidate_seconds": search_seconds - before_first - probe.loop_seconds,
            "mlflow_background_seconds": dict(probe.background),  # whole search, candidates and parent-run metrics
            "mlflow_background_per_candidate": sum(probe.background.values()) / len(rows)}


# -- B. the controller: PPO on a near-free objective ------------------------------------------------------------


def controller_cost(config: Config, task, fixed: dict[str, Any], uri: str, workdir: Path) -> dict[str, Any]:
    space = runner.build_search_space(config, task, fixed)  # fresh: its validity cache starts empty, as in a search
    strategy = make_strategy("ppo", space, seed=config.seed, ppo=config.ppo, initial=config.search_space.initial)
    t = defaultdict(float)
    ask, tell = strategy.ask, strategy.tell

    def timed_ask():
        start = now()
        try:
            return ask()
        finally:
            t["ask"] += now() - start
            t["asks"] += 1

    def timed_tell(proposal, value):
        start = now()
        try:
            tell(proposal, value)
        finally:
            t["tell"] += now() - start

    strategy.ask, strategy.tell = timed_ask, timed_tell
    violations = space.violations

    def timed_violations(architecture):  # the space's constraint checks (memoised per encoding by the space)
        start = now()
        try:
            return violations(architecture)
        finally:
            t["constraint_checks"] += now() - start
            t["checks"] += 1

    space.violations = timed_violations
    tracker = Tracker(uri, config.tracking.experiment_name)
    tracker.start_search("controller-bench", {}, {"strategy": "ppo"})
    controller_path = workdir / "controller.pt"

    def objective(architecture):  # deterministic, architecture-dependent, near-free
        start = now()
        value = 0.55 + (zlib.crc32(architecture_key(architecture).encode()) % 1000) / 5000
        t["objective"] += now() - start
        return value

    def on_iteration(stats):  # what the runner does after each PPO update
        start = now()
        strategy.save_controller(controller_path)
        t["save_controller"] += now() - start
        start = now()
        tracker.log_metrics({k: v for k, v in stats.items() if k != "iteration" and np.isfinite(v)}, step=stats["iteration"])
        t["iteration_mlflow"] += now() - start

    start = now()
    result = run_loop(space, strategy, objective, config.budget, None, on_iteration)
    loop = now() - start
    tracker.end_search()
    n = len(result.history)
    return {
        "evaluations": n, "proposals": int(t["asks"]), "updates": len(strategy.iteration_stats),
        "ask_tell_seconds_per_evaluation": (t["ask"] + t["tell"]) / n,
        "ask_seconds": t["ask"], "tell_seconds": t["tell"], "constraint_check_seconds": t["constraint_checks"],
        "constraint_checks": int(t["checks"]),
        "iteration_hook_seconds_per_evaluation": (t["save_controller"] + t["iteration_mlflow"]) / n,
        "save_controller_seconds": t["save_controller"], "iteration_mlflow_seconds": t["iteration_mlflow"],
        "loop_seconds": loop,
        "loop_other_seconds_per_evaluation":
            (loop - t["ask"] - t["tell"] - t["objective"] - t["save_controller"] - t["iteration_mlflow"]) / n,
    }


# -- C. throughput: bare PyTorch loop vs nas.train.fit, interleaved ---------------------------------------------------


def throughput(config: Config, task, fixed: dict[str, Any], architecture: dict[str, Any], repeats: int) -> dict[str, Any]:
    tc = config.trainer
    device = resolve_device(tc.device)
    steps = tc.max_steps
    seed = runner.candidate_seed(config.seed, architecture)

    def live_batches():
        return task.train_batches(tc.batch_size, torch.Generator().manual_seed(config.seed))

    batches = [{k: v.to(device) for k, v in b.items()} for b in itertools.islice(live_batches(), steps)]
    recorded = RecordedBatches(live_batches, device)  # what CandidateObjective hands every candidate of a search
    for _ in itertools.islice(recorded, steps):  # recorded by the search's first candidate
        pass

    def fresh_model() -> torch.nn.Module:
        torch.manual_seed(seed)  # as CandidateObjective does: the same init every time
        return build_model(build_config(config.search_space.family, architecture, fixed), task.name).to(device)

    def bare(model):
        sync(device)
        start = now()
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
        for batch in batches:
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        return now() - start, float(loss.detach())

    def bare_recipe(model):  # the bare loop plus what fit's recipe adds to the maths: gradient clipping, the LR schedule
        sync(device)
        start = now()
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
        scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(tc.warmup_ratio * steps), num_training_steps=steps)
        for batch in batches:
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            optimizer.step()
            scheduler.step()
        sync(device)
        return now() - start, float(loss.detach())

    def nas_fit(model, stream):
        sync(device)
        start = now()
        losses, _ = fit(model, stream(), steps, tc.learning_rate, tc)
        sync(device)
        return now() - start, losses[-1][1]

    variants = {
        "bare": bare,
        "bare_recipe": bare_recipe,
        "nas_fit": lambda m: nas_fit(m, lambda: iter(recorded)),  # the candidate's path: the search's recorded stream
        "nas_fit_live": lambda m: nas_fit(m, live_batches),  # nas-final's path: the task's batch stream, made as it goes
        "nas_fit_prebatched": lambda m: nas_fit(m, lambda: iter(batches)),  # the same tensors as the bare loop
    }
    names = list(variants)
    times: dict[str, list[float]] = {k: [] for k in names}
    final_loss: dict[str, float] = {}
    for name in names:  # warm-up, untimed
        variants[name](fresh_model())
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            seconds, final_loss[name] = variants[name](fresh_model())
            times[name].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    sps = {k: steps / v for k, v in med.items()}
    paired = [b / f for b, f in zip(times["bare"], times["nas_fit"], strict=True)]
    return {
        "architecture": architecture, "steps": steps, "batch_size": tc.batch_size, "repeats": repeats,
        "seconds": times, "median_seconds": med, "min_seconds": best, "steps_per_second": sps,
        "ratio": sps["nas_fit"] / sps["bare"], "ratio_prebatched": sps["nas_fit_prebatched"] / sps["bare"],
        "paired_ratio_median": statistics.median(paired),
        "per_step_overhead_ms": 1000 * (med["nas_fit_prebatched"] - med["bare"]) / steps,  # in the loop, data aside
        "per_step_recipe_ms": 1000 * (med["bare_recipe"] - med["bare"]) / steps,
        "same_batches_check": final_loss["nas_fit"] == final_loss["nas_fit_prebatched"] == final_loss["nas_fit_live"],
        "final_loss": final_loss,
    }


# -- report ---------------------------------------------------------------------------------------------------------

ROWS = [  # (key, label, framework?)
    ("data", "data: training batches (fetch + to device)", True),
    ("model_build", "model build (build_config, parameter_count, build_model)", True),
    ("trainer_setup", "trainer set-up (seeding, model.to, optimizer, LR schedule)", True),
    ("train_forward", "training: forward", False),
    ("train_backward_optimizer", "training: backward + AdamW step", False),
    ("train_recipe", "training: gradient clipping + LR schedule (optimizer recipe)", False),
    ("train_checks", "training: loss finiteness check", True),
    ("eval_forward", "evaluation: forward", False),
    ("eval_other", "evaluation: batch slicing, argmax, metrics", True),
    ("mlflow", "MLflow: start/finish_candidate + best_reward metric (what the search waits for)", True),
    ("runner_callback", "runner bookkeeping (config JSON, candidates.jsonl, progress)", True),
    ("search_loop", "search loop (cache, Evaluation records)", True),
    ("controller", "controller: PPO ask/tell/update", True),
    ("controller_hook", "controller: save_controller + iteration metrics (per update, amortised)", True),
]


def machine_facts() -> dict[str, Any]:
    import mlflow
    import transformers

    return {
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
        "mlflow": mlflow.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def other_busy_processes() -> list[str]:
    """Other processes using CPU now (a rough check that the machine was quiet), from /proc."""
    busy = []
    me = os.getpid()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if stat[0] == "R" and cmd:
            busy.append(cmd[:120])
    return busy


def fmt_ms(seconds: float) -> str:
    return f"{1000 * seconds:,.1f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=5, help="default candidates to break down (initial + sampled)")
    parser.add_argument("--repeats", type=int, default=8, help="timed repeats of each training loop in the throughput check")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (none: the default config, which is the point)")
    parser.add_argument("--out", default=str(ROOT / "outputs/bench/candidate_cost"), help="where report.md and cost.json go")
    args = parser.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wall_start = now()
    load_start = os.getloadavg()
    busy_start = other_busy_processes()

    config = compose_default(args.overrides)
    workdir = Path(tempfile.mkdtemp(prefix="nas-candidate-cost-"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    config = dataclasses.replace(config, tracking=dataclasses.replace(config.tracking, uri=uri))
    if config.trainer.num_threads:  # fit sets it when it trains; the bare loop must train with the same threads
        torch.set_num_threads(config.trainer.num_threads)
    print(f"default config: {config.task.name}, {config.search_space.family}, {config.trainer.max_steps} steps of "
          f"batch {config.trainer.batch_size}, budget {config.budget}; store {uri}", flush=True)

    with setup_cache(workdir / "cache"):  # the tokenizer and encoded texts, as a search keeps them (cache_dir)
        start = now()
        make_task(config.task)
        task_cold_seconds = now() - start  # the first search on this data
        start = now()
        task = make_task(config.task)
        task_seconds = now() - start  # any later search on unchanged data and tokenizer settings
    objective = runner.CandidateObjective(task, config)
    fixed = objective.fixed
    start = now()
    space = runner.build_search_space(config, task, fixed)
    space_seconds = now() - start
    sampler = UnseenSampler(space, np.random.default_rng(config.seed), config.search_space.initial)
    architectures = [space.decode(sampler.next_random()) for _ in range(args.candidates)]

    print(f"[{now() - wall_start:5.0f} s] C. throughput: bare PyTorch loop vs nas.train.fit ...", flush=True)
    thr = throughput(config, task, fixed, config.search_space.initial, args.repeats)
    print(f"[{now() - wall_start:5.0f} s] B. controller (PPO on a near-free objective), twice ...", flush=True)
    store = warm_store(uri, config.tracking.experiment_name)
    ctl = controller_cost(config, task, fixed, uri, workdir)  # the first in this process: what a search pays
    ctl["second_run"] = controller_cost(config, task, fixed, uri, workdir)
    print(f"[{now() - wall_start:5.0f} s] A. breakdown of {len(architectures)} candidates through nas.runner.run_search ...", flush=True)
    bd = breakdown(config, task, architectures, workdir)

    cands = bd["candidates"]
    for c in cands:
        s = c["seconds"]
        s["controller"] = ctl["ask_tell_seconds_per_evaluation"]
        s["controller_hook"] = ctl["iteration_hook_seconds_per_evaluation"]
        c["wall"] = sum(s.values())
        c["compute"] = s["train_forward"] + s["train_backward_optimizer"] + s["eval_forward"]
        c["framework_share"] = (c["wall"] - c["compute"]) / c["wall"]
    mean = {key: statistics.fmean(c["seconds"][key] for c in cands) for key, _, _ in ROWS}
    wall = sum(mean.values())
    framework = sum(mean[k] for k, _, fw in ROWS if fw)
    share = framework / wall
    mlflow_ms = [1000 * c["seconds"]["mlflow"] for c in cands]
    mlflow_median = statistics.median(mlflow_ms)
    bg_calls = ", ".join(f"{name} {1000 * bd['mlflow_background_seconds'].get(name, 0.0) / len(cands):.1f}" for name in MLFLOW_CALLS)
    mlflow_calls = ", ".join(f"{name} {statistics.median(1000 * c['mlflow_calls'][name] for c in cands):.1f}" for name in MLFLOW_CALLS)
    made_once = sum(bd["made_once_seconds"].values())
    setup_per_candidate = (task_seconds + space_seconds + bd["setup_seconds"] + made_once) / config.budget
    strict_share = (framework + mean["train_recipe"]) / wall  # clipping and the LR schedule counted as framework too
    controller = mean["controller"] + mean["controller_hook"]
    framework_own = framework - controller  # the framework's own time: everything but the strategy's
    share_own = framework_own / (wall - controller)

    targets = [
        ("framework share of a candidate's wall time", f"{100 * share:.2f} %", f"<= {100 * FRAMEWORK_TARGET:.1f} %",
         share <= FRAMEWORK_TARGET),
        ("framework share without the controller (PPO's own cost left out of wall and framework)", f"{100 * share_own:.2f} %",
         f"<= {100 * FRAMEWORK_TARGET:.1f} %", share_own <= FRAMEWORK_TARGET),
        ("framework's own time per candidate, without the controller", f"{1000 * framework_own:.1f} ms", f"<= {FRAMEWORK_MS_TARGET:.0f} ms",
         1000 * framework_own <= FRAMEWORK_MS_TARGET),
        ("MLflow logging per candidate, on the critical path (median, sqlite store)", f"{mlflow_median:.1f} ms", f"<= {MLFLOW_TARGET_MS:.0f} ms",
         mlflow_median <= MLFLOW_TARGET_MS),
        ("training throughput, nas fit / bare PyTorch loop", f"{thr['ratio']:.3f}x", f">= {THROUGHPUT_TARGET}x",
         thr["ratio"] >= THROUGHPUT_TARGET),
    ]
    load_end = os.getloadavg()
    busy_end = other_busy_processes()
    facts = machine_facts()

    command = " ".join([".venv/bin/python", "bench/candidate_cost.py", *(argv if argv is not None else sys.argv[1:])])
    which = f" (with overrides {' '.join(args.overrides)})" if args.overrides else " (default)"
    lines = ["# Where a default candidate's wall time goes", "",
             f"`{command}` ({time.strftime('%Y-%m-%d %H:%M')}, benchmark wall {now() - wall_start:.0f} s). Config{which}: "
             f"`{config.task.name}` / `{config.search_space.family}` space, {config.trainer.max_steps} AdamW steps of batch "
             f"{config.trainer.batch_size}, validation {config.task.val_size}, PPO (population {config.ppo.population_size}, horizon "
             f"{config.ppo.horizon}), MLflow on a fresh sqlite store (warmed by one throw-away run).", ""]
    if busy_start or busy_end:
        lines += [f"**The machine was not idle** (other running processes at start: {len(busy_start)}, at end: {len(busy_end)}; "
                  f"1-min load {load_start[0]:.2f} -> {load_end[0]:.2f}): timings are inflated and noisy, rerun on a quiet machine.", ""]
    lines += [
             f"## Breakdown: mean of {len(cands)} candidates (the initial architecture + {len(cands) - 1} sampled with seed {config.seed})", "",
             "| part | ms / candidate | % of wall | framework? |", "|---|---:|---:|:---:|"]
    for key, label, fw in ROWS:
        lines.append(f"| {label} | {fmt_ms(mean[key])} | {100 * mean[key] / wall:.2f} | {'yes' if fw else 'no'} |")
    lines += [f"| **wall per candidate** | **{fmt_ms(wall)}** | 100 | |",
              f"| of which framework (all but training fwd/bwd/optimizer and evaluation forward) | {fmt_ms(framework)} | {100 * share:.2f} | |",
              f"| framework without the controller (share of the wall less the controller) | {fmt_ms(framework_own)} | {100 * share_own:.2f} | |",
              f"| (not in wall) per search: before the first candidate {task_seconds + space_seconds + bd['before_first_candidate_seconds']:.2f} s "
              f"(task data + tokenizer {task_seconds:.2f} s from the set-up cache, {task_cold_seconds:.2f} s the first time; space "
              f"{space_seconds:.2f} s; checks, tracker and parent run {bd['before_first_candidate_seconds']:.2f} s), after the last "
              f"{bd['after_last_candidate_seconds']:.2f} s (best/, plots, artifacts, run status), made once for every candidate: training batches "
              f"{1000 * bd['made_once_seconds']['data']:.1f} ms, evaluation batches {1000 * bd['made_once_seconds']['eval_other']:.1f} ms; "
              f"amortised over budget {config.budget} | {fmt_ms(setup_per_candidate)} | "
              f"{100 * setup_per_candidate / wall:.2f} | yes |", "",
              "Per candidate:", "", "| # | architecture | steps | wall ms | train ms | eval ms | MLflow ms | framework % |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for i, c in enumerate(cands):
        a = c["architecture"]
        short = ", ".join(f"{k}={v}" for k, v in a.items())
        lines.append(f"| {i} | {short} | {c['steps']:.0f} | {fmt_ms(c['wall'])} | {fmt_ms(c['train_seconds'])} | "
                     f"{fmt_ms(c['eval_seconds'])} | {1000 * c['seconds']['mlflow']:.1f} | {100 * c['framework_share']:.2f} |")
    lines += ["", "## Targets", "", "| target | measured | limit | pass |", "|---|---:|---:|:---:|"]
    lines += [f"| {name} | {value} | {limit} | {'PASS' if ok else 'FAIL'} |" for name, value, limit, ok in targets]
    lines += ["", f"Stricter reading of the share, counting gradient clipping and the LR schedule as framework too: "
              f"{100 * strict_share:.2f} %. "
              f"MLflow per candidate, waited for: min {min(mlflow_ms):.1f}, median {mlflow_median:.1f}, max {max(mlflow_ms):.1f} ms; by client "
              f"call (median ms): {mlflow_calls}. Written by Tracker's background thread, off the critical path (it competes for the "
              f"cores with the next candidate's training): {1000 * bd['mlflow_background_per_candidate']:.1f} ms per candidate "
              f"({bg_calls}; totals over the search / candidates). First log into a fresh store {1000 * store['first_log_candidate_seconds']:.0f} ms, "
              f"creating the store {store['store_create_seconds']:.2f} s (once per store).",
              "", f"Controller: {ctl['evaluations']} evaluations, {ctl['proposals']} proposals, {ctl['updates']} PPO updates in "
              f"{ctl['loop_seconds']:.2f} s; ask {ctl['ask_seconds']:.2f} s (of which {ctl['constraint_checks']} constraint checks of the space "
              f"{ctl['constraint_check_seconds']:.2f} s), tell+update {ctl['tell_seconds']:.2f} s, save_controller "
              f"{ctl['save_controller_seconds']:.2f} s, iteration metrics {ctl['iteration_mlflow_seconds']:.2f} s. The same again in the same "
              f"process: {1000 * ctl['second_run']['ask_tell_seconds_per_evaluation']:.1f} ms ask/tell per evaluation "
              f"(the table uses the first run, {1000 * ctl['ask_tell_seconds_per_evaluation']:.1f} ms).",
              "", f"## Training throughput (architecture {thr['architecture']})", "",
              f"{thr['steps']} steps of batch {thr['batch_size']}, same seed init, {thr['repeats']} timed repeats per loop after one "
              "warm-up each, interleaved in rotating order. Bare loop: pre-materialised batches, AdamW (same lr and weight decay), "
              "zero_grad/forward/backward/step, nothing else.", "",
              "| loop | median s | min s | steps/s (median) | vs bare |", "|---|---:|---:|---:|---:|"]
    for name, label in (("bare", "bare PyTorch loop (the reference)"),
                        ("bare_recipe", "bare loop + gradient clipping + LR schedule (fit's maths, no framework)"),
                        ("nas_fit", "nas.train.fit, the search's recorded batch stream (the candidate's path)"),
                        ("nas_fit_live", "nas.train.fit, the task's live batch stream (nas-final's path)"),
                        ("nas_fit_prebatched", "nas.train.fit, the same pre-materialised batches")):
        lines.append(f"| {label} | {thr['median_seconds'][name]:.3f} | {thr['min_seconds'][name]:.3f} | {thr['steps_per_second'][name]:.1f} | "
                     f"{thr['steps_per_second'][name] / thr['steps_per_second']['bare']:.3f}x |")
    lines += ["", f"Paired per-repeat ratio (bare time / fit time), median: {thr['paired_ratio_median']:.3f}x. "
              f"fit on live vs pre-materialised batches reached the same final loss: {thr['same_batches_check']}.", "",
              "## Machine", "",
              f"{facts['cpu_count']} CPUs ({facts['cpus_usable']} usable), torch threads {facts['torch_threads']}, torch {facts['torch']}, "
              f"transformers {facts['transformers']}, mlflow {facts['mlflow']}, Python {facts['python']}, {facts['platform']}. "
              f"Load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, at end "
              f"{load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}; other running processes at start: {len(busy_start)}, "
              f"at end: {len(busy_end)}."]
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    data = {
        "config": {"task": config.task.name, "family": config.search_space.family, "max_steps": config.trainer.max_steps,
                   "batch_size": config.trainer.batch_size, "budget": config.budget, "seed": config.seed},
        "mean_seconds": mean, "wall_seconds": wall, "framework_seconds": framework, "framework_share": share,
        "framework_own_seconds": framework_own, "framework_share_without_controller": share_own,
        "framework_share_strict": strict_share, "mlflow_ms_per_candidate": mlflow_ms, "mlflow_ms_median": mlflow_median,
        "setup": {"task_seconds": task_seconds, "task_cold_seconds": task_cold_seconds, "space_seconds": space_seconds, **{k: v for k, v in bd.items() if k != "candidates"},
                  "per_candidate_amortised_seconds": setup_per_candidate, **store},
        "candidates": cands, "controller": ctl, "throughput": thr,
        "targets": [{"name": n, "measured": v, "limit": lim, "pass": ok} for n, v, lim, ok in targets],
        "machine": {**facts, "loadavg_start": load_start, "loadavg_end": load_end, "busy_start": busy_start, "busy_end": busy_end},
        "benchmark_seconds": now() - wall_start,
    }
    (out / "cost.json").write_text(json.dumps(data, indent=1, default=str))
    print()
    print(report)
    print(f"wrote {out / 'report.md'} and {out / 'cost.json'}")
    return data


if __name__ == "__main__":
    main()
