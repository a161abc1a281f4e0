"""Quantize an F32/F16/BF16 GGUF with llama.cpp's own quantizer (through llama-cpp-python).

The quantizer runs in a child process: llama.cpp writes its progress straight to the terminal
and a fault in native code would kill the caller (the TUI) outright; in a child both are
contained, and its last log lines become the error message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.errors import ExportError
from export.output import artifact_file

__all__ = ["QUANT_TYPES", "normalize_quant", "quantize_gguf"]

# name -> llama.cpp's LLAMA_FTYPE_MOSTLY_* constant, and roughly how many bits each weight keeps
QUANT_TYPES = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")
_FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
           "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
           "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}
_BITS_PER_WEIGHT = {"q8_0": 8.5, "q6_k": 6.6, "q5_k_m": 5.7, "q4_k_m": 4.9, "q4_0": 4.5}
_LOG_LINES_IN_ERROR = 5


def quantize_gguf(src: Path, out: Path, quant: str, *, threads: int | None = None) -> Path:
    """Write `out`, the `quant` version of the unquantized GGUF `src`; `out` only ever appears complete."""
    quant = normalize_quant(quant)
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise ExportError(f"the GGUF file to quantize does not exist: {src}", where=str(src),
                          hint="write the F16 GGUF first (write_gguf)")
    if src.resolve() == out.resolve():
        raise ExportError("the quantized file would overwrite its source", where=str(out),
                          hint="choose another output name")
    # a quantized file is at most the source scaled by bits per weight (1-D tensors stay F32)
    expected = int(src.stat().st_size * _BITS_PER_WEIGHT[quant] / 16) + (1 << 20)
    with artifact_file(out, expected_bytes=expected) as tmp:
        _run_quantizer(src, tmp, quant, threads)
    return out


def normalize_quant(quant: str) -> str:
    name = quant.strip().lower().replace("-", "_")
    if name not in QUANT_TYPES:
        raise ExportError(f"unknown quantization type {quant!r}", where="quant",
                          hint=f"choose from {', '.join(QUANT_TYPES)}")
    return name


# Run by the child interpreter: argv = src, out, LLAMA_FTYPE_* name, threads (0 = all cores).
_WORKER = """
import sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, sys.argv[3])
params.nthread = int(sys.argv[4])
status = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params)
sys.exit(f"llama_model_quantize returned {status}" if status else 0)
"""


def _run_quantizer(src: Path, out: Path, quant: str, threads: int | None) -> None:
    command = [sys.executable, "-c", _WORKER, str(src), str(out), _FTYPES[quant], str(threads or 0)]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    if result.returncode != 0:
        log = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        reason = " / ".join(log[-_LOG_LINES_IN_ERROR:]) or f"exit status {result.returncode}"
        raise ExportError(f"llama.cpp could not quantize {src.name} to {quant.upper()}: {reason}",
                          where=str(src), hint="check that the source is an unquantized GGUF (F32, F16 or BF16)")
