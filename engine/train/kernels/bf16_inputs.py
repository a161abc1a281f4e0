"""The LoRA products computed in bf16 under autocast, without an fp32 copy of each adapter's input."""

from __future__ import annotations


def adapters_compute_in_bf16(model) -> int:
    """Let autocast run the LoRA products in bf16 instead of peft casting their inputs to fp32.

    peft casts each adapter's input to the dtype of its (fp32) weights: an fp32 copy of every
    adapted layer's input in every step, which the fused LoRA dropout (engine.train.kernels.lora_dropout)
    would then keep for the backward pass instead of sharing the bf16 input the frozen layer
    keeps. Autocast computes the products in bf16 either way; the weights and their updates stay
    fp32, as in any mixed-precision training. Returns how many adapted layers were changed.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    return len(layers)
