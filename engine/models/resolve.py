"""Turn what the user typed (a name, folder, .gguf file or hub id) into a local model.

Resolution never touches the network: a hub id must already be in the HF cache.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelNotFoundError
from engine.models.registry import BUILTIN_MODELS
from engine.paths import Home
from engine.phrases import phrase

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

KINDS = ("builtin", "folder", "gguf", "hub")


@dataclass(frozen=True)
class ResolvedModel:
    """A model located on disk.

    `folder` is the HF folder to load from. For a built-in model or a .gguf file it is the
    materialized copy in the cache, which may not exist yet (`gguf_source` is then converted).
    """

    spec: str
    kind: str
    folder: Path
    gguf_source: Path | None = None

    @property
    def needs_materializing(self) -> bool:
        return self.gguf_source is not None and not (self.folder / "config.json").is_file()


def resolve_model(spec: str, home: Home) -> ResolvedModel:
    spec = spec.strip()
    if spec in BUILTIN_MODELS:
        return ResolvedModel(spec, "builtin", home.model_dir(spec), BUILTIN_MODELS[spec].gguf_path())
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ResolvedModel(spec, "gguf", home.model_dir(_gguf_cache_name(path)), path.resolve())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                phrase("{path} is a folder but holds no config.json, so it is not a Hugging Face model folder",
                       path=path),
                where=str(path), hint=phrase("point at the folder that contains config.json and the weights"),
            )
        return ResolvedModel(spec, "folder", path.resolve())
    if path.suffix.lower() == ".gguf" or path.is_absolute() or spec.startswith("."):
        raise ModelNotFoundError(phrase("{path} does not exist", path=spec), where=spec)
    if _HUB_ID.fullmatch(spec):
        return ResolvedModel(spec, "hub", _cached_snapshot(spec))
    raise ModelNotFoundError(
        phrase("unknown model {spec!r}", spec=spec),
        hint=phrase("use a built-in name ({names}), a local HF folder, a .gguf file, or a hub id already in the "
                    "HF cache (see `tanren models`)", names=", ".join(BUILTIN_MODELS)),
    )


def _gguf_cache_name(path: Path) -> str:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem)[:100].lstrip(".-_") or "model"
    return f"{stem}-{digest}"


def _cached_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    download = f"hf download {repo_id}"
    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ModelNotFoundError(
            phrase("{repo} is not in the local Hugging Face cache (tanren never downloads at run time)", repo=repo_id),
            hint=phrase("download it first with: {command}", command=download),
        ) from None
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(phrase("the cached copy of {repo} has no config.json", repo=repo_id),
                                 where=str(folder),
                                 hint=phrase("re-download it with: {command}", command=download))
    return folder
