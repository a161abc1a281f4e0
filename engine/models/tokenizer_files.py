"""Saving a tokenizer so that the folder converts to GGUF as the one it came from did.

transformers saves a SentencePiece tokenizer (Llama 2, Mistral v0.x, Gemma, Phi-3) as
tokenizer.json alone, but llama.cpp's converter reads the pieces' scores from the original
tokenizer.model; without it the converter scores every piece alike and llama.cpp splits text
unlike the model's training. So the file travels with every tokenizer tanren saves.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

SENTENCEPIECE_MODEL = "tokenizer.model"


def save_tokenizer(tokenizer, folder: Path, *, sources: Sequence[Path] = ()) -> None:
    """`tokenizer.save_pretrained(folder)`, plus the SentencePiece model of the first of `sources`
    (or of the folder the tokenizer was loaded from) that has one."""
    tokenizer.save_pretrained(folder)
    folder = Path(folder)
    if (folder / SENTENCEPIECE_MODEL).is_file():
        return
    loaded_from = Path(getattr(tokenizer, "name_or_path", "") or "")
    for source in (*map(Path, sources), loaded_from):
        if source.is_dir() and (source / SENTENCEPIECE_MODEL).is_file():
            shutil.copyfile(source / SENTENCEPIECE_MODEL, folder / SENTENCEPIECE_MODEL)
            return
