"""The settings of every part, as plain dataclasses: the schemas Hydra composes (nas/config.py registers them)
and the library API takes. Nothing heavy is imported here, so a config loads and is checked without torch,
transformers or mlflow: a bad setting is reported in well under the time those imports take.

Each ``validate()`` raises BadInput (nas.errors) naming the first key that cannot work.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from nas.errors import BadInput, MissingExtra

# -- training (nas/train.py) --------------------------------------------------------------------------------


@dataclass
class PretrainConfig:
    """Optional first stage: self-supervised pre-training on unlabelled text (masked LM or causal LM, per family)."""

    steps: int = 0  # optimizer steps of pre-training per candidate; 0 = fine-tune from scratch
    corpus_file: Optional[str] = None  # unlabelled text (CSV / JSON lines / Parquet / .txt); the tokenizer learns from it too
    text_column: str = "text"
    corpus_size: int = 20000  # the first N rows of the corpus
    batch_size: int = 32
    learning_rate: float = 1e-3
    mlm_probability: float = 0.15  # share of tokens masked (masked-LM families)


@dataclass
class TrainerConfig:
    max_steps: int = 100  # optimizer steps per candidate
    batch_size: int = 32
    learning_rate: float = 3e-3  # AdamW peak learning rate
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # share of steps with linear warm-up; then linear decay to 0
    max_grad_norm: float = 1.0
    eval_batch_size: int = 250
    log_every: int = 10  # record the training loss every N steps
    num_threads: Optional[int] = None  # torch threads; None keeps torch's default (all cores)
    device: str = "auto"  # auto (cuda when available, else cpu), cpu, cuda, cuda:1...
    progress_bar: bool = False  # a bar over each candidate's training steps, under the search's; only for long trainings
    # validate every N steps and keep the best of those weights (by the task's reward) instead of the last step's; null:
    # the last step's. nas-final's default (conf/trainer/final.yaml) is 100: a long training that degrades ships its best.
    eval_every: Optional[int] = None
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def validate(self) -> None:
        """Raise BadInput naming the first setting that cannot work."""
        p = self.pretrain
        checks = [
            ("max_steps", self.max_steps >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", _positive(self.learning_rate), "a positive number"),
            ("weight_decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio <= 1, "in [0, 1]"), ("max_grad_norm", _positive(self.max_grad_norm), "a positive number"),
            ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"), ("log_every", self.log_every >= 1, ">= 1"),
            ("num_threads", self.num_threads is None or self.num_threads >= 1, ">= 1 (or null)"),
            ("eval_every", self.eval_every is None or self.eval_every >= 1, ">= 1 (or null)"),
            ("pretrain.steps", p.steps >= 0, ">= 0"), ("pretrain.corpus_size", p.corpus_size >= 1, ">= 1"),
            ("pretrain.batch_size", p.batch_size >= 1, ">= 1"), ("pretrain.learning_rate", _positive(p.learning_rate), "a positive number"),
            ("pretrain.mlm_probability", 0 < p.mlm_probability < 1, "in (0, 1)"),
        ]
        for key, ok, expected in checks:
            if not ok:
                value = getattr(p, key.split(".")[1]) if key.startswith("pretrain.") else getattr(self, key)
                raise BadInput(f"trainer.{key} must be {expected}, got {value!r}")


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


# -- several candidates at once (nas/evaluators.py) --------------------------------------------------------

RAY_MISSING = "parallel.backend=ray needs Ray: pip install 'transformer-nas[ray]' (or pip install ray)"


@dataclass
class ParallelConfig:
    workers: int = 1  # candidates training at once; 1 trains them one after another in this process
    backend: str = "process"  # process: a local process pool; ray: Ray tasks on this machine or a cluster (pip install 'transformer-nas[ray]')
    ray_address: Optional[str] = None  # ray: None starts Ray on this machine, listening on 127.0.0.1 only; "auto" or "ray://host:10001" joins a cluster
    # process: memory (MB) a candidate may take in its worker beyond what the worker holds at start; a candidate that
    # needs more fails with OutOfMemoryError and the search goes on. Candidates then train in worker processes even with
    # workers=1, so the search's own process is never limited. With trainer.device on CUDA it caps each worker's GPU
    # memory instead (workers sharing one GPU cannot starve each other). None: no limit.
    memory_limit_mb: Optional[int] = None

    def validate(self) -> None:
        if self.workers < 1:
            raise BadInput(f"parallel.workers must be >= 1, got {self.workers}")
        if self.backend not in ("process", "ray"):
            raise BadInput(f"parallel.backend must be 'process' or 'ray', got {self.backend!r}")
        if self.backend == "ray" and importlib.util.find_spec("ray") is None:  # now, not after the search's run is logged
            raise MissingExtra(RAY_MISSING)
        if self.memory_limit_mb is not None and self.memory_limit_mb < 1:
            raise BadInput(f"parallel.memory_limit_mb must be >= 1 (or null), got {self.memory_limit_mb}")
        if self.memory_limit_mb is not None and self.backend != "process":
            raise BadInput("parallel.memory_limit_mb limits local worker processes (parallel.backend=process); "
                           "on Ray, give tasks memory with Ray's own resources")


# -- the reward and its cost penalty --------------------------------------------------------------------------


COSTS = ("num_parameters", "latency_ms")  # latency_ms: median ms of one eval-mode forward pass of one eval batch
MODES = ("soft", "weighted", "hard")
_COST_LABELS = {"num_parameters": "parameters", "latency_ms": "latency in ms per eval batch"}


class OverBudget(ValueError):
    """A candidate whose cost exceeds ``objective.target`` in ``hard`` mode: recorded as failed, never trained further."""


@dataclass
class ObjectiveConfig:
    """What the reward trades the task metric against (Hydra group ``objective``).

    With r = the task's reward (``task.reward(metrics)``), c = the candidate's cost, T = ``target``
    and w = ``weight``:

    - ``soft``: r - w * max(0, ln(c / T)). Within budget only the metric counts; over it, each
      e-fold (x2.72) of cost costs w reward. The budget is a preference, not a wall.
    - ``weighted``: r - w * ln(c / T) everywhere: a true trade-off, a model half the target's cost
      earns w * ln 2 more. MnasNet's soft constraint (alpha = beta = -w) in log space.
    - ``hard``: r when c <= T, else the candidate is rejected (``OverBudget``), i.e. recorded as
      failed. For a parameter budget prefer ``search_space.max_params``: it masks such
      architectures, so they are never proposed.

    w is in reward units per e-fold of cost, so it scales with the reward: 0.07 suits rewards in
    [0, 1] and nats (accuracy, -log perplexity); chrF or BLEU (0-100) need about 100x. It is
    MnasNet's |beta|: to first order r * (c / T)^-0.07 = r - 0.07 r ln(c / T), so at r near 1
    doubling the cost must buy about 0.05 of metric (0.07 ln 2) to pay for itself.
    """

    cost: Optional[str] = None  # None: the task metric alone; num_parameters or latency_ms
    target: Optional[float] = None  # the budget T in the cost's unit (parameters, ms); required with cost
    mode: str = "soft"  # soft | weighted | hard
    weight: float = 0.07  # w: reward lost per e-fold of cost (over T in soft mode); unused in hard mode

    def validate(self) -> None:
        """Raise BadInput naming the key of a bad value; the runner calls it before any training."""
        if self.cost is not None and self.cost not in COSTS:
            raise BadInput(f"objective.cost must be one of {', '.join(COSTS)} or null, got {self.cost!r}")
        if self.mode not in MODES:
            raise BadInput(f"objective.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (isinstance(self.weight, (int, float)) and math.isfinite(self.weight) and self.weight >= 0):
            raise BadInput(f"objective.weight must be a finite number >= 0, got {self.weight!r}")
        if self.cost is None:
            if self.target is not None:  # a budget that would silently do nothing
                raise BadInput(f"objective.target={self.target} is set but objective.cost is null; name the cost it budgets")
            return
        if self.target is None:
            raise BadInput(f"objective.target is required when objective.cost={self.cost} (the budget, in {_COST_LABELS[self.cost]})")
        if not (math.isfinite(self.target) and self.target > 0):
            raise BadInput(f"objective.target must be a finite number > 0, got {self.target!r}")

    @property
    def enabled(self) -> bool:
        return self.cost is not None

    def cost_of(self, costs: Mapping[str, float]) -> float:
        """The configured cost from ``costs`` (e.g. {"num_parameters": ..., "latency_ms": ...})."""
        if self.cost not in costs or costs[self.cost] is None:
            raise KeyError(f"objective.cost={self.cost} but the candidate's {self.cost} was not measured")
        value = float(costs[self.cost])
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{self.cost} must be a finite number > 0 to be compared with objective.target, got {value}")
        return value

    def check(self, costs: Mapping[str, float]) -> None:
        """Hard mode: raise OverBudget when the cost exceeds the target. Call it before training to skip doomed candidates."""
        if self.cost is None or self.mode != "hard":
            return
        value = self.cost_of(costs)
        if value > self.target:
            raise OverBudget(f"{self.cost} {value:g} exceeds objective.target {self.target:g} (objective.mode=hard)")

    def penalty(self, costs: Mapping[str, float]) -> float:
        """What is subtracted from the metric reward (0 without a cost or in hard mode within budget)."""
        if self.cost is None:
            return 0.0
        self.check(costs)
        if self.mode == "hard":
            return 0.0
        log_ratio = math.log(self.cost_of(costs) / self.target)
        return self.weight * (max(0.0, log_ratio) if self.mode == "soft" else log_ratio)

    def reward(self, metric_reward: float, costs: Mapping[str, float]) -> float:
        """The search's reward; raises OverBudget in hard mode (the runner records the candidate as failed)."""
        self.validate()
        return metric_reward - self.penalty(costs)


