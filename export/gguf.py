"""Write a Hugging Face model folder (merged, full precision) as one F16/BF16/F32 GGUF file.

The GGUF holds everything llama.cpp and Ollama need: weights, hyperparameters, tokenizer,
special tokens and the chat template. Tensors are converted and written one at a time from
the memory-mapped safetensors, so a 7B model needs no more RAM than its largest tensor.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ExportError
from export.gguf_model import (
    Architecture,
    TensorNamer,
    add_hyperparameters,
    architecture,
    llama3_rope_factors,
    load_hf_config,
    read_config,
    supported_architectures,
)
from export.gguf_tensors import (
    GGUF_DTYPES,
    PlannedTensor,
    check_dtype,
    model_safetensors_files,
    safetensors_index,
    safetensors_loader,
    write_gguf_file,
)
from export.gguf_vocab import add_tokenizer

__all__ = ["GGUF_DTYPES", "supported_architectures", "write_gguf"]

_FILE_TYPES = {"f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "f32": "ALL_F32"}
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # recomputed by llama.cpp; old checkpoints carry it
_BLOCK_TENSORS = ("attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                  "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")
_QKV_BIASES = ("attn_q.bias", "attn_k.bias", "attn_v.bias")


def write_gguf(hf_folder: Path, out: Path, *, dtype: str = "f16") -> Path:
    """Convert `hf_folder` (a Llama-family model with its tokenizer) into the GGUF file `out`.

    `dtype` (f16, bf16 or f32) applies to matrices; norms and biases stay f32 as in llama.cpp's
    own converter. Raises ExportError for unsupported or incomplete models and failed writes;
    `out` only ever appears complete.
    """
    check_dtype(dtype)
    folder = Path(hf_folder)
    arch = architecture(read_config(folder), folder)
    config = load_hf_config(folder)
    plan = _plan_tensors(folder, arch, config, dtype)
    writer = _metadata_writer(folder, arch, config, dtype)
    return write_gguf_file(writer, plan, Path(out), extra_bytes=(folder / "tokenizer.json").stat().st_size)


def _metadata_writer(folder: Path, arch: Architecture, config, dtype: str):
    import gguf

    writer = gguf.GGUFWriter(path=None, arch=arch.gguf_name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(folder.name)
    writer.add_file_type(gguf.LlamaFileType[_FILE_TYPES[dtype]])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_hyperparameters(writer, config)
    add_tokenizer(writer, folder, vocab_size=config.vocab_size)
    return writer


def _plan_tensors(folder: Path, arch: Architecture, config, dtype: str) -> list[PlannedTensor]:
    namer = TensorNamer(arch, config)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    plan: list[PlannedTensor] = []
    unknown: list[str] = []
    for hf_name, (path, shape, stored) in safetensors_index(model_safetensors_files(folder)).items():
        if hf_name.endswith(_IGNORED_SUFFIXES) or (tied and hf_name == "lm_head.weight"):
            continue  # a tied head is the embedding matrix; llama.cpp reuses token_embd for it
        gguf_name = namer.gguf_name(hf_name)
        if gguf_name is None:
            unknown.append(hf_name)
            continue
        if not stored.startswith(("F", "BF")):
            raise ExportError(f"{hf_name} is stored as {stored}, not as floating point", where=str(path),
                              hint="export a merged full-precision model, not a quantized one")
        transform = lambda values, name=hf_name: namer.to_gguf_rows(name, values)  # noqa: E731
        plan.append(PlannedTensor(gguf_name, shape, dtype if len(shape) > 1 else "f32",
                                  safetensors_loader(path, hf_name, transform)))
    if unknown:
        raise ExportError(f"{len(unknown)} weights have no GGUF equivalent, e.g. {', '.join(unknown[:3])}",
                          where=str(folder), hint="the folder holds something other than a plain causal LM")
    factors = llama3_rope_factors(config)
    if factors is not None:
        plan.append(PlannedTensor("rope_freqs.weight", factors.shape, "f32", lambda: factors))
    _check_complete({t.gguf_name for t in plan}, config, tied, arch, folder)
    return plan


def _check_complete(names: set[str], config, tied: bool, arch: Architecture, folder: Path) -> None:
    per_block = _BLOCK_TENSORS + (_QKV_BIASES if arch.gguf_name == "qwen2" else ())
    needed = {"token_embd.weight", "output_norm.weight"} | (set() if tied else {"output.weight"})
    needed |= {f"blk.{i}.{name}" for i in range(config.num_hidden_layers) for name in per_block}
    missing = sorted(needed - names)
    if missing:
        raise ExportError(f"the model weights are incomplete: {len(missing)} tensors are missing, "
                          f"e.g. {', '.join(missing[:3])}", where=str(folder),
                          hint="the safetensors files may be truncated or a shard may be missing; save the model again")
