"""Write a PEFT LoRA adapter alone as a GGUF LoRA for llama.cpp (`--lora`, Ollama `ADAPTER`).

llama.cpp applies each pair as W + scale * B @ A with scale = alpha / rank, to the base GGUF's
tensor of the same name, so the pairs are named after the base tensors and B's rows follow the
base's Q/K row order. Adapters that llama.cpp cannot express this way (DoRA, fully trained
extra modules, per-module ranks or alphas, LoRA biases) are refused; export them merged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.errors import ExportError
from export.gguf_model import TensorNamer, architecture, load_hf_config, read_config
from export.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, read_adapter_config
from export.lora_keys import LORA_KEY, check_fits
from export.gguf_tensors import (
    PlannedTensor,
    check_dtype,
    model_safetensors_files,
    safetensors_index,
    safetensors_loader,
    write_gguf_file,
)

__all__ = ["write_lora_gguf"]

_MERGE_HINT = "export the merged model instead (write_gguf on the merged folder)"


def write_lora_gguf(adapter_folder: Path, base_folder: Path, out: Path, *, dtype: str = "f16") -> Path:
    """Convert the PEFT adapter in `adapter_folder`, trained on the HF model `base_folder`, to `out`."""
    import gguf

    check_dtype(dtype)
    adapter_folder, base_folder = Path(adapter_folder), Path(base_folder)
    arch = architecture(read_config(base_folder), base_folder)
    config = load_hf_config(base_folder)
    settings = _adapter_settings(adapter_folder)
    namer = TensorNamer(arch, config)
    base_index = safetensors_index(model_safetensors_files(base_folder))
    base_shapes = {name: shape for name, (_path, shape, _dtype) in base_index.items()}
    plan = _plan_pairs(adapter_folder, namer, base_shapes, dtype)

    writer = gguf.GGUFWriter(path=None, arch=arch.gguf_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(adapter_folder.name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, _llama_cpp_alpha(settings))
    return write_gguf_file(writer, plan, Path(out))


def _adapter_settings(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_CONFIG
    settings = read_adapter_config(folder)
    if not isinstance(settings.get("r"), int) or not isinstance(settings.get("lora_alpha"), (int, float)):
        raise ExportError("adapter_config.json lacks the LoRA rank r or lora_alpha", where=str(path))
    refusals = {
        "peft_type": (settings.get("peft_type") != "LORA", "only LoRA adapters can be written as GGUF LoRA"),
        "use_dora": (settings.get("use_dora"), "llama.cpp cannot apply DoRA adapters"),
        "modules_to_save": (settings.get("modules_to_save"), "fully trained extra modules are not LoRA pairs"),
        "bias": (settings.get("bias", "none") != "none" or settings.get("lora_bias"), "LoRA biases are not supported"),
        "rank_pattern": (settings.get("rank_pattern") or settings.get("alpha_pattern"),
                         "llama.cpp uses one alpha for all layers"),
        "trainable_token_indices": (settings.get("trainable_token_indices"), "trained token rows are not LoRA pairs"),
        "layer_replication": (settings.get("layer_replication"), "llama.cpp cannot replicate layers"),
    }
    for field, (refused, reason) in refusals.items():
        if refused:
            raise ExportError(f"this adapter cannot be written as a GGUF LoRA: {reason}",
                              where=f"{path} ({field})", hint=_MERGE_HINT)
    return settings


def _llama_cpp_alpha(settings: dict[str, Any]) -> float:
    """llama.cpp scales by alpha / rank; rsLoRA scales by alpha / sqrt(rank), so alpha is rescaled."""
    alpha, rank = float(settings["lora_alpha"]), int(settings["r"])
    return alpha * math.sqrt(rank) if settings.get("use_rslora") else alpha


def _plan_pairs(folder: Path, namer: TensorNamer, base_shapes: dict[str, tuple[int, ...]],
                dtype: str) -> list[PlannedTensor]:
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ExportError(f"{folder} has no {ADAPTER_WEIGHTS}", where=str(folder),
                          hint="save the adapter with safe_serialization")
    plan: list[PlannedTensor] = []
    for key, (path, shape, _stored) in safetensors_index([weights]).items():
        match = LORA_KEY.match(key)
        if match is None:
            raise ExportError(f"the adapter holds {key}, which is not a LoRA A/B matrix", where=str(path),
                              hint=_MERGE_HINT)
        module, part = match["module"], match["part"]
        base_name = f"{module}.weight"
        gguf_name = namer.gguf_name(base_name)
        if gguf_name is None or base_name not in base_shapes:
            raise ExportError(f"the adapter targets {module}, which the base model has no GGUF tensor for",
                              where=str(path), hint="adapters on embeddings or the output head: " + _MERGE_HINT)
        check_fits(shape, part, base_shapes[base_name], module, path)
        # B carries the output rows, so it takes the base tensor's Q/K reordering; A is per input column
        transform = (lambda values, name=base_name: namer.to_gguf_rows(name, values)) if part == "B" else (lambda v: v)
        plan.append(PlannedTensor(f"{gguf_name}.lora_{part.lower()}", shape, dtype,
                                  safetensors_loader(path, key, transform)))
    pairs = {t.gguf_name.rsplit(".", 1)[0] for t in plan}
    if not plan or len(plan) != 2 * len(pairs):
        raise ExportError("the adapter's LoRA matrices do not come in A/B pairs", where=str(weights),
                          hint="the file may be damaged; save the adapter again")
    return plan

