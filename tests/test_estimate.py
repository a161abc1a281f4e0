"""The memory estimate: its parts against hand-computed cases, and against the bytes of the real
tensors of the tiny model (parameters, LoRA weights, gradients, AdamW's state after one step)."""

from __future__ import annotations

import dataclasses

import pytest

from engine.train.estimate import ModelShape, Setup, activation_bytes, estimate, first_change, weight_bytes
from engine.train.memory import DeviceMemory, MemoryCheck, advice, model_shape, summary

# the tiny test model's shape (tests/tiny_model.py): 2 layers, tied embeddings, stored in fp32; the
# hand-computed cases take a round vocabulary (the model's is its tokenizer's length)
TINY = ModelShape(hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, vocab=600, head_dim=16, tied=True)
# per layer: q 64x64, k 64x32, v 64x32, o 64x64, gate/up 64x128, down 128x64 = 36864 weights;
# besides them: the embedding 600x64, two norms per layer and the final one = 38720
LINEAR, OTHER = 2 * 36864, 600 * 64 + 2 * 128 + 64
# LoRA r=16: r x (in + out) for each of the 7 linears = 16384 per layer, in 2 tensors each
LORA, LORA_TENSORS = 2 * 16384, 2 * 7 * 2


def test_the_shape_counts_the_parameters_by_hand() -> None:
    assert (TINY.linear_params(), TINY.other_params(), TINY.params()) == (LINEAR, OTHER, LINEAR + OTHER)


