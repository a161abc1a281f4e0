"""Write a PEFT LoRA adapter alone as a GGUF LoRA for llama.cpp (`--lora`, Ollama `ADAPTER`), with
llama.cpp's own convert_lora_to_gguf.py.

llama.cpp applies each pair as W + alpha / rank * B @ A to the base GGUF's tensor of the same
name. Adapters it cannot express that way (DoRA, fully trained extra modules, per-module ranks
or alphas, LoRA biases) are refused before the converter runs; export them merged. An rsLoRA
adapter (scale alpha / sqrt(rank)) is converted with its alpha rescaled to keep its scale.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from engine.errors import ExportError
from engine.phrases import phrase
from export.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterInput, check_adapters_fit, read_adapter_config
from export.converter_process import OnLog, run_converter
from export.converters import installed_converters
from export.gguf import check_architecture, check_dtype
from export.output import artifact_file
from export.safetensors_files import model_safetensors_files, safetensors_index

__all__ = ["write_lora_gguf"]

_MERGE_HINT = phrase("export the merged model instead (`tanren export`, which merges the adapter into the base)")


def write_lora_gguf(adapter_folder: Path, base_folder: Path, out: Path, *, dtype: str = "f16",
                    on_log: OnLog | None = None) -> Path:
    """Convert the PEFT adapter in `adapter_folder`, trained on the HF model `base_folder`, to `out`."""
    check_dtype(dtype)
    adapter_folder, base_folder = Path(adapter_folder), Path(base_folder)
    converters = installed_converters()
    check_architecture(base_folder, converters.architectures())
    settings = _adapter_settings(adapter_folder)
    base_index = safetensors_index(model_safetensors_files(base_folder))
    check_adapters_fit([AdapterInput(adapter_folder.name, adapter_folder)],
                       {name: shape for name, (_path, shape, _dtype) in base_index.items()})
    with tempfile.TemporaryDirectory(prefix="tanren-lora-") as scratch:
        source = _as_llama_cpp_reads_it(adapter_folder, settings, Path(scratch))
        weights = (adapter_folder / ADAPTER_WEIGHTS).stat().st_size
        with artifact_file(Path(out), expected_bytes=weights + (1 << 20)) as tmp:
            run_converter(converters.lora_script, ["--base", str(base_folder.resolve()), "--outfile", str(tmp),
                                                   "--outtype", dtype, str(source.resolve())], on_log=on_log)
    return Path(out)


def _adapter_settings(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_CONFIG
    settings = read_adapter_config(folder)
    if not isinstance(settings, dict) or not isinstance(settings.get("r"), int) \
            or not isinstance(settings.get("lora_alpha"), (int, float)):
        raise ExportError(phrase("{file} lacks the LoRA rank r or lora_alpha", file=ADAPTER_CONFIG), where=str(path))
    refusals = {
        "peft_type": (settings.get("peft_type") != "LORA", phrase("only LoRA adapters can be written as GGUF LoRA")),
        "use_dora": (settings.get("use_dora"), phrase("llama.cpp cannot apply DoRA adapters")),
        "modules_to_save": (settings.get("modules_to_save"), phrase("fully trained extra modules are not LoRA pairs")),
        "bias": (settings.get("bias", "none") != "none" or settings.get("lora_bias"),
                 phrase("LoRA biases are not supported")),
        "rank_pattern": (settings.get("rank_pattern") or settings.get("alpha_pattern"),
                         phrase("llama.cpp uses one alpha for all layers")),
        "trainable_token_indices": (settings.get("trainable_token_indices"),
                                    phrase("trained token rows are not LoRA pairs")),
        "layer_replication": (settings.get("layer_replication"), phrase("llama.cpp cannot replicate layers")),
    }
    for field, (refused, reason) in refusals.items():
        if refused:
            raise ExportError(phrase("this adapter cannot be written as a GGUF LoRA: {reason}", reason=reason),
                              where=f"{path} ({field})", hint=_MERGE_HINT)
    return settings


def _as_llama_cpp_reads_it(folder: Path, settings: dict[str, Any], scratch: Path) -> Path:
    """The adapter folder itself, or for rsLoRA a copy of its config whose alpha gives llama.cpp's
    alpha / rank the same scale as alpha / sqrt(rank), beside a link to the weights."""
    if not settings.get("use_rslora"):
        return folder
    alpha, rank = float(settings["lora_alpha"]), int(settings["r"])
    (scratch / ADAPTER_CONFIG).write_text(json.dumps({**settings, "lora_alpha": alpha * math.sqrt(rank),
                                                      "use_rslora": False}), encoding="utf-8")
    (scratch / ADAPTER_WEIGHTS).symlink_to((folder / ADAPTER_WEIGHTS).resolve())
    return scratch
