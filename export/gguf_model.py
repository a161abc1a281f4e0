"""The model side of a GGUF file: architecture, hyperparameters and tensor layout.

Covers the Llama family that llama.cpp runs as its `llama` and `qwen2` architectures. The
reference for every key and transform is llama.cpp's own convert_hf_to_gguf.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ExportError
from export.json_files import read_folder_json


@dataclass(frozen=True)
class Architecture:
    hf_name: str
    gguf_name: str
    # llama.cpp's `llama` applies RoPE to interleaved pairs where HF rotates halves, so the rows
    # of the Q and K projections are reordered; `qwen2` uses the HF (NeoX) layout as it is.
    permute_qk: bool


_ARCHITECTURES = (
    Architecture("LlamaForCausalLM", "llama", permute_qk=True),  # Llama 1-3, SmolLM, SmolLM2
    Architecture("MistralForCausalLM", "llama", permute_qk=True),
    Architecture("Qwen2ForCausalLM", "qwen2", permute_qk=False),
)
ROPE_TYPES = ("default", "linear", "llama3")


def supported_architectures() -> tuple[str, ...]:
    return tuple(arch.hf_name for arch in _ARCHITECTURES)


def read_config(folder: Path) -> dict[str, Any]:
    return read_folder_json(folder, "config.json", missing="it is not a Hugging Face model folder",
                            hint="export the merged model folder (it holds config.json)")


def architecture(config: dict[str, Any], folder: Path) -> Architecture:
    names = config.get("architectures") or []
    for arch in _ARCHITECTURES:
        if arch.hf_name in names:
            return arch
    raise ExportError(
        f"GGUF export does not support the architecture {', '.join(names) or '(none given)'}",
        where=str(Path(folder) / "config.json"),
        hint=f"supported: {', '.join(supported_architectures())}",
    )


def load_hf_config(folder: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"transformers cannot read config.json: {exc}", where=str(folder)) from None


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def rope_parameters(config) -> dict[str, Any]:
    rope = dict(getattr(config, "rope_parameters", None) or {})
    kind = rope.get("rope_type", "default")
    if kind not in ROPE_TYPES:
        raise ExportError(f"RoPE scaling {kind!r} is not supported for GGUF export",
                          where="config.json rope_parameters", hint=f"supported: {', '.join(ROPE_TYPES)}")
    return rope


def add_hyperparameters(writer, config) -> None:
    import gguf

    rope = rope_parameters(config)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_key_length(head_dim(config))
    writer.add_value_length(head_dim(config))
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    if rope.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def llama3_rope_factors(config) -> Any | None:
    """Llama 3.1+ scales RoPE per frequency; llama.cpp reads the factors from a `rope_freqs` tensor."""
    import numpy as np

    rope = rope_parameters(config)
    if rope.get("rope_type") != "llama3":
        return None
    dim = head_dim(config)
    freqs = 1.0 / (float(rope.get("rope_theta", 10000.0)) ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    factor = float(rope["factor"])
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_context = float(rope.get("original_max_position_embeddings", 8192))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


class TensorNamer:
    """HF tensor or module names -> GGUF tensor names, and the row order llama.cpp expects."""

    def __init__(self, arch: Architecture, config) -> None:
        import gguf

        self.arch = arch
        self.n_head = config.num_attention_heads
        self.n_head_kv = config.num_key_value_heads or config.num_attention_heads
        model_arch = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == arch.gguf_name)
        self._map = gguf.get_tensor_name_map(model_arch, config.num_hidden_layers)

    def gguf_name(self, hf_name: str) -> str | None:
        """`model.layers.0.self_attn.q_proj.weight` -> `blk.0.attn_q.weight` (None if unknown)."""
        return self._map.get_name(hf_name, try_suffixes=(".weight", ".bias"))

    def to_gguf_rows(self, hf_name: str, rows):
        """Reorder the output rows of a Q or K projection (weight, bias or LoRA B) for llama.cpp."""
        if not self.arch.permute_qk:
            return rows
        if ".q_proj" in hf_name:
            return _permute_rows(rows, self.n_head)
        if ".k_proj" in hf_name:
            return _permute_rows(rows, self.n_head_kv)
        return rows


def _permute_rows(rows, n_head: int):
    shape = rows.shape
    return rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
