"""llama.cpp's own quantizer (through llama-cpp-python), run in a child process.

llama.cpp writes its progress straight to the terminal, and a fault in native code would kill
the caller (the TUI) outright; in a child both are contained, and its last log lines become the
error message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.child import failure_summary


# Run by the child interpreter: argv = src, out, LLAMA_FTYPE_* name, threads (0 = all cores), requantize.
_WORKER = """
import sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, sys.argv[3])
params.nthread = int(sys.argv[4])
params.allow_requantize = sys.argv[5] == "1"
status = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params)
sys.exit(f"llama_model_quantize returned {status}" if status else 0)
"""


class QuantizeFailed(Exception):
    """llama.cpp refused or crashed; the message holds its last log lines."""


def run_llama_quantize(src: Path, out: Path, ftype: str, *, threads: int | None = None,
                       allow_requantize: bool = False) -> None:
    """Write `out` from `src` with llama.cpp's LLAMA_FTYPE_* `ftype` (the caller makes it atomic)."""
    command = [sys.executable, "-c", _WORKER, str(src), str(out), ftype, str(threads or 0),
               "1" if allow_requantize else "0"]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    if result.returncode != 0:
        raise QuantizeFailed(failure_summary(result))
