"""llama.cpp's own converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py), as installed.

The set-up copies them, with the `conversion/` package and the `gguf-py` they were written
with, from the source distribution of the installed llama-cpp-python
(export.install_converters), so a converted file is exactly what that runtime reads. Nothing
is downloaded here: a missing or mismatched copy is one clear error naming the set-up command.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from engine.errors import ExportError
from engine.phrases import phrase

SETUP_COMMAND = "make setup"  # runs scripts/setup.sh, which calls `python -m export.install_converters`
FOLDER_ENV = "TANREN_LLAMA_CPP_CONVERTERS"  # a folder laid out as install_converters leaves it
HF_SCRIPT = "convert_hf_to_gguf.py"
LORA_SCRIPT = "convert_lora_to_gguf.py"
VERSION_FILE = "llama-cpp-python.version"
ARCHITECTURES_FILE = "architectures.json"  # every architecture the converter registers, written at install
# Test material llama.cpp keeps beside its converters: real models' chat templates, and Qwen2's
# real vocabulary (transformers 5 gives a qwen2 model Qwen2's tokenizer class, whatever it was saved with)
TEMPLATES = "models/templates"
QWEN2_VOCAB = "models/ggml-vocab-qwen2.gguf"
# Architectures that are causal LMs whatever transformers knows of them (remote-code models)
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_SET_UP_AGAIN = phrase("run the set-up once more: {command}", command=SETUP_COMMAND)


@dataclass(frozen=True)
class Converters:
    folder: Path
    version: str  # the llama-cpp-python release they came from

    @property
    def hf_script(self) -> Path:
        return self.folder / HF_SCRIPT

    @property
    def lora_script(self) -> Path:
        return self.folder / LORA_SCRIPT

    def architectures(self) -> tuple[str, ...]:
        """Every HF architecture name the converter accepts (text models of all kinds)."""
        path = self.folder / ARCHITECTURES_FILE
        try:
            return tuple(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ExportError(phrase("the converter's architecture list cannot be read: {error}", error=exc),
                              where=str(path),
                              hint=phrase("install the converters again: {command}", command=SETUP_COMMAND)) from None


def llama_cpp_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        raise ExportError(phrase("llama-cpp-python is not installed"),
                          hint=phrase("run the set-up: {command}", command=SETUP_COMMAND)) from None


def default_folder(version: str) -> Path:
    """Inside the environment tanren runs in, so each virtual environment has its own copy."""
    return Path(sys.prefix) / "share" / "tanren" / f"llama.cpp-converters-{version}"


def installed_converters() -> Converters:
    """The converters that match the installed llama-cpp-python, or an ExportError saying what to run."""
    version = llama_cpp_version()
    folder = Path(os.environ.get(FOLDER_ENV) or default_folder(version))
    missing = [name for name in (HF_SCRIPT, LORA_SCRIPT, "conversion", "gguf-py", VERSION_FILE)
               if not (folder / name).exists()]
    if missing:
        raise ExportError(phrase("llama.cpp's converters for llama-cpp-python {version} are not installed "
                                 "({missing} missing)", version=version, missing=", ".join(missing)),
                          where=str(folder), hint=_SET_UP_AGAIN)
    found = (folder / VERSION_FILE).read_text(encoding="utf-8").strip()
    if found != version:
        raise ExportError(phrase("the converters in {folder} come from llama-cpp-python {found}, but {version} is "
                                 "installed: files they write may not load", folder=folder, found=found, version=version),
                          where=str(folder), hint=_SET_UP_AGAIN)
    return Converters(folder, version)


def causal_lm_architectures(names: tuple[str, ...]) -> tuple[str, ...]:
    """The causal language models among the converter's architectures: no embedding, encoder,
    vision or audio classes. transformers' own causal-LM list admits names such as
    Gemma3ForConditionalGeneration, whose text model AutoModelForCausalLM loads and trains."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = {name for value in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
              for name in ((value,) if isinstance(value, str) else value)}
    return tuple(sorted(n for n in names if n.endswith(_CAUSAL_SUFFIXES) or n in causal))
