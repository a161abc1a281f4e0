"""Settings whose best value depends on the machine that trains: bf16 and the base's dtype."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.config import RunConfig


def native_bf16() -> bool:
    """Whether bf16 is fast here: a CUDA GPU that supports it, or a CPU with AMX or AVX-512 BF16.

    On such CPUs (Sapphire Rapids and later, Cooper Lake) oneDNN runs bf16 matrix products
    several times faster than fp32; elsewhere bf16 on a CPU is emulated and slower.
    """
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported(including_emulation=False)
    cpu = torch.cpu
    amx = cpu._is_amx_tile_supported() and cpu._init_amx()  # the kernel must also grant AMX to the process
    return bool(amx or cpu._is_avx512_bf16_supported())


def resolve_auto(config: RunConfig) -> RunConfig:
    """`config` with training.precision "auto" decided for this machine."""
    training = config.training
    if training.precision != "auto":
        return config
    precision = "bf16" if native_bf16() else "fp32"
    return dataclasses.replace(config, training=dataclasses.replace(training, precision=precision))


def base_dtype(config: RunConfig) -> Any:
    """The dtype to load the base in, or None for model.dtype.

    A LoRA base is frozen, so when training computes in bf16 its weights are loaded in bf16:
    half the memory and no cast of every weight in every step (the adapter stays fp32, as peft
    keeps it). Full fine-tuning keeps fp32 master weights; an explicit model.dtype wins.
    """
    import torch

    if config.adapter.method == "lora" and config.model.dtype == "auto" and config.training.precision == "bf16":
        return torch.bfloat16
    return None

