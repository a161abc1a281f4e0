"""What there is to chat with, and the models loaded for it, shared between targets.

A target names a model (base, merged folder or GGUF file) and optionally an adapter. Targets
on the same model share one loaded backend: a base and its adapters load the weights once
and are switched per answer, so "base vs adapter" side by side costs one model in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.config import ModelConfig
from engine.errors import TanrenError
from engine.events import Said
from engine.models.catalog import list_models
from engine.models.registry import BUILTIN_MODELS
from engine.paths import Home
from engine.phrases import phrase
from engine.runs.rundir import RunDir, list_runs

if TYPE_CHECKING:  # the backends import numpy; the workbench lists targets long before it loads one
    from engine.chat.backend import ChatBackend, ChatTarget
    from engine.serve.client import ServerTarget

KINDS = ("base", "adapter", "merged", "gguf", "model", "server")  # model: a folder typed by hand


@dataclass(frozen=True)
class TargetSpec:
    kind: str  # one of KINDS, for the picker
    model: str  # what resolve_model takes: built-in name, HF folder, .gguf file, cached hub id
    adapter: str | None = None  # a run name or PEFT adapter folder
    backend: str = "auto"
    server: str | None = None  # a running `tanren serve` that serves `model` by that name

    @property
    def label(self) -> str:
        if self.server:
            return f"{self.model} @ {self.server}"
        name = Path(self.model).name if "/" in self.model else self.model
        if self.adapter:
            return f"{Path(self.adapter).name} on {name}"
        return f"{name} (llama.cpp)" if self.backend == "llama.cpp" else name


def spec_for(text: str) -> TargetSpec:
    """A target typed by hand: a .gguf file, a model folder (base or merged), or a base's name."""
    text = text.strip()
    if text.lower().endswith(".gguf"):
        return TargetSpec("gguf", text)
    return TargetSpec("model" if Path(text).expanduser().is_dir() else "base", text)


def chat_targets(home: Home) -> list[TargetSpec]:
    """Every target found locally: bases (and the GGUF files the built-ins ship as), the adapters
    and full fine-tunes of finished runs, and converted GGUF copies."""
    specs = []
    for entry in list_models(home):
        if entry.kind == "gguf":
            specs.append(TargetSpec("gguf", entry.name))  # a converted .gguf: chat with the file itself
            continue
        specs.append(TargetSpec("base", entry.name))
        if entry.name in BUILTIN_MODELS:
            specs.append(TargetSpec("gguf", entry.name, backend="llama.cpp"))
    specs += [spec for run in list_runs(home) if (spec := run_spec(run))]
    return specs + server_specs(home)


def server_specs(home: Home) -> list[TargetSpec]:
    """The models of every running server that takes requests without an API key (a key is
    never written down, so the workbench cannot know it)."""
    from engine.serve.jobs import list_servers

    return [TargetSpec("server", model, server=server.name)
            for server in list_servers(home) if server.status().state == "running"
            and (info := server.info()) is not None and not info.api_key for model in info.models]


def run_spec(run: RunDir) -> TargetSpec | None:
    """What a finished run is chatted as: its base with its adapter, or its fully tuned model."""
    if run.has_adapter:
        return TargetSpec("adapter", run.config().model.base, adapter=run.name)
    if run.has_model:
        return TargetSpec("merged", str(run.model))
    return None


class TargetPool:
    """Opens targets on first use and keeps their backends until closed. Not thread-safe:
    one thread (the workbench's chat worker) uses it at a time."""

    def __init__(self, home: Home, *, max_context: int | None = None,
                 on_status: Callable[[Said], None] = lambda _m: None, loading: ModelConfig | None = None):
        """`loading` says how models are loaded (dtype, remote code...); its `base` is replaced per target.
        `on_status` hears what is loaded as phrases, which logs keep and screens translate."""
        self.home, self.max_context, self.on_status = home, max_context, on_status
        self.loading = loading or ModelConfig()
        self._backends: dict[tuple[str, str], ChatBackend] = {}

    def open(self, spec: TargetSpec) -> ChatTarget | ServerTarget:
        from engine.chat.backend import ChatTarget
        from engine.chat.targets import resolve_adapter

        if spec.server:
            return self._server(spec)
        backend = self._backend(spec.model, spec.backend)
        adapter = None
        if spec.adapter:
            ref = resolve_adapter(spec.adapter, self.home)
            if ref.name not in backend.adapters:
                if not hasattr(backend, "add_adapter"):
                    raise TanrenError(phrase("{model} runs on llama.cpp, which takes no adapters here",
                                             model=backend.name),
                                      hint=phrase("pick the base model on transformers to use adapters"))
                self.on_status(phrase("loading adapter {name}", name=ref.name))
                backend.add_adapter(ref.name, ref.folder)
            adapter = ref.name
        return ChatTarget(spec.label, backend, adapter)

    def _server(self, spec: TargetSpec) -> ServerTarget:
        from engine.serve.client import ServerTarget
        from engine.serve.jobs import open_server

        info = open_server(spec.server, self.home).info()
        if info is None or spec.model not in info.models:
            raise TanrenError(phrase("server {server} does not serve {model} (any more)",
                                     server=spec.server, model=spec.model),
                              hint=phrase("pick another target; `tanren servers` lists what runs"))
        return ServerTarget(spec.label, info.url, spec.model)

    def _backend(self, model: str, backend: str) -> ChatBackend:
        key = (model, backend)
        if key not in self._backends:
            from engine.chat.backend import DEFAULT_MAX_CONTEXT
            from engine.chat.targets import open_backend

            self._backends[key] = open_backend(replace(self.loading, base=model), self.home, backend=backend,
                                               max_context=self.max_context or DEFAULT_MAX_CONTEXT,
                                               on_status=self.on_status)
        return self._backends[key]

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
