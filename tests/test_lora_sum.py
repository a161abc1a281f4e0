"""LoRA's update summed inside B's product: peft's outputs and gradients, and peft's path wherever it is not plain."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.train.kernels.bf16_inputs import adapters_compute_in_bf16
from engine.train.kernels.lora_sum import sum_lora_in_product
from tests.spies import record_calls
from tests.tiny_model import loss_and_grads, tiny_lora

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _twins(tiny_model_dir: Path, **settings):
    """Two identical peft models in training mode with non-zero B; the second adds its updates inside the product."""
    return [tiny_lora(tiny_model_dir, random_b=True, **settings).train() for _ in range(2)]


def _loss_and_grads(model, ids):
    loss, grads = loss_and_grads(model, ids, seed=3)  # the same dropout masks for both twins
    return [loss, *grads]


def _close(a, b, **tolerance) -> bool:
    return all(torch.allclose(x.float(), y.float(), **tolerance) for x, y in zip(a, b, strict=True))


def _ids(model):
    return torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))


def _lora_layers(model) -> int:
    from peft.tuners.lora import LoraLayer

    return sum(isinstance(m, LoraLayer) for m in model.modules())


@pytest.mark.parametrize("four_bit", [False, True], ids=["lora", "qlora"])
def test_summed_layers_give_peft_loss_and_gradients(
    four_bit: bool, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peft_model, summed = _twins(tiny_model_dir, four_bit=four_bit)
    assert sum_lora_in_product(summed) == _lora_layers(summed) > 0
    products = record_calls(monkeypatch, torch, "addmm", lambda *_: True)
    ids = _ids(summed)
    assert _close(_loss_and_grads(summed, ids), _loss_and_grads(peft_model, ids), atol=1e-5)
    assert len(products) == _lora_layers(summed)  # every adapted layer took the summed path, forward


@pytest.mark.parametrize("setup", ["bf16 base, fp32 adapters, autocast", "all bf16, no autocast",
                                   "4-bit base computing in bf16, fp32 adapters, autocast"])
def test_bf16_training_stays_close_to_peft(setup: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    autocast = setup.endswith(", autocast")
    peft_model, summed = _twins(tiny_model_dir, dtype=torch.bfloat16, autocast_adapter_dtype=autocast,
                                four_bit=setup.startswith("4-bit"))
    for model in (peft_model, summed):
        adapters_compute_in_bf16(model)  # as the recipe does when training in bf16
    sum_lora_in_product(summed)
    ids = _ids(summed)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        theirs = _loss_and_grads(peft_model, ids)
        products = record_calls(monkeypatch, torch, "addmm", lambda *_: True)
        ours = _loss_and_grads(summed, ids)
    assert len(products) == _lora_layers(summed)
    assert _close(ours, theirs, rtol=0.05, atol=2e-3)


CASES = ["disabled", "merged", "two adapters", "per-example adapters", "mixed dtypes", "dora", "bias on B"]


@pytest.mark.parametrize("case", CASES)
def test_every_other_case_keeps_peft_forward(case: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import LoraConfig

    dtype = torch.bfloat16 if case == "mixed dtypes" else torch.float32  # a bf16 base, adapters kept in fp32
    lora = {"dora": {"use_dora": True}, "bias on B": {"lora_bias": True}}.get(case, {})
    models = _twins(tiny_model_dir, dtype=dtype, **lora)
    for model in models:
        model.eval()
        if case == "two adapters":
            torch.manual_seed(5)
            model.add_adapter("second", LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False))
            model.base_model.set_adapter(["default", "second"])
        if case == "merged":
            model.merge_adapter()
    peft_model, summed = models
    assert sum_lora_in_product(summed) > 0
    products = record_calls(monkeypatch, torch, "addmm", lambda *_: True)
    ids = _ids(summed)
    kwargs = {"adapter_names": ["default", "__base__"]} if case == "per-example adapters" else {}

    def logits(model):
        if case == "disabled":
            with model.disable_adapter():
                return model(input_ids=ids).logits
        return model(input_ids=ids, **kwargs).logits

    with torch.no_grad():
        assert torch.equal(logits(summed), logits(peft_model))
    assert products == []


def test_a_forward_bound_by_someone_else_is_left_alone(tiny_model_dir: Path) -> None:
    _, summed = _twins(tiny_model_dir)
    hooked = next(m for m in summed.modules() if hasattr(m, "lora_B"))
    hooked.forward = hooked.forward  # as accelerate's hooks bind one
    assert sum_lora_in_product(summed) == _lora_layers(summed) - 1
