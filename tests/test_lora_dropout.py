"""LoRA dropout fused into the A projection: same maths as dropout-then-linear, replayable, invisible to peft."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine.train.kernels import lora_dropout
from engine.train.kernels.lora_dropout import DropoutProjection, dropped_positions, fuse_lora_dropout, without
from tests.tiny_model import loss_and_grads, tiny_lora

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _assert_bernoulli(positions: torch.Tensor, n: int, p: float, tolerance: float) -> None:
    """Sorted distinct drops among n, each element dropped with probability p, neighbours independently."""
    assert positions.dtype == torch.int64 and positions.numel() > 0
    assert bool((positions[1:] > positions[:-1]).all()) and 0 <= positions[0] and positions[-1] < n
    dropped = torch.zeros(n, dtype=torch.bool)
    dropped[positions] = True
    assert dropped.float().mean().item() == pytest.approx(p, abs=tolerance)
    assert dropped[-n // 10:].float().mean().item() == pytest.approx(p, abs=3 * tolerance)  # the tail too
    assert (dropped[1:] & dropped[:-1]).float().mean().item() == pytest.approx(p * p, abs=tolerance)


def test_drops_each_element_with_probability_p_and_follows_torch_seed() -> None:
    torch.manual_seed(5)
    positions = dropped_positions(1_000_000, 0.2)
    _assert_bernoulli(positions, 1_000_000, 0.2, tolerance=0.002)
    torch.manual_seed(5)
    assert torch.equal(positions, dropped_positions(1_000_000, 0.2))
    assert not torch.equal(positions, dropped_positions(1_000_000, 0.2))


def test_draws_again_until_every_element_is_decided(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lora_dropout, "gaps_to_draw", lambda n, p: 1000)  # about 60 draws
    torch.manual_seed(0)
    _assert_bernoulli(dropped_positions(200_000, 0.3), 200_000, 0.3, tolerance=0.005)


@pytest.mark.parametrize("one_gap_per_draw", [False, True])  # True: every element is decided after a new draw
def test_every_element_is_dropped_like_any_other(one_gap_per_draw: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if one_gap_per_draw:
        monkeypatch.setattr(lora_dropout, "gaps_to_draw", lambda n, p: 1)
    torch.manual_seed(0)
    drops = torch.zeros(3)
    for _ in range(4000):
        drops[dropped_positions(3, 0.5)] += 1
    assert torch.allclose(drops / 4000, torch.full((3,), 0.5), atol=0.03)
    assert dropped_positions(0, 0.5).numel() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dropping_zeroes_exactly_the_dropped_elements(dtype: torch.dtype) -> None:
    x = torch.randn(64, 33).to(dtype)
    positions = dropped_positions(x.numel(), 0.5)
    kept = torch.ones(x.numel(), dtype=torch.bool)
    kept[positions] = False
    assert torch.equal(without(x, positions), torch.where(kept.view(x.shape), x, torch.zeros((), dtype=dtype)))


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
    kept = torch.ones(x.numel())
    kept[dropped_positions(x.numel(), 0.3)] = 0
    nn.functional.linear(x * kept.view(x.shape) / 0.7, linear.weight).square().sum().backward()
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


@pytest.mark.parametrize("reentrant", [True, False])
def test_peft_model_keeps_its_keys_and_checkpointing_replays_the_masks(tiny_model_dir: Path, reentrant: bool) -> None:
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
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    model.enable_input_require_grads()
    _, recomputed = loss_and_grads(model, ids, seed=3)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, recomputed, strict=True))


def test_dora_keeps_peft_dropout(tiny_model_dir: Path) -> None:
    assert fuse_lora_dropout(tiny_lora(tiny_model_dir, use_dora=True)) == 0


def test_dropping_everything_keeps_peft_dropout(tiny_model_dir: Path) -> None:
    assert fuse_lora_dropout(tiny_lora(tiny_model_dir, lora_dropout=1.0)) == 0


def test_a_tiny_probability_is_fused_and_drops_almost_nothing(tiny_model_dir: Path) -> None:
    assert fuse_lora_dropout(tiny_lora(tiny_model_dir, lora_dropout=1e-6)) > 0
    torch.manual_seed(0)
    assert dropped_positions(100_000, 1e-6).numel() <= 2
