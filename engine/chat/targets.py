"""Open what the user names - a base model, a GGUF file, adapters from runs - as chat backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.chat.backend import DEFAULT_MAX_CONTEXT, ChatBackend
from engine.config import ModelConfig
from engine.errors import TanrenError
from engine.events import Said
from engine.models.resolve import resolve_model
from engine.paths import Home
from engine.phrases import phrase

BACKENDS = ("auto", "transformers", "llama.cpp")


@dataclass(frozen=True)
class AdapterRef:
    name: str  # the run name, or the adapter folder's name
    folder: Path


def resolve_adapter(spec: str, home: Home) -> AdapterRef:
    """A run name (its `adapter/` folder) or a path to a PEFT adapter folder."""
    path = Path(spec).expanduser()
    if path.is_dir() or "/" in spec or spec.startswith("."):
        folder = path
        name = folder.resolve().parent.name if folder.name == "adapter" else folder.resolve().name
    else:
        folder, name = home.run_dir(spec) / "adapter", spec
    if not (folder / "adapter_config.json").is_file():
        raise TanrenError(
            phrase("no adapter for {spec!r}: {folder} holds no adapter_config.json", spec=spec, folder=folder),
            where=str(folder),
            hint=phrase("give a run name from $TANREN_HOME/runs whose training has finished, or a PEFT adapter folder"),
        )
    return AdapterRef(name, folder)


def is_adapter(spec: str, home: Home) -> bool:
    try:
        resolve_adapter(spec, home)
    except TanrenError:
        return False
    return True


def open_backend(config: ModelConfig, home: Home, *, backend: str = "auto", adapters: Sequence[AdapterRef] = (),
                 max_context: int = DEFAULT_MAX_CONTEXT,
                 on_status: Callable[[Said], None] = lambda _m: None) -> ChatBackend:
    """Load `config.base` for chat: a .gguf goes to llama.cpp as it is, anything else to transformers;
    `on_status` hears what is loaded as phrases, which logs keep and screens translate.

    `backend="llama.cpp"` on a built-in model uses the GGUF file it ships as; on an HF folder it
    is refused (tanren does not quietly convert a model to chat with it).
    """
    if backend not in BACKENDS:
        raise TanrenError(phrase("unknown backend {backend!r}; expected one of: {choices}",
                                 backend=backend, choices=", ".join(BACKENDS)))
    spec = config.base
    resolved = resolve_model(spec, home)
    if backend == "llama.cpp" or (backend == "auto" and resolved.kind == "gguf"):
        if resolved.gguf_source is None:
            raise TanrenError(
                phrase("{spec} is not a GGUF file, and llama.cpp runs only GGUF files", spec=spec), where=spec,
                hint=phrase("export it to GGUF and chat with the .gguf file, or use --backend transformers"),
            )
        if adapters:
            raise TanrenError(phrase("adapters run on the transformers backend, not on a GGUF file"),
                              hint=phrase("merge the adapter and export it to GGUF, then chat with that file"))
        from engine.chat.llama_cpp_backend import LlamaCppBackend

        gguf = resolved.gguf_source
        if resolved.kind == "builtin":
            from engine.models.gguf_float import float_gguf

            gguf = float_gguf(gguf, spec, home)
        on_status(phrase("loading {model} with llama.cpp", model=gguf.name))
        return LlamaCppBackend.load(gguf, max_context=max_context)

    from engine.chat.transformers_backend import TransformersBackend
    from engine.models.loading import model_folder

    folder = model_folder(config, home, on_status=on_status)
    on_status(phrase("loading {model} with transformers", model=folder))
    return TransformersBackend.load(folder, config, adapters={a.name: a.folder for a in adapters},
                                    max_context=max_context)
