"""How several processes share the model: training.distributed turned into the trainer's own engines.

ddp needs nothing beyond torchrun. fsdp is torch's FSDP2 (`fully_shard` of each transformer layer,
the layer classes the model names as `_no_split_modules`) through accelerate's FSDP plugin, which
transformers' Trainer drives: sharded checkpoints, DTensor-aware gradient clipping, and the full
state dict gathered for the final save. deepspeed is accelerate's DeepSpeed plugin, fed the config
that engine.train.deepspeed_config writes into the run folder. Nothing here shards by itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.events import EventLog


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def strategy(config: RunConfig) -> str:
    """The strategy this launch trains with: "single" for one process, else training.distributed."""
    return config.training.distributed if world_size() > 1 else "single"


def shards_weights(config: RunConfig) -> bool:
    return strategy(config) in ("fsdp", "deepspeed")  # deepspeed is ZeRO-3


def quant_storage(config: RunConfig, compute):
    """The dtype QLoRA packs its 4-bit weights into. Sharding engines flatten every tensor of a unit
    into one buffer of one dtype, so a sharded run stores them in the compute dtype, as FSDP-QLoRA
    and DeepSpeed ZeRO-3 QLoRA need; one process keeps bitsandbytes' uint8."""
    import torch

    return compute if shards_weights(config) else torch.uint8


def trainer_arguments(config: RunConfig, run_path: Path) -> dict[str, Any]:
    """What the strategy adds to the trainer's arguments."""
    chosen = strategy(config)
    if chosen == "fsdp":
        return {"fsdp": True, "fsdp_config": fsdp_config(config)}
    if chosen == "deepspeed":
        from engine.train.deepspeed_config import write_deepspeed_config

        return {"deepspeed": str(write_deepspeed_config(config.training, run_path))}
    return {}


def deepspeed_record(config: RunConfig) -> dict[str, Any]:
    """The DeepSpeed config this launch trains with, for the record in config.yaml ({} for other strategies)."""
    if strategy(config) != "deepspeed":
        return {}
    from engine.train.deepspeed_config import deepspeed_config

    return deepspeed_config(config.training)


def fsdp_config(config: RunConfig) -> dict[str, Any]:
    """transformers' fsdp_config for accelerate's FSDP2 plugin."""
    return {
        "version": 2,
        # each rank checkpoints its own shards through torch.distributed.checkpoint (resumed by the
        # same number of processes); the final save switches to a full state dict (full_state_dict_for_save)
        "state_dict_type": "SHARDED_STATE_DICT",
        "reshard_after_forward": True,
        "cpu_offload": config.training.offload == "all",  # parameters, gradients and the optimizer step
    }


def full_state_dict_for_save(trainer) -> None:
    """Make the trainer's next save_model gather the whole model onto rank 0 (every rank must call
    save_model then, to take part in the gather), so the result is one ordinary peft or HF folder."""
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")


def callbacks(config: RunConfig, run_path: Path, events: EventLog) -> list:
    if strategy(config) != "fsdp":
        return []
    from engine.train.sharding_record import ShardingRecord

    return [ShardingRecord(run_path, events)]
