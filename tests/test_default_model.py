"""The embedded default model, for real: converted once, answers correctly, reloads fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.config import ModelConfig
from engine.errors import TanrenError
from engine.models.loading import load_model, load_tokenizer
from engine.models.materialize import materialize
from engine.models.resolve import resolve_model
from engine.paths import Home

pytestmark = pytest.mark.real_model


def test_materialized_folder_is_an_ordinary_hf_folder(default_model_dir: Path) -> None:
    names = {p.name for p in default_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    config = json.loads((default_model_dir / "config.json").read_text())
    assert "quantization_config" not in config  # plain weights, no GGUF quantizer left behind
    assert config["model_type"] == "llama"
    tokenizer = load_tokenizer(default_model_dir, ModelConfig())
    assert "<|im_start|>" in tokenizer.chat_template
    generation = json.loads((default_model_dir / "generation_config.json").read_text())
    stop_ids = generation["eos_token_id"]
    stop_ids = stop_ids if isinstance(stop_ids, list) else [stop_ids]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_ids


def test_default_model_answers_paris_and_reloads_fast(default_model_dir: Path) -> None:
    start = time.perf_counter()
    tokenizer = load_tokenizer(default_model_dir, ModelConfig())
    model = load_model(default_model_dir, ModelConfig())
    load_seconds = time.perf_counter() - start
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
    assert load_seconds < 10, f"second load took {load_seconds:.1f} s"


def test_failed_conversion_leaves_no_folder(home: Home, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    resolved = resolve_model(str(broken), home)
    with pytest.raises(TanrenError):
        materialize(resolved)
    assert not resolved.folder.exists()
    assert [p for p in home.models.iterdir() if not p.name.endswith(".lock")] == []
