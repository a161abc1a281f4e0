"""How a PEFT LoRA adapter's tensors name and fit the base model's weights.

Shared by the GGUF LoRA writer and the merge, which both refuse an adapter whose matrices do
not fit the base: the sign of an adapter trained on a different model.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import ExportError

LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


def check_fits(shape: tuple[int, ...], part: str, base: tuple[int, ...], module: str, path: Path) -> None:
    """A is (rank, in_features), B is (out_features, rank) of the base weight (out, in)."""
    out_features, in_features = base
    fits = shape[1] == in_features if part == "A" else shape[0] == out_features
    if len(shape) != 2 or not fits:
        raise ExportError(f"the adapter's {module} matrix {part} {list(shape)} does not fit the base weight "
                          f"{list(base)}", where=str(path), hint="the adapter was trained on a different base model")
