"""Merging LoRA adapters into the base: exact, weighted, full precision, refused when it cannot fit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.errors import ExportError, TanrenError
from export.adapters import AdapterInput, parse_adapter
from export.merge import merge_adapters
from tests.full_disk import EXPORT_ERROR_EXIT, run_on_a_full_disk
from tests.export_runs import save_lora
from tests.tiny_model import build_tiny_model

IDS = [[5, 17, 42, 99, 7, 300, 12], [1, 2, 3, 4, 250, 251]]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("adapters")
    return {
        "qv": save_lora(tiny_model_dir, folder / "qv", seed=1, rank=4, alpha=8, targets=("q_proj", "v_proj")),
        "mlp": save_lora(tiny_model_dir, folder / "mlp", seed=2, rank=8, alpha=32, targets=("o_proj", "gate_proj", "down_proj")),
        "rs": save_lora(tiny_model_dir, folder / "rs", seed=3, rank=2, alpha=4, targets=("k_proj", "up_proj"), use_rslora=True),
    }


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def test_merged_model_gives_the_logits_of_base_plus_adapter(tiny_model_dir, adapters, tmp_path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = merge_adapters(tiny_model_dir, [AdapterInput("qv", adapters["qv"])], tmp_path / "merged")
    assert result.max_logit_diff < 1e-4 and result.probe_tokens > 20 and result.dtype == "float32"

    merged = AutoModelForCausalLM.from_pretrained(result.folder, dtype=torch.float32)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapters["qv"]).eval()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    for ids in IDS:
        expected = _logits(reference, ids)
        assert torch.allclose(_logits(merged, ids), expected, atol=1e-4)
        assert not torch.allclose(_logits(plain, ids), expected, atol=1e-2)  # the adapter does change the model
    names = {p.name for p in result.folder.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "tanren_merge.json"} <= names
    assert not any(name.endswith(".bin") for name in names)
    assert json.loads((result.folder / "tanren_merge.json").read_text())["adapters"][0]["name"] == "qv"


def test_several_weighted_adapters_add_up_exactly(tiny_model_dir, adapters, tmp_path) -> None:
    """W' = W + sum(weight * scale * B @ A), checked against the tensors in the files themselves."""
    import torch
    from safetensors.torch import load_file

    chosen = [AdapterInput("qv", adapters["qv"], 1.0), AdapterInput("mlp", adapters["mlp"], 0.5),
              AdapterInput("rs", adapters["rs"], -0.25)]
    result = merge_adapters(tiny_model_dir, chosen, tmp_path / "merged")
    assert result.max_logit_diff < 1e-4

    expected = load_file(tiny_model_dir / "model.safetensors")
    for adapter in chosen:
        settings = json.loads((adapter.folder / "adapter_config.json").read_text())
        rank = settings["r"]
        scale = settings["lora_alpha"] / (rank ** 0.5 if settings.get("use_rslora") else rank)
        tensors = load_file(adapter.folder / "adapter_model.safetensors")
        for key, a in tensors.items():
            if ".lora_A." not in key:
                continue
            module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            b = tensors[key.replace("lora_A", "lora_B")]
            expected[f"{module}.weight"] = expected[f"{module}.weight"] + adapter.weight * scale * (b @ a)
    merged = load_file(result.folder / "model.safetensors")
    changed = 0
    for name, tensor in expected.items():
        assert merged[name].dtype == torch.float32
        assert torch.allclose(merged[name], tensor, atol=1e-5), name
        changed += not torch.equal(tensor, load_file(tiny_model_dir / "model.safetensors")[name])
    assert changed == 2 * 2 + 3 * 2 + 2 * 2  # every adapted matrix of both layers, and nothing else


def test_an_adapter_for_another_base_is_refused_before_loading(tiny_model_dir, tmp_path) -> None:
    other = build_tiny_model(tmp_path / "wider", hidden_size=96, intermediate_size=160)
    adapter = save_lora(other, tmp_path / "for-wider")
    with pytest.raises(ExportError, match="does not fit the base weight") as error:
        merge_adapters(tiny_model_dir, [AdapterInput("for-wider", adapter)], tmp_path / "merged")
    assert "different base model" in error.value.hint
    assert not (tmp_path / "merged").exists()


def test_an_adapter_on_modules_the_base_lacks_is_refused(tiny_model_dir, tmp_path) -> None:
    gpt2 = build_tiny_model(tmp_path / "gpt2", model_type="gpt2")
    adapter = save_lora(gpt2, tmp_path / "c-attn", targets=("c_attn",), fan_in_fan_out=True)
    with pytest.raises(ExportError, match="c_attn, which the base model does not have"):
        merge_adapters(tiny_model_dir, [AdapterInput("c-attn", adapter)], tmp_path / "merged")


def test_an_adapter_on_a_tied_output_head_is_refused(tiny_model_dir, tmp_path) -> None:
    """The tiny model ties lm_head to the embeddings: merging into one would change both."""
    adapter = save_lora(tiny_model_dir, tmp_path / "head", targets=("lm_head",))
    with pytest.raises(ExportError, match="shares with its input embeddings"):
        merge_adapters(tiny_model_dir, [AdapterInput("head", adapter)], tmp_path / "merged")


def test_missing_or_broken_adapter_files_are_clear_errors(tiny_model_dir, adapters, tmp_path, home) -> None:
    with pytest.raises(TanrenError, match="holds no adapter_config.json"):
        parse_adapter(str(tmp_path / "nowhere"), home)
    broken = tmp_path / "no-weights"
    broken.mkdir()
    (broken / "adapter_config.json").write_text((adapters["qv"] / "adapter_config.json").read_text())
    with pytest.raises(ExportError, match="has no adapter_model.safetensors"):
        merge_adapters(tiny_model_dir, [AdapterInput("no-weights", broken)], tmp_path / "merged")
    not_lora = tmp_path / "ia3"
    not_lora.mkdir()
    (not_lora / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    with pytest.raises(ExportError, match="IA3 adapter; only LoRA adapters are merged"):
        merge_adapters(tiny_model_dir, [AdapterInput("ia3", not_lora)], tmp_path / "merged")
    no_config = tmp_path / "weights-only"
    no_config.mkdir()
    shutil.copy(tiny_model_dir / "model.safetensors", no_config)
    with pytest.raises(ExportError, match="has no config.json, so it is not a Hugging Face model folder"):
        merge_adapters(no_config, [AdapterInput("qv", adapters["qv"])], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_adapter_specs_carry_weights(adapters, home) -> None:
    assert parse_adapter(f"{adapters['qv']}:0.5", home).weight == 0.5
    assert parse_adapter(str(adapters["qv"]), home).weight == 1.0
    with pytest.raises(ExportError, match="finite number other than 0"):
        parse_adapter(f"{adapters['qv']}:0", home)


def test_disk_filling_up_during_the_merge_leaves_no_folder(tiny_model_dir, adapters, tmp_path) -> None:
    """A file-size limit makes the kernel refuse writes past 64 KiB, as a full disk would."""
    out = tmp_path / "out"
    out.mkdir()
    result = run_on_a_full_disk(
        "from pathlib import Path\nfrom export.adapters import AdapterInput\nfrom export.merge import merge_adapters",
        f"merge_adapters({str(tiny_model_dir)!r}, [AdapterInput('qv', Path({str(adapters['qv'])!r}))], "
        f"{str(out / 'merged')!r})")
    assert result.returncode == EXPORT_ERROR_EXIT, result.stderr[-2000:]
    assert "disk filled up" in result.stdout
    assert list(out.iterdir()) == []