# -- how candidates are scored (nas/weight_sharing.py) ---------------------------------------------------------

EVALUATION_MODES = ("standalone", "weight_sharing")
SAMPLING_RULES = ("sandwich", "uniform")
SUBNET_SCORES = ("loss", "metric")


@dataclass
class EvaluationConfig:
    """How the strategy's candidates are scored (Hydra group ``evaluation``).

    ``standalone`` (default): each candidate trains on its own for ``trainer.max_steps`` and is scored on validation.
    ``weight_sharing`` (nas/weight_sharing.py): one super-network, the space's largest architecture, trains first
    (``supernet_steps`` steps, each on the largest, the smallest and ``random_subnets`` random subnets: the sandwich
    rule, or on random ones alone: ``sampling``); the strategy then searches over the validation scores of subnets
    that inherit its weights (``budget`` of them, milliseconds each; ``score``: minus the validation loss, or the
    task's metric), and the ``top_k`` best of those train standalone like any candidate. Their best, by the task's
    metric, is the search's result (best/, nas-final).
    """

    mode: str = "standalone"  # standalone | weight_sharing
    supernet_steps: int = 300  # weight_sharing: optimizer steps of the super-network
    random_subnets: int = 2  # weight_sharing: random subnets per step, beside the largest and the smallest
    # weight_sharing: sandwich (the largest, the smallest and random_subnets random ones a step) or uniform (2 + random_subnets
    # random ones: the largest is trained no more than any other); three seeds of each rank alike (README, "Weight sharing")
    sampling: str = "sandwich"
    learning_rate: float = 3e-3  # weight_sharing: the super-network's AdamW peak learning rate (warm-up, then cosine)
    top_k: int = 4  # weight_sharing: the best-scored architectures trained standalone (trainer.*) as the search's candidates
    # weight_sharing: what ranks subnets: loss (minus the validation loss, nats: it ranks a 1,000-step truth far better than
    # a subnet's accuracy, README "Weight sharing") or metric (the task's reward, as a standalone candidate's)
    score: str = "loss"

    def validate(self) -> None:
        if self.mode not in EVALUATION_MODES:
            raise BadInput(f"evaluation.mode must be one of {', '.join(EVALUATION_MODES)}, got {self.mode!r}")
        if self.sampling not in SAMPLING_RULES:
            raise BadInput(f"evaluation.sampling must be one of {', '.join(SAMPLING_RULES)}, got {self.sampling!r}")
        if self.score not in SUBNET_SCORES:
            raise BadInput(f"evaluation.score must be one of {', '.join(SUBNET_SCORES)}, got {self.score!r}")
        checks = [("supernet_steps", self.supernet_steps >= 1, ">= 1"), ("random_subnets", self.random_subnets >= 0, ">= 0"),
                  ("learning_rate", math.isfinite(self.learning_rate) and self.learning_rate > 0, "a finite number > 0"),
                  ("top_k", self.top_k >= 1, ">= 1")]
        for key, ok, expected in checks:
            if not ok:
                raise BadInput(f"evaluation.{key} must be {expected}, got {getattr(self, key)!r}")

    @property
    def shares_weights(self) -> bool:
        return self.mode == "weight_sharing"


