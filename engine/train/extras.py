"""Optional packages a run asks for (DeepSpeed, experiment trackers), checked before it launches:
one clear error naming the extra to install, instead of an ImportError in the detached worker."""

from __future__ import annotations

import importlib.util

from engine.config import RunConfig
from engine.errors import ConfigError

# training.distributed strategies accepted by the config (the memory estimate covers them) that the
# recipe does not shard with yet: a run asking for one is refused rather than trained as DDP
NOT_YET = ("fsdp", "deepspeed")


def check_extras(config: RunConfig) -> None:
    """Refuse a run whose optional packages are missing, or whose strategy is not wired in yet."""
    training = config.training
    wanted = [("training.report_to", name) for name in training.report_to]
    if training.distributed == "deepspeed":
        wanted.append(("training.distributed", "deepspeed"))
    for field, package in wanted:
        if importlib.util.find_spec(package) is None:  # looks on disk only: imports nothing
            raise ConfigError(f"{field} asks for {package}, but the {package} package is not installed",
                              where=field, hint=f"install the extra: pip install 'tanren[{package}]'")
    if training.distributed in NOT_YET:
        raise ConfigError(f"training.distributed: {training.distributed} does not train yet; only ddp shards "
                          "nothing and runs today", where="training.distributed",
                          hint=f"see what it would need with: tanren train --estimate --distributed "
                               f"{training.distributed}; train with ddp (the default) until then")
