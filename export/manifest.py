"""The export manifest: what went in, what came out (sizes, hashes), how it was verified, with what.

`manifest.json` is written last and atomically, so an artifacts folder with a manifest saying
"passed" holds exactly the files it lists; a failed export gets a manifest saying "failed"
and why, so its leftovers can never be mistaken for a good export.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_text
from engine.versions import library_versions

MANIFEST = "manifest.json"
PASSED, PASSED_WITH_EXCLUSIONS, FAILED = "passed", "passed with exclusions", "failed"
# An export in these states has verified files to use and publish (only those, with exclusions)
PUBLISHABLE = (PASSED, PASSED_WITH_EXCLUSIONS)
FORMAT_VERSION = 1
_CHUNK = 1 << 22


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the folder it was listed from
    size_bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path, root: Path) -> FileRecord:
        return cls(str(path.relative_to(root)), path.stat().st_size, sha256(path))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def records(paths: Iterable[Path], root: Path) -> list[dict[str, Any]]:
    """Every file under `paths` (files, or folders walked in name order), relative to `root`."""
    files = []
    for path in paths:
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [FileRecord.of(p, root).__dict__ for p in files]


def write_manifest(folder: Path, *, status: str, error: str | None = None, **sections: Any) -> Path:
    """Write `folder/manifest.json`: status (passed, passed with exclusions, failed), the error if any,
    and sections."""
    document = {"format": FORMAT_VERSION, "status": status, "error": error,
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **sections, "tools": library_versions()}
    path = Path(folder) / MANIFEST
    atomic_write_text(path, json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    return path


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"status": "unreadable"}


def excluded_files(manifest: dict[str, Any]) -> list[str]:
    """The files a manifest marks as failed verification, relative to its folder."""
    return [entry["file"] for entry in manifest.get("excluded") or [] if isinstance(entry, dict) and "file" in entry]
