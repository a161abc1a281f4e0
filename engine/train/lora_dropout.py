"""LoRA dropout fused into the adapter's first projection, for training on CPU.

peft computes `lora_A(dropout(x))`. On CPU that cost a quarter of each training step and a
third of its activation memory: PyTorch draws a CPU dropout mask one Mersenne-Twister number
per element, and the backward pass keeps both the mask and the dropped input of every adapted
layer. Here the mask takes four 16-bit lanes out of each 64-bit draw (an element is dropped with
probability round(p * 2**16) / 2**16: 0.05 becomes 0.050003) and zeroes dropped elements by
and-ing bit patterns, the 1 / (1 - p) rescaling is applied to the rank-r output instead of the
input, and the backward pass keeps the 16-bit mask beside the undropped input, which the frozen
layer beside the adapter keeps anyway.
The draws come from torch's generator, so seeding, resuming and gradient checkpointing's replay
of the RNG state behave as with nn.Dropout. DoRA and other LoRA variants, which use the dropped
input elsewhere, keep peft's own path.
"""

from __future__ import annotations

import torch
from torch import nn

LANES_PER_DRAW = 4
LANE_VALUES = 1 << 16
_SAME_WIDTH_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def representable(p: float) -> bool:
    """Whether p is a drop probability the 16-bit lanes can express (p above 1/131072, below 1)."""
    return 1 <= round(p * LANE_VALUES) < LANE_VALUES


def keep_bits(like: torch.Tensor, p: float) -> torch.Tensor:
    """int16 shaped like `like`: all ones where an element is kept (probability 1 - p), zero where dropped.

    The draws come from torch's generator. Bit arithmetic stands in for a comparison because
    PyTorch's CPU comparisons and boolean selects are several times slower than integer maths.
    """
    n = like.numel()
    draws = torch.empty(-(-n // LANES_PER_DRAW), dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    lanes = draws.view(torch.int16)[:n].view(like.shape)
    kept_up_to = LANE_VALUES // 2 - 1 - round(p * LANE_VALUES)  # lanes above it are dropped
    return lanes.clamp_(kept_up_to, kept_up_to + 1).sub_(kept_up_to + 1)


def masked(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """`x` with the elements `bits` drops set to +0.0, whose bit pattern is all zeros."""
    word = _SAME_WIDTH_INT[x.element_size()]
    return (x.view(word) & bits.to(word)).view(x.dtype)


class _DropoutProjection(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, weight, p):
        bits = keep_bits(x, p)
        ctx.save_for_backward(x, weight, bits)
        ctx.scale = 1 / (1 - p)
        return nn.functional.linear(masked(x, bits), weight) * ctx.scale

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        x, weight, bits = ctx.saved_tensors
        grad = grad * ctx.scale
        compute = grad.dtype
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = masked(grad @ weight.to(compute), bits)
        if ctx.needs_input_grad[1]:
            dropped = masked(x, bits).to(compute)
            grad_weight = (grad.flatten(0, -2).T @ dropped.flatten(0, -2)).to(weight.dtype)
        return grad_x, grad_weight, None


class DropoutProjection(nn.Linear):
    """A LoRA A projection that applies the adapter's dropout to its input itself."""

    p: float = 0.0

    @classmethod
    def replacing(cls, linear: nn.Linear, p: float) -> DropoutProjection:
        fused = cls(linear.in_features, linear.out_features, bias=False, device="meta")
        fused.weight, fused.p = linear.weight, p
        fused.train(linear.training)
        return fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        if x.device.type != "cpu":
            return super().forward(nn.functional.dropout(x, self.p, training=True))
        return _DropoutProjection.apply(x, self.weight, self.p)


def fuse_lora_dropout(model: nn.Module) -> int:
    """Fuse every vanilla LoRA layer's dropout into its A projection; returns how many were fused."""
    fused = 0
    for module in model.modules():
        dropouts, projections = getattr(module, "lora_dropout", None), getattr(module, "lora_A", None)
        if not isinstance(dropouts, nn.ModuleDict) or not isinstance(projections, nn.ModuleDict):
            continue
        for adapter, dropout in dropouts.items():
            projection = projections[adapter] if adapter in projections else None
            if (type(dropout) is nn.Dropout and representable(dropout.p) and type(projection) is nn.Linear
                    and projection.bias is None and adapter not in getattr(module, "lora_variant", {})):
                projections[adapter] = DropoutProjection.replacing(projection, dropout.p)
                dropouts[adapter] = nn.Identity()
                fused += 1
    return fused
