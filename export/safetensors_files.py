"""The weight files of a HF model or adapter folder, read from their headers alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

from engine.errors import ExportError
from engine.phrases import phrase


def safetensors_index(files: list[Path]) -> dict[str, tuple[Path, tuple[int, ...], str]]:
    """Every tensor of the given safetensors files: name -> (file, shape, dtype); no data is read."""
    from safetensors import SafetensorError, safe_open

    index: dict[str, tuple[Path, tuple[int, ...], str]] = {}
    for path in files:
        try:
            with safe_open(path, framework="pt") as handle:
                for name in handle.keys():
                    meta = handle.get_slice(name)
                    index[name] = (path, tuple(meta.get_shape()), meta.get_dtype())
        except (SafetensorError, OSError) as exc:
            raise ExportError(phrase("{file} is not a readable safetensors file ({error})", file=path.name, error=exc),
                              where=str(path), hint=phrase("the file may be truncated: save it again")) from None
    return index


def model_safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a HF model folder, single-file or sharded (with every shard present)."""
    index_file = folder / "model.safetensors.index.json"
    if index_file.is_file():
        try:
            shards = sorted(set(json.loads(index_file.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError) as exc:
            raise ExportError(phrase("{file} cannot be read: {error}", file=index_file.name, error=exc),
                              where=str(index_file)) from None
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ExportError(phrase("weight shards are missing: {files}", files=", ".join(missing)), where=str(folder),
                              hint=phrase("copy the whole model folder, or save the model again"))
        return [folder / name for name in shards]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise ExportError(phrase("{folder} has no {file}", folder=folder, file=single.name), where=str(folder),
                      hint=phrase("save the model with safe_serialization (pickled .bin weights are not read)"))


def parameter_count(folder: Path) -> int:
    """How many numbers the model's weights hold (a tied head counted once, as the file stores it)."""
    index = safetensors_index(model_safetensors_files(Path(folder)))
    return sum(math.prod(shape) for _path, shape, _dtype in index.values())