@pytest.mark.parametrize(("method", "precision", "double_quant", "expected"), [
    ("lora", "bf16", True, (LINEAR + OTHER) * 2),      # a LoRA base computing in bf16 loads in bf16
    ("lora", "fp32", True, (LINEAR + OTHER) * 4),      # otherwise in the checkpoint's dtype
    ("full", "bf16", True, (LINEAR + OTHER) * 4),      # full keeps the checkpoint's dtype
    ("qlora", "bf16", True, LINEAR // 2 + LINEAR // 64 + LINEAR * 4 // (64 * 256) + OTHER * 2),
    ("qlora", "fp32", False, LINEAR // 2 + LINEAR * 4 // 64 + OTHER * 4),
])
def test_weights_by_method_and_precision(method, precision, double_quant, expected) -> None:
    assert weight_bytes(TINY, Setup(method=method, precision=precision, double_quant=double_quant)) == expected


def test_lora_trains_fp32_adapters_with_adamw_state() -> None:
    e = estimate(TINY, Setup(method="qlora"))
    assert (e.trainable, e.gradients) == (LORA * 4, LORA * 4)
    assert e.optimizer == 2 * LORA * 4 + LORA_TENSORS * 4  # two moments, one fp32 step per tensor


def test_full_fine_tuning_trains_every_weight() -> None:
    e = estimate(TINY, Setup(method="full", precision="fp32"))
    params, tensors = LINEAR + OTHER, 2 * 9 + 2  # 7 linears and 2 norms a layer, embedding, final norm
    assert (e.weights, e.trainable, e.gradients) == (params * 4, 0, params * 4)
    assert e.optimizer == 2 * params * 4 + tensors * 4


def test_sharding_divides_what_each_strategy_shards() -> None:
    full = Setup(method="full", precision="fp32", processes=4)
    alone = estimate(TINY, dataclasses.replace(full, processes=1))
    ddp = estimate(TINY, full)
    zero2 = estimate(TINY, dataclasses.replace(full, strategy="zero2"))
    fsdp = estimate(TINY, dataclasses.replace(full, strategy="fsdp"))
    offload = estimate(TINY, dataclasses.replace(full, strategy="zero3", offload="optimizer"))
    everything = estimate(TINY, dataclasses.replace(full, strategy="zero3", offload="all"))
    assert ddp.gradients == 2 * alone.gradients  # DDP's all-reduce buckets copy the gradients
    assert (zero2.weights, zero2.gradients, zero2.optimizer) == (
        alone.weights, alone.gradients // 4, alone.optimizer / 4)
    assert (fsdp.weights, fsdp.gradients, fsdp.gathered) == (alone.weights // 4, alone.gradients // 4, alone.weights)
    assert (offload.optimizer, offload.offloaded) == (0, alone.optimizer / 4)
    assert (everything.weights, everything.optimizer, everything.offloaded) == (
        0, 0, alone.optimizer / 4 + alone.weights / 4)


def test_activations_by_tokens_with_and_without_checkpointing() -> None:
    setup = Setup(method="lora", precision="bf16", micro_batch=2, max_length=32)
    # per token and layer: 4h + 3q + 3kv + 4i saved, plus LoRA's dropped inputs (5 of width h, o's q, down's i)
    per_token = 4 * 64 + 3 * 64 + 3 * 32 + 4 * 128 + (5 * 64 + 64 + 128)
    layer, logits = 64 * per_token * 2, 64 * 600 * (2 + 8)
    assert activation_bytes(TINY, setup) == 2 * 64 * 64 * 2 + layer + logits  # layer inputs + one layer again
    assert activation_bytes(TINY, dataclasses.replace(setup, checkpointing=False)) == 2 * layer + logits


def test_the_first_change_named_is_the_first_that_fits() -> None:
    setup = Setup(method="lora", precision="bf16", micro_batch=8, max_length=4096)
    need = estimate(TINY, setup)
    after_qlora = estimate(TINY, dataclasses.replace(setup, method="qlora"))
    # qlora saves too little here: the activations dominate, so the micro-batch comes first
    change = first_change(TINY, setup, lambda e: e.total < after_qlora.total * 0.5)
    assert change is not None and change.setting.startswith("training.micro_batch_size: 1")
    ram = (DeviceMemory("CPU RAM (no CUDA GPU)", need.total // 2, need.total, gpu=False),)
    check = MemoryCheck(setup, need, ram, change)
    assert not check.fits() and "does NOT fit" in summary(check)
    assert "change training.micro_batch_size: 1" in advice(check)


@pytest.fixture(scope="module")
def tiny_shape(tiny_model_dir) -> ModelShape:
    from engine.paths import Home

    return model_shape(str(tiny_model_dir), Home(tiny_model_dir.parent))


def test_reads_the_shape_from_the_config_alone(tiny_shape) -> None:
    assert tiny_shape == dataclasses.replace(TINY, vocab=tiny_shape.vocab)


@pytest.fixture(scope="module")
def tiny_lora(tiny_model_dir):
    """The tiny model with a bf16 base and LoRA on every linear, after one AdamW step."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model = get_peft_model(base, LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    optimizer = _one_step(model)
    return model, optimizer


def _one_step(model):
    import torch

    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-3)
    ids = torch.arange(16).unsqueeze(0)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return optimizer


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _state_bytes(optimizer) -> int:
    return _bytes(v for state in optimizer.state.values() for v in state.values())


def test_lora_matches_the_real_tensors(tiny_lora, tiny_shape) -> None:
    model, optimizer = tiny_lora
    e = estimate(tiny_shape, Setup(method="lora", precision="bf16", rank=16))
    trained = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert _bytes(frozen) == e.weights
    assert _bytes(trained) == e.trainable
    assert _bytes(p.grad for p in trained) == e.gradients
    assert _state_bytes(optimizer) == e.optimizer


def test_full_fine_tuning_matches_the_real_tensors(tiny_model_dir, tiny_shape) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    optimizer = _one_step(model)
    e = estimate(tiny_shape, Setup(method="full", precision="fp32"))
    assert _bytes(model.parameters()) == e.weights
    assert _bytes(p.grad for p in model.parameters()) == e.gradients
    assert _state_bytes(optimizer) == e.optimizer


def test_qlora_weights_match_the_real_4bit_tensors(tiny_model_dir, tiny_shape) -> None:
    """bitsandbytes' packed weights and block scales; its two lookup tables per linear (64 bytes
    and, double-quantized, 1 KiB: nothing beside a real model's weights) are left out."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, quantization_config=quant, device_map={"": "cpu"},
                                                 dtype=torch.bfloat16)
    states = [p.quant_state for p in model.parameters() if getattr(p, "quant_state", None) is not None]
    scales = _bytes(t for s in states for t in (s.absmax, s.state2.absmax))
    measured = _bytes(model.parameters()) + scales
    assert measured == pytest.approx(weight_bytes(tiny_shape, Setup(method="qlora", precision="bf16")), rel=0.01)