# -- strategies (nas/strategies/) --------------------------------------------------------------------------


@dataclass
class EvolutionConfig:
    population_size: int = 10  # members alive at once; also the number of random architectures that start the search
    sample_size: int = 3  # tournament size: members drawn to pick each parent (larger: greedier)

    def validate(self) -> None:
        if self.population_size < 1:
            raise BadInput(f"evolution.population_size must be >= 1, got {self.population_size}")
        if not 1 <= self.sample_size <= self.population_size:
            raise BadInput(f"evolution.sample_size must be in [1, evolution.population_size={self.population_size}], got {self.sample_size}")


@dataclass
class TPEConfig:
    n_startup_trials: int = 10  # random trials before TPE models the results
    multivariate: bool = True  # model the dimensions jointly (Optuna's multivariate TPE) rather than one by one
    n_ei_candidates: int = 24  # samples TPE scores per proposal
    max_retries: int = 50  # TPE asks per proposal before falling back to a random unseen architecture

    def validate(self) -> None:
        for key in ("n_startup_trials", "n_ei_candidates", "max_retries"):
            if getattr(self, key) < (0 if key == "n_startup_trials" else 1):
                raise BadInput(f"tpe.{key} must be >= {0 if key == 'n_startup_trials' else 1}, got {getattr(self, key)}")


