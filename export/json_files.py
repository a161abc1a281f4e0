"""Read the JSON file that makes a folder what it is (config.json, adapter_config.json), or say why not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import ExportError


def read_folder_json(folder: Path, name: str, *, missing: str, hint: str) -> Any:
    """`folder/name` parsed; `missing` ends the error sentence when the file is not there."""
    path = Path(folder) / name
    if not path.is_file():
        raise ExportError(f"{folder} has no {name}, so {missing}", where=str(folder), hint=hint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{name} cannot be read: {exc}", where=str(path)) from None
