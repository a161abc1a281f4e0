"""Quantize an F32/F16/BF16 GGUF with llama.cpp's own quantizer (through llama-cpp-python).

The quantizer runs in a child process (engine.models.llama_quantize), so its terminal output
and any native fault stay contained.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ExportError
from engine.models.llama_quantize import QuantizeFailed, run_llama_quantize
from engine.phrases import phrase
from export.output import artifact_file

__all__ = ["QUANT_TYPES", "default_quants", "normalize_quant", "quantize_gguf"]

# name -> llama.cpp's LLAMA_FTYPE_MOSTLY_* constant, and roughly how many bits each weight keeps
QUANT_TYPES = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")
_FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
           "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
           "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}
_BITS_PER_WEIGHT = {"q8_0": 8.5, "q6_k": 6.6, "q5_k_m": 5.7, "q4_k_m": 4.9, "q4_0": 4.5}
# Below this size 4-bit weights cost more perplexity than verification allows Q4_K_M (5 %):
# +8-10 % on the 135M default model, every run; small models have few weights to spread error over.
SMALL_MODEL_PARAMETERS = 2_000_000_000


def default_quants(parameters: int) -> tuple[str, ...]:
    """The GGUF types an export writes unless told otherwise (the first is what the Modelfile runs)."""
    return ("q8_0",) if parameters < SMALL_MODEL_PARAMETERS else ("q4_k_m", "q8_0")


def quantize_gguf(src: Path, out: Path, quant: str, *, threads: int | None = None) -> Path:
    """Write `out`, the `quant` version of the unquantized GGUF `src`; `out` only ever appears complete."""
    quant = normalize_quant(quant)
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise ExportError(phrase("the GGUF file to quantize does not exist: {path}", path=src), where=str(src),
                          hint=phrase("write the F16 GGUF first (write_gguf)"))
    if src.resolve() == out.resolve():
        raise ExportError(phrase("the quantized file would overwrite its source"), where=str(out),
                          hint=phrase("choose another output name"))
    # a quantized file is at most the source scaled by bits per weight (1-D tensors stay F32)
    expected = int(src.stat().st_size * _BITS_PER_WEIGHT[quant] / 16) + (1 << 20)
    with artifact_file(out, expected_bytes=expected) as tmp:
        _run_quantizer(src, tmp, quant, threads)
    return out


def normalize_quant(quant: str) -> str:
    name = quant.strip().lower().replace("-", "_")
    if name not in QUANT_TYPES:
        raise ExportError(phrase("unknown quantization type {quant!r}", quant=quant), where="quant",
                          hint=phrase("choose from {choices}", choices=", ".join(QUANT_TYPES)))
    return name


def _run_quantizer(src: Path, out: Path, quant: str, threads: int | None) -> None:
    try:
        run_llama_quantize(src, out, _FTYPES[quant], threads=threads)
    except QuantizeFailed as exc:
        raise ExportError(phrase("llama.cpp could not quantize {file} to {type}: {error}", file=src.name,
                                 type=quant.upper(), error=exc),
                          where=str(src), hint=phrase("check that the source is an unquantized GGUF (F32, F16 or BF16)")) from None
