"""What a server serves: each target loaded once at start, under the name a request's `model` picks.

A target is anything `tanren chat` takes: a built-in base, an HF folder (a merged export too) or
a cached hub id; a run (its base with its adapter, or its fully tuned model); an adapter folder
(on the base it was trained on); or a .gguf file, which llama.cpp serves. Adapters on one base
share one loaded copy of it (engine.chat.pool) and are switched per request; that base is
served under its own name too, as vLLM lists a base beside its LoRA adapters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.chat.backend import ChatTarget
from engine.chat.pool import TargetPool, TargetSpec, run_spec, spec_for
from engine.config import load_yaml
from engine.errors import TanrenError
from engine.models.registry import BUILTIN_MODELS
from engine.paths import Home
from engine.phrases import phrase
from engine.runs.rundir import find_run
from engine.serve.errors import ApiError
from engine.serve.scheduler import Scheduler


@dataclass(frozen=True)
class ServedModel:
    name: str
    target: ChatTarget
    created: int
    scheduler: Scheduler  # shared by every name on the same loaded model


def target_spec(text: str, home: Home) -> TargetSpec:
    """What `tanren serve TEXT` serves. A model by that name comes before a run by that name."""
    path = Path(text).expanduser()
    if (path / "adapter_config.json").is_file():
        return TargetSpec("adapter", adapter_base(path), adapter=str(path))
    if text not in BUILTIN_MODELS and not path.exists() and (run := find_run(text, home)):
        spec = run_spec(run)
        if spec is None:
            follow = f"tanren logs {text} -f"
            raise TanrenError(phrase("run {name} has nothing to serve yet: it saved no adapter or model", name=text),
                              hint=phrase("wait until it is done ({command})", command=follow))
        return spec
    return spec_for(text)


def checked_spec(text: str, home: Home) -> TargetSpec:
    """`target_spec`, with its model and adapter found on disk: what the CLI checks before it starts a
    server, so that a typo is an error in the terminal rather than in a detached process's log."""
    from engine.chat.targets import resolve_adapter
    from engine.models.resolve import resolve_model

    spec = target_spec(text, home)
    resolve_model(spec.model, home)
    if spec.adapter:
        resolve_adapter(spec.adapter, home)
    return spec


def adapter_base(folder: Path) -> str:
    """The base an adapter folder was trained on: tanren's training_config.yaml, else peft's config."""
    if (folder / "training_config.yaml").is_file():
        return load_yaml(folder / "training_config.yaml").model.base
    base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise TanrenError(phrase("{folder} does not say which base model it adapts", folder=folder),
                          where=str(folder / "adapter_config.json"),
                          hint=phrase("serve the base and name the adapter with tanren chat, or set "
                                      "base_model_name_or_path"))
    return base


def served_name(spec: TargetSpec, target: ChatTarget) -> str:
    """The `model` name a request uses: the adapter's (its run's or folder's), else the model
    folder's or file's name, else what names the model (a built-in name, a hub id)."""
    if target.adapter:
        return target.adapter
    path = Path(spec.model).expanduser()
    return path.name if path.exists() else spec.model


class ServedModels:
    """The models of one server, loaded before it takes its first request."""

    def __init__(self, specs: Sequence[TargetSpec], pool: TargetPool, *, max_batch: int = 8, max_queue: int = 32):
        self.pool = pool
        self.models: dict[str, ServedModel] = {}
        self.schedulers: dict[int, Scheduler] = {}
        bases = [TargetSpec("base", spec.model, backend=spec.backend) for spec in specs if spec.adapter]
        for spec in [*specs, *bases]:
            target = pool.open(spec)
            name = served_name(spec, target)
            if name in self.models:
                if spec in bases:
                    continue  # a base asked for by name as well
                raise TanrenError(phrase("two targets would be served as {name!r}", name=name),
                                  hint=phrase("serve each run, adapter or model once"))
            backend = target.backend
            if id(backend) not in self.schedulers:
                self.schedulers[id(backend)] = Scheduler(backend, max_batch=max_batch, max_queue=max_queue)
            self.models[name] = ServedModel(name, target, int(time.time()), self.schedulers[id(backend)])

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str | None) -> ServedModel:
        """The model a request names; without a name, the first target served."""
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise ApiError(404, f"The model `{name}` does not exist. This server serves: {', '.join(self.models)}",
                           param="model", code="model_not_found")
        return self.models[name]

    def close(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.close()
        self.pool.close()
