"""LoRA dropout fused into the adapter's first projection, for training on CPU.

peft computes `lora_A(dropout(x))`. On CPU that cost a quarter of each training step and a
third of its activation memory: PyTorch draws a CPU dropout mask one Mersenne-Twister number
per element, and the backward pass keeps both the mask and the dropped input of every adapted
layer. Here the mask comes from a generator seeded per call, four 15-bit lanes out of each 64-bit
draw (an element is dropped with probability round(p * 2**15) / 2**15: 0.05 becomes 0.04999),
and the backward pass keeps only the seed and the undropped input - which the frozen layer
beside the adapter keeps anyway - and draws the mask again. The seed comes from torch's
generator, so seeding, resuming and gradient checkpointing's replay of the RNG state behave as
with nn.Dropout. DoRA and other LoRA variants, which use the dropped input elsewhere, keep
peft's own path.
"""

from __future__ import annotations

import torch
from torch import nn

LANE_BITS = 15
LANES_PER_DRAW = 4


def draw_seed() -> int:
    """A mask's seed, from torch's generator (so seeding and RNG replay reach the masks)."""
    return int(torch.empty((), dtype=torch.int64).random_())


def keep_mask(like: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """0 where an element is dropped, 1 / (1 - p) where it is kept, shaped and typed like `like`."""
    n = like.numel()
    generator = torch.Generator().manual_seed(seed)
    draws = torch.empty(-(-n // LANES_PER_DRAW), dtype=torch.int64).random_(generator=generator)
    lanes = draws.view(torch.int16)[:n].bitwise_and_((1 << LANE_BITS) - 1)
    keep = (lanes >= round(p * (1 << LANE_BITS))).to(like.dtype).mul_(1 / (1 - p))
    return keep.view_as(like)


class _DropoutProjection(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, weight, p, seed):
        ctx.save_for_backward(x, weight)
        ctx.p, ctx.seed = p, seed
        return nn.functional.linear(x * keep_mask(x, p, seed), weight)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        keep = keep_mask(x, ctx.p, ctx.seed)
        compute = grad.dtype
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad @ weight.to(compute)) * keep.to(compute)
        if ctx.needs_input_grad[1]:
            dropped = (x * keep).to(compute)
            grad_weight = (grad.flatten(0, -2).T @ dropped.flatten(0, -2)).to(weight.dtype)
        return grad_x, grad_weight, None, None


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
        return _DropoutProjection.apply(x, self.weight, self.p, draw_seed())


def fuse_lora_dropout(model: nn.Module) -> int:
    """Fuse every vanilla LoRA layer's dropout into its A projection; returns how many were fused."""
    fused = 0
    for module in model.modules():
        dropouts, projections = getattr(module, "lora_dropout", None), getattr(module, "lora_A", None)
        if not isinstance(dropouts, nn.ModuleDict) or not isinstance(projections, nn.ModuleDict):
            continue
        for adapter, dropout in dropouts.items():
            projection = projections[adapter] if adapter in projections else None
            if (type(dropout) is nn.Dropout and 0 < dropout.p < 1 and type(projection) is nn.Linear
                    and projection.bias is None and adapter not in getattr(module, "lora_variant", {})):
                projections[adapter] = DropoutProjection.replacing(projection, dropout.p)
                dropouts[adapter] = nn.Identity()
                fused += 1
    return fused
