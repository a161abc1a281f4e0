"""Stream planned tensors from safetensors into a GGUF file, one tensor in memory at a time."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ExportError
from export.output import artifact_file

GGUF_DTYPES = ("f16", "bf16", "f32")
_BYTES_PER_VALUE = {"f16": 2, "bf16": 2, "f32": 4}


@dataclass(frozen=True)
class PlannedTensor:
    gguf_name: str
    shape: tuple[int, ...]
    dtype: str  # one of GGUF_DTYPES
    load: Callable[[], Any]  # -> float32 numpy array, already in llama.cpp's layout

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * _BYTES_PER_VALUE[self.dtype]


def check_dtype(dtype: str) -> None:
    if dtype not in GGUF_DTYPES:
        raise ExportError(f"unknown GGUF dtype {dtype!r}", hint=f"choose one of {', '.join(GGUF_DTYPES)}")


def write_gguf_file(writer, plan: list[PlannedTensor], out: Path, *, extra_bytes: int = 0) -> Path:
    """Write `writer`'s metadata and the planned tensors to `out` through a temporary file."""
    for tensor in plan:
        _add_tensor_info(writer, tensor)
    with artifact_file(out, expected_bytes=sum(t.nbytes for t in plan) + extra_bytes) as tmp:
        try:
            writer.write_header_to_file(path=tmp)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for tensor in plan:
                writer.write_tensor_data(_encode(tensor.load(), tensor.dtype))
        finally:
            writer.close()
    return Path(out)


def safetensors_loader(path: Path, name: str, transform: Callable[[Any], Any]) -> Callable[[], Any]:
    def load():
        import torch
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            return transform(handle.get_tensor(name).to(torch.float32).numpy())

    return load


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
            raise ExportError(f"{path.name} is not a readable safetensors file ({exc})", where=str(path),
                              hint="the file may be truncated: save it again") from None
    return index


def model_safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a HF model folder, single-file or sharded (with every shard present)."""
    index_file = folder / "model.safetensors.index.json"
    if index_file.is_file():
        try:
            shards = sorted(set(json.loads(index_file.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError) as exc:
            raise ExportError(f"{index_file.name} cannot be read: {exc}", where=str(index_file)) from None
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ExportError(f"weight shards are missing: {', '.join(missing)}", where=str(folder),
                              hint="copy the whole model folder, or save the model again")
        return [folder / name for name in shards]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise ExportError(f"{folder} has no model.safetensors", where=str(folder),
                      hint="save the model with safe_serialization (pickled .bin weights are not read)")


def _add_tensor_info(writer, tensor: PlannedTensor) -> None:
    import gguf
    import numpy as np

    if tensor.dtype == "bf16":  # numpy has no bfloat16: the data goes in as raw 16-bit words
        writer.add_tensor_info(tensor.gguf_name, tensor.shape, np.dtype(np.uint16), tensor.nbytes,
                               raw_dtype=gguf.GGMLQuantizationType.BF16)
    else:
        numpy_dtype = np.float16 if tensor.dtype == "f16" else np.float32
        writer.add_tensor_info(tensor.gguf_name, tensor.shape, np.dtype(numpy_dtype), tensor.nbytes)


def _encode(values, dtype: str):
    import gguf

    qtype = {"f16": gguf.GGMLQuantizationType.F16, "bf16": gguf.GGMLQuantizationType.BF16,
             "f32": gguf.GGMLQuantizationType.F32}[dtype]
    return gguf.quants.quantize(values, qtype)
