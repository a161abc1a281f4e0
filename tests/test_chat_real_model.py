"""Both backends on the real default model: same prompt ids, same stops, same answers within quantization.

The transformers side loads the materialized HF folder, which holds exactly the dequantized
weights of the shipped Q4_1 GGUF. llama.cpp runs the shipped file itself, and an F16 GGUF of
the same weights made from it by llama.cpp's own quantizer (no int8 activations in its
matrix products, so its logits match fp32 closely).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.chat.llama_cpp_backend import LlamaCppBackend
from engine.chat.transformers_backend import TransformersBackend
from engine.config import GenerationConfig, ModelConfig
from engine.messages import Message
from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
from engine.paths import Home

pytestmark = pytest.mark.real_model

PARIS = [Message("user", "What is the capital of France?")]
JAPANESE = [
    Message("system", "あなたは親切なアシスタントです。"),
    Message("user", "こんにちは！日本の首都はどこですか？"),
    Message("assistant", "日本の首都は東京です。"),
    Message("user", "では、フランスの首都は？"),
]
GREEDY = GenerationConfig(temperature=0, repetition_penalty=1.0, max_new_tokens=24)


@pytest.fixture(scope="module")
def hf(default_model_dir: Path):
    with TransformersBackend.load(default_model_dir, ModelConfig()) as backend:
        yield backend


@pytest.fixture(scope="module")
def shipped():
    with LlamaCppBackend.load(BUILTIN_MODELS[DEFAULT_MODEL].gguf_path()) as backend:
        yield backend


@pytest.fixture(scope="module")
def f16_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped weights as F16, written by llama.cpp's quantizer (in a child: it logs to the terminal)."""
    out = tmp_path_factory.mktemp("gguf") / "smollm2-135m-instruct.F16.gguf"
    script = ("import sys, llama_cpp\np = llama_cpp.llama_model_quantize_default_params()\n"
              "p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16\np.allow_requantize = True\n"
              "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p))")
    subprocess.run([sys.executable, "-c", script, str(BUILTIN_MODELS[DEFAULT_MODEL].gguf_path()), str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def f16(f16_gguf: Path):
    with LlamaCppBackend.load(f16_gguf) as backend:
        yield backend


@pytest.mark.parametrize("messages", [PARIS, JAPANESE], ids=["english", "japanese"])
def test_both_backends_render_identical_prompt_ids(hf, shipped, messages) -> None:
    ids = hf.encode(messages)
    assert shipped.encode(messages) == ids
    bos = hf.tokenizer.bos_token_id
    assert ids[0] == bos and ids[1] != bos  # one BOS, placed by the template
    expected = hf.tokenizer.apply_chat_template([m.as_dict() for m in messages], add_generation_prompt=True,
                                                tokenize=True, return_dict=False)
    assert ids == list(expected)


def test_both_backends_stop_at_the_same_tokens(hf, shipped) -> None:
    im_end = hf.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in hf.stop_ids and hf.stop_ids == shipped.stop_ids
    assert hf.context_length == shipped.context_length == 4096


def test_transformers_answers_paris_and_stops_at_end_of_turn(hf) -> None:
    answer = "".join(hf.stream_chat(PARIS, GREEDY))
    assert "Paris" in answer and "<|im_end|>" not in answer and "user" not in answer
    assert hf.last_stats.stop_reason == "stop" and hf.last_stats.new_tokens < GREEDY.max_new_tokens


def test_f16_gguf_agrees_with_transformers_token_for_token(hf, f16) -> None:
    hf_logits, gguf_logits = hf.prompt_logits(PARIS), f16.prompt_logits(PARIS)
    assert np.abs(hf_logits - gguf_logits).max() < 0.1
    hf_answer = "".join(hf.stream_chat(PARIS, GREEDY))
    gguf_answer = "".join(f16.stream_chat(PARIS, GREEDY))
    assert gguf_answer == hf_answer and "Paris" in gguf_answer
    assert f16.last_stats.stop_reason == "stop" and f16.last_stats.new_tokens == hf.last_stats.new_tokens


def test_shipped_q4_1_agrees_within_quantization(hf, shipped) -> None:
    """llama.cpp rounds activations to 8 bits for Q4_1 weights: close logits, same top candidates."""
    hf_logits, gguf_logits = hf.prompt_logits(PARIS), shipped.prompt_logits(PARIS)
    assert np.abs(hf_logits - gguf_logits).max() < 3.0
    assert np.corrcoef(hf_logits, gguf_logits)[0, 1] > 0.99
    assert set(np.argsort(-hf_logits)[:5]) == set(np.argsort(-gguf_logits)[:5])


def test_llama_cpp_japanese_answer_streams_whole_characters(shipped) -> None:
    pieces = list(shipped.stream_chat(JAPANESE, GenerationConfig(seed=0, max_new_tokens=32)))
    # A character split across tokens is never cut, and an answer cut off at max_new_tokens ends with
    # its last whole character. (The model itself may emit an invalid byte sequence, which shows as
    # U+FFFD inside a piece.)
    assert pieces and not any(piece.endswith("\ufffd") for piece in pieces)
    assert any("\u3040" <= ch <= "\u9fff" for ch in "".join(pieces))  # it answers in Japanese
    assert shipped.last_stats.prompt_tokens == len(shipped.encode(JAPANESE))


def test_llama_cpp_cancel_frees_the_model(shipped) -> None:
    stream = shipped.stream_chat(PARIS, GenerationConfig(seed=0, max_new_tokens=200))
    next(stream)
    stream.close()
    assert shipped.last_stats.stop_reason == "cancelled" and shipped.last_stats.new_tokens < 5
    assert "".join(shipped.stream_chat(PARIS, GenerationConfig(seed=0, max_new_tokens=4)))


def _tanren(*args: str, home: Home) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("tanren")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TANREN_HOME": str(home.root)})


def test_cli_answers_paris_through_both_backends_and_compares_them(shared_home: Home, default_model_dir: Path,
                                                                   f16_gguf: Path) -> None:
    question = ["--prompt", "What is the capital of France?", "--temperature", "0"]
    for extra in ([DEFAULT_MODEL], [DEFAULT_MODEL, "--backend", "llama.cpp"], [str(f16_gguf)]):
        result = _tanren("chat", *extra, *question, home=shared_home)
        assert result.returncode == 0, result.stderr
        assert "Paris" in result.stdout and "tokens/s" in result.stderr
    # the built-in model through llama.cpp runs an F16 copy of its shipped weights, and agrees
    result = _tanren("chat", DEFAULT_MODEL, "--vs", "llama.cpp", *question, "--max-new-tokens", "16",
                     home=shared_home)
    assert result.returncode == 0, result.stderr
    assert f"== {DEFAULT_MODEL} [transformers] ==" in result.stdout
    assert f"== {DEFAULT_MODEL}.F16.gguf [llama.cpp] ==" in result.stdout
    assert "\n-- " in result.stdout and result.stderr.count("tokens/s") == 2
