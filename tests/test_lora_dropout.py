"""LoRA dropout fused into the A projection: same maths as dropout-then-linear, replayable, invisible to peft."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine.train.lora_dropout import DropoutProjection, fuse_lora_dropout, keep_bits, masked
from tests.tiny_model import loss_and_grads, tiny_lora

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mask_keeps_one_minus_p_and_follows_torch_seed() -> None:
    x = torch.ones(1_000_000)
    torch.manual_seed(5)
    bits = keep_bits(x, 0.2)
    assert bits.shape == x.shape and set(bits.unique().tolist()) == {0, -1}
    keep = bits == -1
    assert (~keep).float().mean().item() == pytest.approx(0.2, abs=0.002)
    for lane in range(4):  # every 16-bit lane of a draw is uniform, the sign lane included
        assert (~keep[lane::4]).float().mean().item() == pytest.approx(0.2, abs=0.004)
    torch.manual_seed(5)
    assert torch.equal(bits, keep_bits(x, 0.2)) and not torch.equal(bits, keep_bits(x, 0.2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_masking_zeroes_exactly_the_dropped_elements(dtype: torch.dtype) -> None:
    x = torch.randn(64, 33).to(dtype)
    bits = keep_bits(x, 0.5)
    assert torch.equal(masked(x, bits), torch.where(bits == -1, x, torch.zeros((), dtype=dtype)))


def test_fused_projection_matches_dropout_then_linear() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(16, 4, bias=False)
    fused = DropoutProjection.replacing(linear, 0.3)
    assert fused.weight is linear.weight
    x = torch.randn(3, 7, 16, requires_grad=True)

    torch.manual_seed(1)
    fused(x).square().sum().backward()
    got = x.grad.clone(), linear.weight.grad.clone()
    x.grad = linear.weight.grad = None

    torch.manual_seed(1)
    nn.functional.linear(x * (keep_bits(x, 0.3) == -1) / 0.7, linear.weight).square().sum().backward()
    assert torch.allclose(got[0], x.grad, atol=1e-6) and torch.allclose(got[1], linear.weight.grad, atol=1e-6)

    fused.eval()
    assert torch.equal(fused(x), linear(x))


def test_bf16_autocast_keeps_fp32_weight_gradients() -> None:
    linear = nn.Linear(16, 4, bias=False)
    fused = DropoutProjection.replacing(linear, 0.1)
    x = torch.randn(5, 16, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fused(x)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    assert linear.weight.grad.dtype == torch.float32


def test_peft_model_keeps_its_keys_and_checkpointing_replays_the_masks(tiny_model_dir: Path) -> None:
    model = tiny_lora(tiny_model_dir, random_b=True)  # non-zero B, so the A gradients depend on the masks
    keys = set(model.state_dict())
    layers = sum(1 for m in model.modules() if type(m) is nn.Dropout)
    assert fuse_lora_dropout(model) == layers > 0
    assert set(model.state_dict()) == keys
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    _, plain = loss_and_grads(model, ids, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(plain, loss_and_grads(model, ids, seed=3)[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(plain, loss_and_grads(model, ids, seed=4)[1], strict=True))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    _, recomputed = loss_and_grads(model, ids, seed=3)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, recomputed, strict=True))


def test_dora_keeps_peft_dropout(tiny_model_dir: Path) -> None:
    assert fuse_lora_dropout(tiny_lora(tiny_model_dir, use_dora=True)) == 0


@pytest.mark.parametrize("p", [1e-6, 0.999995])
def test_a_probability_the_lanes_cannot_express_keeps_peft_dropout(tiny_model_dir: Path, p: float) -> None:
    assert fuse_lora_dropout(tiny_lora(tiny_model_dir, lora_dropout=p)) == 0
