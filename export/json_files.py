"""Read the JSON file that makes a folder what it is (config.json, adapter_config.json), or say why not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import ExportError
from engine.phrases import Phrase, phrase

NOT_A_MODEL_FOLDER = phrase("it is not a Hugging Face model folder")


def read_folder_json(folder: Path, name: str, *, missing: Phrase, hint: Phrase) -> Any:
    """`folder/name` parsed; `missing` ends the error sentence when the file is not there."""
    path = Path(folder) / name
    if not path.is_file():
        raise ExportError(phrase("{folder} has no {file}, so {missing}", folder=folder, file=name, missing=missing),
                          where=str(folder), hint=hint)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(phrase("{file} cannot be read: {error}", file=name, error=exc), where=str(path)) from None
