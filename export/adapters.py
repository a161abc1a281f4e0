"""The adapters an export merges: which folders, with what weights, and whether they fit the base.

Every check here reads only JSON and safetensors headers, so a wrong adapter is refused in a
second, before any model is loaded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ExportError
from engine.paths import Home
from engine.phrases import phrase
from export.json_files import read_folder_json

ADAPTER_WEIGHTS = "adapter_model.safetensors"
LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
ADAPTER_CONFIG = "adapter_config.json"
_PREFIX = "base_model.model."
_OTHER_BASE = phrase("the adapter was trained on a different base model")


@dataclass(frozen=True)
class AdapterInput:
    """One PEFT LoRA adapter to merge; its change to the base is scaled by `weight`."""

    name: str
    folder: Path
    weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "folder": str(self.folder), "weight": self.weight}


def parse_adapter(spec: str, home: Home) -> AdapterInput:
    """`RUN`, `PATH`, `RUN:WEIGHT` or `PATH:WEIGHT` (run names never hold ':')."""
    from engine.chat.targets import resolve_adapter

    target, weight = spec, 1.0
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            weight = float(tail)
        except ValueError:
            pass  # a ':' inside a path, not a weight
        else:
            target = head
    if not math.isfinite(weight) or weight == 0:
        raise ExportError(phrase("adapter weight {weight} in {spec!r} must be a finite number other than 0",
                                 weight=tail, spec=spec),
                          where=spec, hint=phrase("e.g. RUN:0.5 merges half of the adapter's change"))
    ref = resolve_adapter(target, home)
    return AdapterInput(ref.name, ref.folder.resolve(), weight)


def read_adapter_config(folder: Path) -> Any:
    """The parsed adapter_config.json of a PEFT adapter folder, or a clear ExportError."""
    return read_folder_json(folder, ADAPTER_CONFIG, missing=phrase("it is not a PEFT adapter folder"),
                            hint=phrase("point at the adapter folder a training run saved"))


def adapter_settings(adapter: AdapterInput) -> dict[str, Any]:
    """The adapter's adapter_config.json, after checking the folder holds a LoRA adapter."""
    path = adapter.folder / ADAPTER_CONFIG
    settings = read_adapter_config(adapter.folder)
    if not isinstance(settings, dict) or settings.get("peft_type") != "LORA":
        kind = settings.get("peft_type") if isinstance(settings, dict) else None
        message = (phrase("{name} is a {kind} adapter; only LoRA adapters are merged", name=adapter.name, kind=kind)
                   if kind else phrase("{name} is a non-LoRA adapter; only LoRA adapters are merged", name=adapter.name))
        raise ExportError(message, where=str(path))
    if not (adapter.folder / ADAPTER_WEIGHTS).is_file():
        raise ExportError(phrase("{folder} has no {file}", folder=adapter.folder, file=ADAPTER_WEIGHTS),
                          where=str(adapter.folder),
                          hint=phrase("the run may not have finished; adapters are read from safetensors only"))
    if adapter.weight != 1.0 and settings.get("modules_to_save"):
        raise ExportError(phrase("{name} also trains whole modules ({modules}), which cannot be scaled by a weight",
                                 name=adapter.name, modules=", ".join(settings["modules_to_save"])),
                          where=str(path), hint=phrase("merge it with weight 1"))
    return settings


def check_adapters_fit(adapters: list[AdapterInput], base_shapes: dict[str, tuple[int, ...]], *,
                       tied_head: bool = False) -> None:
    """Refuse adapters whose matrices do not fit the base weights (trained on another model).

    With `tied_head` the output head is the input embedding matrix (the file stores it once), so
    an adapter on the head is refused: merging it would change the embeddings as well.
    """
    with_modules = [a.name for a in adapters if adapter_settings(a).get("modules_to_save")]
    if with_modules and len(adapters) > 1:
        raise ExportError(phrase("{names} replaces whole modules, so it cannot be combined with other adapters",
                                 names=", ".join(with_modules)),
                          hint=phrase("merge it alone, then use the merged model as the next base"))
    for adapter in adapters:
        _check_fits_base(adapter, base_shapes, tied_head)


def _check_fits_base(adapter: AdapterInput, base_shapes: dict[str, tuple[int, ...]], tied_head: bool) -> None:
    from export.safetensors_files import safetensors_index

    weights = adapter.folder / ADAPTER_WEIGHTS
    pairs = 0
    for key, (path, shape, _dtype) in safetensors_index([weights]).items():
        match = LORA_KEY.match(key)
        if match is None:
            _check_whole_module(key, shape, base_shapes, path)
            continue
        module = match["module"]
        if tied_head and module == "lm_head":
            raise ExportError(phrase("{name} adapts lm_head, which this base shares with its input embeddings: "
                                     "merging would change both", name=adapter.name), where=str(path),
                              hint=phrase("train adapters on the attention and MLP layers (target_modules all-linear)"))
        base = base_shapes.get(f"{module}.weight")
        if base is None or len(base) != 2:
            raise ExportError(phrase("{name} adapts {module}, which the base model does not have",
                                     name=adapter.name, module=module), where=str(path), hint=_OTHER_BASE)
        _check_fits(shape, match["part"], base, module, path)
        pairs += 1
    if not pairs:
        raise ExportError(phrase("{file} holds no LoRA matrices", file=weights.name), where=str(weights),
                          hint=phrase("the file may be damaged; save the adapter again"))


def _check_whole_module(key: str, shape: tuple[int, ...], base_shapes: dict[str, tuple[int, ...]],
                        path: Path) -> None:
    """A fully trained module (modules_to_save) must have the shape of the weight it replaces."""
    name = key.removeprefix(_PREFIX)
    if name in base_shapes and tuple(base_shapes[name]) != tuple(shape):
        raise ExportError(phrase("the adapter's {name} {shape} does not fit the base weight {base}",
                                 name=name, shape=list(shape), base=list(base_shapes[name])),
                          where=str(path), hint=_OTHER_BASE)


def _check_fits(shape: tuple[int, ...], part: str, base: tuple[int, ...], module: str, path: Path) -> None:
    """A is (rank, in_features), B is (out_features, rank) of the base weight (out, in)."""
    out_features, in_features = base
    fits = shape[1] == in_features if part == "A" else shape[0] == out_features
    if len(shape) != 2 or not fits:
        raise ExportError(phrase("the adapter's {module} matrix {part} {shape} does not fit the base weight {base}",
                                 module=module, part=part, shape=list(shape), base=list(base)),
                          where=str(path), hint=_OTHER_BASE)
