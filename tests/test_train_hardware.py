"""Training settings that depend on the machine: bf16 where it is fast, and a bf16 base with it."""

from __future__ import annotations

import pytest
import torch

from engine.config import RunConfig, apply_overrides
from engine.train import hardware


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_auto_precision_follows_the_machine(fast_bf16: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "native_bf16", lambda: fast_bf16)
    resolved = hardware.resolve_auto(RunConfig()).training
    assert resolved.precision == ("bf16" if fast_bf16 else "fp32")


def test_explicit_settings_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "native_bf16", lambda: True)
    config = apply_overrides(RunConfig(), ["training.precision=fp32"])
    assert hardware.resolve_auto(config) == config


@pytest.mark.parametrize(
    ("overrides", "dtype"),
    [
        (["training.precision=bf16"], torch.bfloat16),
        (["training.precision=fp32"], None),
        (["training.precision=bf16", "adapter.method=full"], None),    # full fine-tuning keeps fp32 master weights
        (["training.precision=bf16", "adapter.method=qlora"], None),   # quantized; its compute dtype is set apart
        (["training.precision=bf16", "model.dtype=float32"], None),     # an explicit dtype wins
    ],
)
def test_a_frozen_lora_base_is_loaded_in_bf16_when_training_in_bf16(overrides: list[str], dtype) -> None:
    assert hardware.base_dtype(apply_overrides(RunConfig(), overrides)) == dtype
