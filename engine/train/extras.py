"""Optional packages a run asks for (DeepSpeed, experiment trackers), checked before it launches:
one clear error naming the extra to install, instead of an ImportError in the detached worker."""

from __future__ import annotations

import importlib.util

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.phrases import phrase


def check_extras(config: RunConfig) -> None:
    """Refuse a run whose optional packages are missing."""
    training = config.training
    wanted = [("training.report_to", name) for name in training.report_to]
    if training.distributed == "deepspeed":
        wanted.append(("training.distributed", "deepspeed"))
    for field, package in wanted:
        if importlib.util.find_spec(package) is None:  # looks on disk only: imports nothing
            raise ConfigError(phrase("{field} asks for {package}, but the {package} package is not installed",
                                     field=field, package=package),
                              where=field, hint=phrase("install the extra: {command}",
                                                       command="pip install 'tanren[" + package + "]'"))
