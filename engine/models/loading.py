"""Load tokenizers and models from resolved local folders, safely and without the network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config.schema import ModelConfig
from engine.errors import UnsafeModelError
from engine.events import Said
from engine.imports import transformers_loading
from engine.models.materialize import materialize
from engine.models.resolve import resolve_model
from engine.paths import Home
from engine.phrases import phrase

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_weights_safe(folder: Path, *, allow_pickle: bool) -> None:
    if any(folder.glob("*.safetensors")) or allow_pickle:
        return
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise UnsafeModelError(
            phrase("{folder} has only pickle-based weights ({files}); loading them can run code",
                   folder=folder, files=", ".join(pickled[:3])),
            where=str(folder),
            hint=phrase("convert them to safetensors, or pass --allow-pickle (model.allow_pickle: true) if you "
                        "trust the files"),
        )
    raise UnsafeModelError(phrase("{folder} holds no weights (*.safetensors)", folder=folder), where=str(folder))


def model_folder(config: ModelConfig, home: Home, *, on_status: Callable[[Said], None] = lambda _m: None) -> Path:
    """Resolve `config.base`, materialize it if it is a GGUF, and check its weights are safe.

    `on_status` hears what happens as phrases: events keep them, screens show them translated."""
    folder = materialize(resolve_model(config.base, home), on_status=on_status)
    check_weights_safe(folder, allow_pickle=config.allow_pickle)
    return folder


def _dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def load_tokenizer(folder: Path, config: ModelConfig):
    with transformers_loading("AutoTokenizer") as (AutoTokenizer,):
        return AutoTokenizer.from_pretrained(
            folder, trust_remote_code=config.trust_remote_code, local_files_only=True
        )


def load_model(folder: Path, config: ModelConfig, **kwargs: Any):
    with transformers_loading("AutoModelForCausalLM") as (AutoModelForCausalLM,):
        return AutoModelForCausalLM.from_pretrained(
            folder,
            dtype=kwargs.pop("dtype", _dtype(config.dtype)),
            trust_remote_code=config.trust_remote_code,
            use_safetensors=not config.allow_pickle,
            local_files_only=True,
            **kwargs,
        )
