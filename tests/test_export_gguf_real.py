"""The real default model (SmolLM2-135M-Instruct) exported to F16 and Q8_0 still answers in llama.cpp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.gguf import write_gguf
from export.quantize import quantize_gguf
from tests.llama_cpp_runner import llama_logits, llama_tokenize, open_llama

pytestmark = pytest.mark.real_model

TEXTS = [
    "What is the capital of France? In 2024, 12345 people visited.",
    "日本の首都は東京です。こんにちは、元気ですか？ラーメンを食べたい！",
    "<|im_start|>system\nあなたは親切なアシスタントです。<|im_end|>\n"
    "<|im_start|>user\n東京について教えて<|im_end|>\n",
]


@pytest.fixture(scope="module")
def exported(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("smollm2")
    f16 = write_gguf(default_model_dir, folder / "smollm2-f16.gguf", dtype="f16")
    return {"f16": f16, "q8_0": quantize_gguf(f16, folder / "smollm2-q8_0.gguf", "q8_0")}


def test_llama_cpp_tokenizes_like_transformers(exported, default_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    for text in TEXTS:
        assert llama_tokenize(exported["f16"], text) == tokenizer.encode(text), text


def test_f16_logits_match_transformers(exported, default_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(default_model_dir).encode(TEXTS[2] + TEXTS[0], add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(default_model_dir, dtype=torch.float32)
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    got = llama_logits(exported["f16"], ids)
    assert np.abs(got - expected).max() <= 1e-2 * np.abs(expected).max()
    assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.95


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_exported_model_answers_in_llama_cpp(kind: str, exported) -> None:
    """llama.cpp alone: the GGUF's chat template, its tokenizer, greedy decoding, stop at <|im_end|>."""
    with open_llama(exported[kind], n_ctx=512) as llm:
        reply = llm.create_chat_completion(
            [{"role": "user", "content": "What is the capital of France?"}], temperature=0.0, max_tokens=48,
        )
    choice = reply["choices"][0]
    assert "Paris" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    assert "<|im_end|>" not in choice["message"]["content"]
