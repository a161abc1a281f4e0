"""What `tanren models` lists: built-in bases, converted GGUF copies and cached hub models."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.models.materialize import MARKER
from engine.models.registry import BUILTIN_MODELS
from engine.errors import ModelNotFoundError
from engine.i18n import N_
from engine.paths import Home
from engine.phrases import Phrase, phrase

# The kinds of entry: keys in `--json`, and message ids where a table shows them
BUILTIN, GGUF, HUB_CACHE = N_("built-in"), N_("gguf"), N_("hub cache")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # BUILTIN, GGUF or HUB_CACHE
    size_bytes: int
    location: str
    ready: bool  # loads in seconds (no GGUF conversion pending)
    note: Phrase | None = None  # translated where it is shown

    def to_json(self) -> dict[str, object]:
        """The entry as `tanren models --json` prints it, its note in English."""
        return {**asdict(self), "note": str(self.note or "")}


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())  # follows hub-cache symlinks


def list_models(home: Home, *, include_hub_cache: bool = True) -> list[ModelEntry]:
    entries = [_builtin_entry(name, home) for name in BUILTIN_MODELS]
    entries += _converted_entries(home)
    if include_hub_cache:
        entries += _hub_cache_entries()
    return entries


def _builtin_entry(name: str, home: Home) -> ModelEntry:
    folder = home.model_dir(name)
    ready = (folder / "config.json").is_file()
    try:
        gguf = BUILTIN_MODELS[name].gguf_path()
    except ModelNotFoundError as exc:
        return ModelEntry(name, BUILTIN, 0, "-", False, phrase("missing: {hint}", hint=exc.phrases[2]))
    size = folder_size(folder) if ready else gguf.stat().st_size
    note = None if ready else phrase("converted from GGUF on first use (about a minute)")
    return ModelEntry(name, BUILTIN, size, str(folder if ready else gguf), ready, note)


def _converted_entries(home: Home) -> list[ModelEntry]:
    if not home.models.is_dir():
        return []
    entries = []
    for folder in sorted(home.models.iterdir()):
        marker = folder / MARKER
        if folder.name in BUILTIN_MODELS or not marker.is_file():
            continue
        source = json.loads(marker.read_text(encoding="utf-8")).get("source", "")
        entries.append(ModelEntry(source, GGUF, folder_size(folder), str(folder), True, phrase("converted copy")))
    return entries


def _hub_cache_entries() -> list[ModelEntry]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except (CacheNotFound, OSError):
        return []
    entries = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        revision = max(repo.revisions, key=lambda r: r.last_modified, default=None)
        if revision is None or not any(f.file_name == "config.json" for f in revision.files):
            continue
        entries.append(ModelEntry(repo.repo_id, HUB_CACHE, repo.size_on_disk, str(revision.snapshot_path), True))
    return entries
