"""LoRA's update added to the frozen layer's output inside one matrix product.

peft computes `result + lora_B(h) * scaling`: besides the product, a multiplication and an
addition over the layer's whole output width, each in the forward pass, in gradient
checkpointing's recomputation and (the multiplication) in the backward pass. On a CPU those
passes over memory cost about a fifth of an adapted layer's step. `addmm(result, h, B.T,
alpha=scaling)` does the same sum within the product, rounding once instead of three times in
bf16 (and, in QLoRA's 4-bit layers, without peft's defensive copy of the base output, which
guards against in-place changes that this path does not make). Only plain LoRA layers take
this path: a torch Linear or bitsandbytes 4-bit base, one active adapter that is not merged,
no DoRA or other variant, no bias on B, no per-example adapters, and A and B still torch
Linears (FSDP wraps them in units of their own); every other call goes to peft's forward.
The new forward is bound to each layer, so a whole model object no longer pickles; the trainer
saves state dicts, which are unchanged.
"""

from __future__ import annotations

import types

import torch
from torch import nn


def sum_lora_in_product(model: nn.Module) -> int:
    """Let every plain peft LoRA Linear of `model` add its update inside B's product; returns how many."""
    kinds = _layer_kinds()
    # a forward already bound to a layer (accelerate's offloading hooks) is left to do its work
    layers = [m for m in model.modules()
              if kinds.get(type(m)) is type(getattr(m, "base_layer", None)) and "forward" not in vars(m)]
    for layer in layers:
        layer.forward = types.MethodType(_summed_forward, layer)
    return len(layers)


def _layer_kinds() -> dict[type, type]:
    """peft's LoRA layer classes whose plain forward this module reproduces, each with its base layer's class."""
    from peft.tuners.lora import bnb as lora_4bit
    from peft.tuners.lora.layer import Linear

    kinds: dict[type, type] = {Linear: nn.Linear}
    if hasattr(lora_4bit, "Linear4bit"):  # peft defines it only where bitsandbytes has 4-bit support
        import bitsandbytes

        kinds[lora_4bit.Linear4bit] = bitsandbytes.nn.Linear4bit
    return kinds


def _summed_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    adapter = _plain_adapter(self, x, args, kwargs)
    if adapter is None:
        return type(self).forward(self, x, *args, **kwargs)
    result = self.base_layer(x)
    project = self.lora_A[adapter]
    h = project(self.lora_dropout[adapter](self._cast_input_dtype(x, project.weight.dtype)))
    summed = torch.addmm(result.reshape(-1, result.shape[-1]), h.reshape(-1, h.shape[-1]),
                         self.lora_B[adapter].weight.t(), alpha=self.scaling[adapter])
    return summed.view(result.shape)


def _plain_adapter(layer, x: torch.Tensor, args: tuple, kwargs: dict) -> str | None:
    """The one active adapter when peft's forward would add `lora_B(lora_A(dropout(x))) * scaling`, else None."""
    if args or kwargs or layer.disable_adapters or layer.merged:  # kwargs: adapter_names, variants' arguments
        return None
    active = [name for name in layer.active_adapters if name in layer.lora_A]
    if len(active) != 1 or active[0] in layer.lora_variant:
        return None
    adapter = active[0]
    up = layer.lora_B[adapter]
    if not (isinstance(layer.lora_A[adapter], nn.Linear) and type(up) is nn.Linear and up.bias is None):
        return None
    # addmm raises on mixed dtypes, which peft casts or promotes; under autocast all are cast to one.
    # Both bases return x's dtype (a torch Linear refuses any other input, bitsandbytes casts back).
    weights = (layer.lora_A[adapter].weight, up.weight)
    if not torch.is_autocast_enabled(x.device.type) and any(w.dtype != x.dtype for w in weights):
        return None
    return adapter
