"""nas: neural-architecture search for transformers with PPO.

The library API needs neither Hydra nor transformers::

    import nas
    result = nas.search({"layers": [1, 2, 4], "width": [32, 64]}, objective, strategy="ppo", budget=20, seed=0)
    result.best_architecture, result.best_value, result.history
"""

from nas.search import Evaluation, Outcome, SearchResult, search
from nas.space import Constraint, SearchSpace, SpaceError
from nas.strategies import STRATEGIES, PPOConfig

__all__ = ["STRATEGIES", "Constraint", "Evaluation", "Outcome", "PPOConfig", "SearchResult", "SearchSpace", "SpaceError", "search"]
__version__ = "0.1.0"
