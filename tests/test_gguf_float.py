"""The built-in model's F16 copy for llama.cpp: same weights, float arithmetic."""

from __future__ import annotations

import pytest

from engine.models.gguf_float import float_gguf
from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
from engine.paths import Home

pytestmark = pytest.mark.real_model


def test_f16_copy_is_made_once_and_holds_float_weights(shared_home: Home) -> None:
    from gguf import GGMLQuantizationType, GGUFReader

    shipped = BUILTIN_MODELS[DEFAULT_MODEL].gguf_path()
    path = float_gguf(shipped, DEFAULT_MODEL, shared_home)
    assert path.parent == shared_home.models / "gguf" and path.stat().st_size > 2 * shipped.stat().st_size
    mtime = path.stat().st_mtime_ns
    assert float_gguf(shipped, DEFAULT_MODEL, shared_home).stat().st_mtime_ns == mtime  # reused
    reader = GGUFReader(path)
    kinds = {t.tensor_type for t in reader.tensors}
    assert kinds <= {GGMLQuantizationType.F16, GGMLQuantizationType.F32}
    assert {"tokenizer.chat_template", "tokenizer.ggml.tokens", "tokenizer.ggml.merges"} <= set(reader.fields)
