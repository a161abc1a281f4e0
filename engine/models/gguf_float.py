"""A float (F16) GGUF copy of a built-in model's shipped quantized GGUF, made once.

llama.cpp multiplies quantized weights with activations rounded to 8 bits, which moves the
logits of the shipped Q4_1 file by up to about 2 against float arithmetic on the very same
weights; the default model's answers hinge on margins smaller than that (see README, Chat).
Dequantizing the weights once into F16 keeps them as shipped (within F16 rounding) and lets
llama.cpp compute in float, so it answers like transformers on the materialized folder.
"""

from __future__ import annotations

from pathlib import Path

from engine.atomic import atomic_file
from engine.errors import TanrenError
from engine.locking import file_lock
from engine.models.llama_quantize import QuantizeFailed, run_llama_quantize
from engine.paths import Home
from engine.phrases import phrase


def float_gguf(shipped: Path, name: str, home: Home) -> Path:
    out = home.models / "gguf" / f"{name}.F16.gguf"
    if out.is_file():
        return out
    with file_lock(out.with_name(f".{out.name}.lock")):
        if not out.is_file():
            with atomic_file(out) as tmp:
                try:
                    run_llama_quantize(shipped, tmp, "LLAMA_FTYPE_MOSTLY_F16", allow_requantize=True)
                except QuantizeFailed as exc:
                    raise TanrenError(phrase("llama.cpp could not make an F16 copy of {file}: {why}",
                                             file=shipped.name, why=str(exc)), where=str(shipped)) from None
    return out
