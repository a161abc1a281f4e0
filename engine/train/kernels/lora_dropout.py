"""LoRA dropout fused into the adapter's first projection, for training on CPU.

peft computes `lora_A(dropout(x))`. On CPU that cost a quarter of each training step and a
third of its activation memory: PyTorch draws a CPU dropout mask one Mersenne-Twister number
per element, and the backward pass keeps both the mask and the dropped input of every adapted
layer. Here only the dropped elements are drawn: the gaps between them are geometric, so about
p * n uniform numbers place them all, and each is exactly a Bernoulli(p) drop, independent of the
others. The 1 / (1 - p) rescaling is applied to the rank-r output instead of the input, and the
backward pass keeps the dropped positions beside the undropped input, which the frozen layer
beside the adapter keeps anyway.
The draws come from torch's generator, so seeding, resuming and gradient checkpointing's replay
of the RNG state behave as with nn.Dropout. DoRA and other LoRA variants, which use the dropped
input elsewhere, keep peft's own path.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_SIGMAS = 8  # extra gaps drawn beyond the expected count; a second draw is then needed about once in 1e15


def gaps_to_draw(n: int, p: float) -> int:
    """How many gaps one draw makes: enough, almost always, to pass the last of `n` elements."""
    expected = n * p
    return int(expected + _SIGMAS * math.sqrt(expected)) + _SIGMAS


def dropped_positions(n: int, p: float) -> torch.Tensor:
    """Sorted flat indices (int64) of the elements that dropout with probability p drops among n.

    The number of kept elements before each dropped one is geometric, floor(log(1 - u) / log(1 - p))
    for a uniform u, so each element is dropped with probability p, independently of the others.
    """
    if n == 0:
        return torch.empty(0, dtype=torch.int64)
    per_log = 1 / math.log1p(-p)
    parts, start = [], 0
    while start < n:
        uniform = torch.rand(gaps_to_draw(n, p), dtype=torch.float64)
        positions = uniform.neg_().log1p_().mul_(per_log).floor_().add_(1).cumsum_(0).add_(start - 1)
        parts.append(positions)
        start = int(positions[-1].item()) + 1
    positions = torch.cat(parts)
    return positions[:int(torch.searchsorted(positions, float(n)))].long()


def without(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """A copy of `x` with the elements at flat `positions` set to zero."""
    return x.flatten().index_fill(0, positions, 0).view(x.shape)


class _DropoutProjection(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, weight, p):
        positions = dropped_positions(x.numel(), p)
        ctx.save_for_backward(x, weight, positions)
        ctx.scale = 1 / (1 - p)
        return nn.functional.linear(without(x, positions), weight) * ctx.scale

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        x, weight, positions = ctx.saved_tensors
        grad = grad * ctx.scale
        compute = grad.dtype
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ weight.to(compute)
            grad_x.view(-1).index_fill_(0, positions, 0)
        if ctx.needs_input_grad[1]:
            dropped = without(x, positions).to(compute)
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
            if (type(dropout) is nn.Dropout and 0 < dropout.p < 1 and type(projection) is nn.Linear
                    and projection.bias is None and adapter not in getattr(module, "lora_variant", {})):
                projections[adapter] = DropoutProjection.replacing(projection, dropout.p)
                dropouts[adapter] = nn.Identity()
                fused += 1
    return fused
