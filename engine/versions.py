"""The versions of the libraries tanren's results depend on, as one list for `tanren version`, run
records and export manifests: a result is reproducible only with the versions that made it."""

from __future__ import annotations

import platform
from importlib import metadata

from engine.i18n import N_

# Distribution names, in the order `tanren version` prints them
LIBRARIES = ("tanren", "torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "safetensors",
             "llama-cpp-python", "gguf", "huggingface-hub", "textual")
# The version of a library that is missing: English in records, translated where `tanren version` shows it
NOT_INSTALLED = N_("not installed")


def library_versions() -> dict[str, str]:
    """Python and each library's installed version ("not installed" where missing); torch with its CUDA."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED
    if versions["torch"] != NOT_INSTALLED:
        versions["torch"] += _cuda()
    return versions


def _cuda() -> str:
    import torch

    return f" (CUDA {torch.version.cuda})" if torch.version.cuda else " (CPU build)"
