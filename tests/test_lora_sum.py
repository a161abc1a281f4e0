"""LoRA's update summed inside B's product: peft's outputs and gradients, and peft's path wherever it is not plain."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine.train.lora_sum import sum_lora_in_product
from tests.spies import record_calls

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _twins(tiny_model_dir: Path, dtype=torch.float32, **lora):
    """Two identical peft models with non-zero B; the second adds its updates inside the product."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": "all-linear", **lora}
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype), LoraConfig(**config))
        for name, param in model.named_parameters():
            if "lora_B" in name:
                nn.init.normal_(param, std=0.1)
        models.append(model)
    return models


def _loss_and_grads(model, ids, **kwargs):
    torch.manual_seed(3)  # the same dropout masks for both twins
    model.zero_grad()
    loss = model(input_ids=ids, labels=ids, **kwargs).loss
    loss.backward()
    return [loss.detach()] + [p.grad.clone() for p in model.parameters() if p.requires_grad]


def _close(a, b, **tolerance) -> bool:
    return all(torch.allclose(x.float(), y.float(), **tolerance) for x, y in zip(a, b, strict=True))


def _ids(model):
    return torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))


def test_summed_layers_give_peft_loss_and_gradients(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    peft_model, summed = _twins(tiny_model_dir)
    from peft.tuners.lora import LoraLayer

    layers = sum(isinstance(m, LoraLayer) for m in summed.modules())
    assert sum_lora_in_product(summed) == layers > 0
    products = record_calls(monkeypatch, torch, "addmm", lambda *args: args[0].shape)
    ids = _ids(summed)
    assert _close(_loss_and_grads(summed, ids), _loss_and_grads(peft_model, ids), atol=1e-5)
    assert len(products) == layers  # every adapted layer took the summed path, forward


def test_bf16_autocast_stays_close_to_peft(tiny_model_dir: Path) -> None:
    peft_model, summed = _twins(tiny_model_dir)
    sum_lora_in_product(summed)
    ids = _ids(summed)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = _loss_and_grads(summed, ids), _loss_and_grads(peft_model, ids)
    assert ours[0].dtype == theirs[0].dtype == torch.float32
    assert _close(ours, theirs, rtol=0.05, atol=2e-3)


@pytest.mark.parametrize("case", ["disabled", "merged", "two adapters", "per-example adapters", "mixed dtypes", "dora"])
def test_every_other_case_keeps_peft_forward(case: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import LoraConfig

    dtype = torch.bfloat16 if case == "mixed dtypes" else torch.float32  # a bf16 base, adapters kept in fp32
    models = _twins(tiny_model_dir, dtype=dtype, **({"use_dora": True} if case == "dora" else {}))
    for model in models:
        model.eval()
        if case == "two adapters":
            torch.manual_seed(5)
            model.add_adapter("second", LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False))
            model.base_model.set_adapter(["default", "second"])
        if case == "merged":
            model.merge_adapter()
    peft_model, summed = models
    sum_lora_in_product(summed)
    products = record_calls(monkeypatch, torch, "addmm", lambda *args: args[0].shape)
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