@dataclass
class PPOConfig:
    iterations: int | None = None  # rounds (real PPO updates); None runs until the evaluation budget is spent
    population_size: int = 4  # episodes per round: the round's candidates, evaluated together
    horizon: int = 3  # modifications per episode at most (the MDP's horizon T)
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda: 1 is Monte-Carlo return - V, 0 the one-step Bellman residual
    clip_coef: float = 0.2  # the surrogate clipping coefficient
    learning_rate: float = 3e-3  # Adam step size for the policy and the critic (0 freezes them: an ablation)
    update_epochs: int = 4  # passes over a batch of transitions per update
    # Minibatches per pass. 1: an update's batch (8-200 transitions) is small enough to take whole; splitting it
    # doubled the gradient steps, hence the controller's time, and found no better architectures (bench/reports).
    num_minibatches: int = 1
    ent_coef: float = 0.01  # entropy bonus coefficient
    vf_coef: float = 0.5  # value-loss coefficient
    max_grad_norm: float = 0.5  # global gradient-norm clip
    norm_adv: bool = True  # normalise advantages within each minibatch
    hidden_size: int = 64  # width of the policy and critic MLPs
    failure_reward: Optional[float] = None  # the metric a failed candidate counts as; None: worst seen minus 10% of the range
    startup_candidates: int = 10  # the initial architecture, then random unseen ones, before the first round
    start_pool: int = 4  # modify env: episodes start from one of the best start_pool architectures evaluated so far
    # PPO updates on simulated episodes after each round (0: model-free PPO). On the tuned landscapes 5 find as well as
    # 10 in half the time, 3 do worse (bench/reports/strategies-experiments-8.md).
    model_iterations: int = 5
    model_first: bool = True  # also fit the ensemble and run the model-based updates once the start-up candidates are in
    model_episodes: int = 64  # simulated episodes per model-based update
    model_min_r2: float = -1.0  # the ensemble's out-of-bag R^2 needed before the policy trains on it (-1: only a grossly wrong model is ignored)
    model_min_points: int = 8  # successful evaluations needed before the ensemble is trusted at all
    exploration: float = 1.0  # simulated reward = ensemble mean + exploration x ensemble std
    ensemble_members: int = 8  # members of the value ensemble (bootstrap resamples)
    # Adam steps of each ensemble fit (one a round, from scratch). 60 ranks and calibrates its uncertainty as 80 did;
    # 40 ranks as well but its spread tracks its errors less (tests/test_strategies.py).
    ensemble_steps: int = 60
    env: str = "modify"  # modify: walk from evaluated architectures; controller: choose each dimension in turn (see nas/env.py)
    screening: int = 1  # controller env: episodes sampled per candidate, the ensemble's favourite is trained (1 = off)
    init_from: Optional[str] = None  # warm start: an earlier search's controller.pt (the CLI also takes its run dir or MLflow run id)

    def validate(self) -> None:
        """Raise BadInput naming the first setting that cannot work."""
        checks = [
            ("iterations", self.iterations is None or self.iterations >= 1, ">= 1 (or null)"),
            ("population_size", self.population_size >= 1, ">= 1"), ("horizon", self.horizon >= 1, ">= 1"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]"), ("gae_lambda", 0.0 <= self.gae_lambda <= 1.0, "in [0, 1]"),
            ("clip_coef", math.isfinite(self.clip_coef) and self.clip_coef > 0, "a finite number > 0"),
            ("learning_rate", math.isfinite(self.learning_rate) and self.learning_rate >= 0, "a number >= 0"),
            ("update_epochs", self.update_epochs >= 1, ">= 1"), ("num_minibatches", self.num_minibatches >= 1, ">= 1"),
            # Every coefficient finite: inf or nan reaches the policy's probabilities a few candidates in.
            ("ent_coef", math.isfinite(self.ent_coef) and self.ent_coef >= 0, "a finite number >= 0"),
            ("vf_coef", math.isfinite(self.vf_coef) and self.vf_coef >= 0, "a finite number >= 0"),
            ("max_grad_norm", math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0, "a finite number > 0"),
            ("hidden_size", self.hidden_size >= 1, ">= 1"),
            ("failure_reward", self.failure_reward is None or math.isfinite(self.failure_reward), "finite (or null)"),
            ("startup_candidates", self.startup_candidates >= 1, ">= 1"), ("start_pool", self.start_pool >= 1, ">= 1"),
            ("model_iterations", self.model_iterations >= 0, ">= 0"),
            ("model_episodes", self.model_episodes >= 1, ">= 1"), ("model_min_r2", math.isfinite(self.model_min_r2), "finite"),
            ("model_min_points", self.model_min_points >= 3, ">= 3"),
            ("exploration", math.isfinite(self.exploration) and self.exploration >= 0, "a number >= 0"),
            ("ensemble_members", self.ensemble_members >= 2, ">= 2"), ("ensemble_steps", self.ensemble_steps >= 1, ">= 1"),
            ("env", self.env in ("modify", "controller"), "'modify' or 'controller'"),
            ("screening", self.screening >= 1, ">= 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise BadInput(f"ppo.{key} must be {expected}, got {getattr(self, key)!r}")
        if self.screening > 1 and self.env != "controller":
            raise BadInput(f"ppo.screening={self.screening} needs ppo.env=controller (the ensemble scores complete architectures)")
