"""Optional packages a run asks for (DeepSpeed, experiment trackers), checked before it launches:
one clear error naming the extra to install, instead of an ImportError in the detached worker."""

from __future__ import annotations

import importlib.util

from engine.config import RunConfig
from engine.errors import ConfigError


def check_extras(config: RunConfig) -> None:
    """Refuse a run whose optional packages are missing."""
    training = config.training
    wanted = [("training.report_to", name) for name in training.report_to]
    if training.distributed == "deepspeed":
        wanted.append(("training.distributed", "deepspeed"))
    for field, package in wanted:
        if importlib.util.find_spec(package) is None:  # looks on disk only: imports nothing
            raise ConfigError(f"{field} asks for {package}, but the {package} package is not installed",
                              where=field, hint=f"install the extra: pip install 'tanren[{package}]'")
