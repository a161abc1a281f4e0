"""A LoRA adapter written alone as GGUF changes llama.cpp's logits exactly as PEFT changes HF's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import ExportError
from export.gguf import write_gguf
from export.lora_gguf import write_lora_gguf
from tests.llama_cpp_runner import llama_logits
from tests.tiny_model import build_tiny_model

IDS = [1, 75, 76, 40, 200, 31, 7, 300, 41, 2, 1, 99, 120, 5, 64, 250, 33, 17]


def _trained_adapter(base: Path, out: Path, **lora) -> tuple[Path, np.ndarray]:
    """A PEFT adapter with random (as if trained) B matrices, and the logits it gives in HF."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(**{"r": 8, "lora_alpha": 16, "target_modules": "all-linear", **lora}))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # B starts at zero; a trained adapter's is not
                parameter.normal_(0, 0.2)
        logits = model(torch.tensor([IDS])).logits[0].numpy()
    model.save_pretrained(out)
    return out, logits


@pytest.fixture(scope="module")
def base_f32(gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(gguf_model_dir, tmp_path_factory.mktemp("base") / "base-f32.gguf", dtype="f32")


@pytest.mark.parametrize("lora", [{}, {"use_rslora": True}, {"target_modules": ["q_proj", "k_proj"], "r": 4}],
                         ids=["all-linear", "rslora", "q-k-only"])
def test_adapter_gguf_on_the_base_gguf_matches_peft(lora: dict, base_f32: Path, gguf_model_dir: Path,
                                                    tmp_path: Path) -> None:
    adapter, expected = _trained_adapter(gguf_model_dir, tmp_path / "adapter", **lora)
    lora_gguf = write_lora_gguf(adapter, gguf_model_dir, tmp_path / "adapter.gguf", dtype="f32")
    got = llama_logits(base_f32, IDS, lora_path=str(lora_gguf))
    without = llama_logits(base_f32, IDS)
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 3e-3 * scale
    assert np.abs(without - expected).max() > 0.1 * scale  # the adapter really changes the model


def test_adapter_metadata(base_f32: Path, gguf_model_dir: Path, tmp_path: Path) -> None:
    from gguf import GGUFReader

    adapter, _ = _trained_adapter(gguf_model_dir, tmp_path / "adapter", use_rslora=True)
    reader = GGUFReader(write_lora_gguf(adapter, gguf_model_dir, tmp_path / "adapter.gguf"))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama"
    assert fields["adapter.lora.alpha"] == pytest.approx(16 * 8 ** 0.5)  # alpha/sqrt(r) as llama.cpp's alpha/r
    names = {tensor.name for tensor in reader.tensors}
    assert {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b", "blk.1.ffn_down.weight.lora_b"} <= names


@pytest.mark.parametrize("lora", [{"use_dora": True}, {"modules_to_save": ["lm_head"]}, {"bias": "lora_only"},
                                  {"rank_pattern": {"q_proj": 4}}], ids=["dora", "modules-to-save", "bias", "ranks"])
def test_adapters_llama_cpp_cannot_apply_are_refused(lora: dict, gguf_model_dir: Path, tmp_path: Path) -> None:
    adapter, _ = _trained_adapter(gguf_model_dir, tmp_path / "adapter", **lora)
    with pytest.raises(ExportError) as caught:
        write_lora_gguf(adapter, gguf_model_dir, tmp_path / "adapter.gguf")
    assert "merged" in caught.value.hint
    assert not (tmp_path / "adapter.gguf").exists()


def test_adapter_for_another_base_is_refused(gguf_model_dir: Path, tmp_path: Path) -> None:
    other = build_tiny_model(tmp_path / "wide", hidden_size=128, intermediate_size=256)
    adapter, _ = _trained_adapter(other, tmp_path / "adapter")
    with pytest.raises(ExportError, match="does not fit the base"):
        write_lora_gguf(adapter, gguf_model_dir, tmp_path / "adapter.gguf")


def test_folder_without_adapter_config_is_refused(gguf_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="adapter_config.json"):
        write_lora_gguf(gguf_model_dir, gguf_model_dir, tmp_path / "adapter.gguf")


def test_adapter_without_weights_is_refused(gguf_model_dir: Path, tmp_path: Path) -> None:
    adapter, _ = _trained_adapter(gguf_model_dir, tmp_path / "adapter")
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ExportError, match="adapter_model.safetensors"):
        write_lora_gguf(adapter, gguf_model_dir, tmp_path / "adapter.gguf")
