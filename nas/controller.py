"""Saved PPO controllers (``controller.pt``): the policy and value networks a later search warm-starts from
(``ppo.init_from``), with the search space and settings they were trained for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.errors import BadInput
from nas.folders import serialized, write_atomically
from nas.settings import PPOConfig
from nas.space import SearchSpace

CONTROLLER_FORMAT = "nas-ppo-controller/1"


class ControllerError(BadInput):
    """A warm-start controller that is missing, not a controller, or made for another search space."""


def write_controller(state: dict[str, Any], path: str | Path) -> None:
    write_atomically(Path(path), serialized(state))


def load_controller(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ControllerError(f"ppo.init_from: controller file '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain containers only
    except Exception as exc:
        raise ControllerError(f"ppo.init_from: '{path}' is not a readable controller checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CONTROLLER_FORMAT:
        raise ControllerError(f"ppo.init_from: '{path}' is not a nas PPO controller (no '{CONTROLLER_FORMAT}' format tag)")
    return state


def controller_mismatch(state: dict[str, Any], space: SearchSpace, config: PPOConfig) -> list[str]:
    """What differs between a saved controller and this search; empty when it can be loaded."""
    saved: dict[str, list] = state["dimensions"]
    problems = [f"dimension '{d}' is not in this search space" for d in saved if d not in space.names]
    problems += [f"dimension '{d}' is not in the saved controller" for d in space.names if d not in saved]
    problems += [
        f"dimension '{d}' has choices {list(space.dimensions[d])} here but {saved[d]} in the controller"
        for d in space.names if d in saved and list(space.dimensions[d]) != list(saved[d])
    ]
    if list(saved) != list(space.names) and not problems:
        problems.append(f"dimensions are in the order {list(saved)} in the controller but {list(space.names)} here")
    for key in ("horizon", "hidden_size", "env"):
        if state.get(key, "modify") != getattr(config, key):
            problems.append(f"ppo.{key} is {getattr(config, key)} here but {state[key]} in the controller")
    return problems
