"""Perplexity on the tiny model: against NLL computed by hand, with a sliding window, through
transformers (base, adapter) and llama.cpp (a GGUF export of the same weights), and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.chat.llama_cpp_backend import LlamaCppBackend
from engine.chat.transformers_backend import TransformersBackend
from engine.config import ModelConfig
from engine.data import SAMPLE_HELDOUT, Example, load_examples, render_example
from engine.data.windows import spans
from engine.errors import DataError
from engine.messages import Message
from evals.errors import EvalCancelled, EvalError
from evals.perplexity import measure_perplexity, model_perplexity

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QA = [("What is the capital of France?", "The capital of France is Paris."),
      ("日本の首都はどこですか？", "日本の首都は東京です。"),
      ("こんにちは、元気ですか？", "はい、元気です。ありがとうございます。")]
LONG_TEXT = " ".join(["The capital of France is Paris.", "日本の首都は東京です。"] * 12)


def _chat(question: str, answer: str, line: int = 1) -> Example:
    return Example((Message("user", question), Message("assistant", answer)), None, f"test.jsonl:{line}")


@pytest.fixture(scope="module")
def tiny_gguf(gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.gguf import write_gguf

    return write_gguf(gguf_model_dir, tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf", dtype="f32")


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


def _logprob(model, context: list[int], token: int) -> float:
    """log p(token | context), from one plain forward pass."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([context])).logits[0, -1].double()
    return float(torch.log_softmax(logits, -1)[token])


def test_perplexity_is_exp_of_the_hand_computed_nll_on_the_answer_tokens(hf, model) -> None:
    examples = [_chat(q, a, i) for i, (q, a) in enumerate(QA, 1)]
    tokenizer = hf.tokenizer
    total, count = 0.0, 0
    for question, answer in QA:
        # The prompt up to the assistant's header, then the answer and its end-of-turn token:
        # exactly the tokens training learns (ChatML: "<|im_start|>assistant\n" ANSWER "<|im_end|>").
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                               tokenize=False)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        for position, token in enumerate(answer_ids):
            total -= _logprob(model, ids + answer_ids[:position], token)
        count += len(answer_ids)

    result = measure_perplexity(hf, examples)
    assert result.tokens == count and result.examples == len(QA)
    assert result.nll == pytest.approx(total / count, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)


def test_all_tokens_scores_everything_but_the_first(hf, model) -> None:
    example = _chat(*QA[1])
    ids = render_example(example, hf.tokenizer, max_length=10_000, assistant_only=False).input_ids
    nll = -sum(_logprob(model, ids[:t], ids[t]) for t in range(1, len(ids))) / (len(ids) - 1)
    result = measure_perplexity(hf, [example], assistant_only=False)
    assert result.tokens == len(ids) - 1
    assert result.perplexity == pytest.approx(math.exp(nll), rel=1e-5)


def test_windows_score_every_token_once_with_enough_context() -> None:
    for length, window, stride in [(2, 8, 4), (8, 8, 4), (9, 8, 4), (50, 8, 3), (50, 8, 8), (50, 8, 1)]:
        found = [(s.begin, s.end, s.first) for s in spans(length, max_length=window, stride=stride)]
        scored = [t for _begin, end, first in found for t in range(first, end)]
        assert scored == list(range(1, length))  # each once, in order; token 0 has no context
        for begin, end, first in found:
            assert end - begin <= window and begin < first  # a window's first token is only context
            assert first - begin >= max(1, min(first, window - stride))  # all context, or at least window - stride


def test_sliding_window_gives_each_token_the_context_of_its_window(hf, model) -> None:
    text = Example((), LONG_TEXT, "long.jsonl:1")
    ids = render_example(text, hf.tokenizer, max_length=10_000).input_ids
    window, stride = 16, 5
    assert len(ids) > 4 * window
    # Token t is predicted from the start of the first window that reaches it:
    # windows start at multiples of the stride and hold `window` tokens.
    nll = 0.0
    for t in range(1, len(ids)):
        begin = max(0, math.ceil((t + 1 - window) / stride)) * stride
        nll -= _logprob(model, ids[begin:t], ids[t])
    result = measure_perplexity(hf, [text], max_length=window, stride=stride)
    assert result.tokens == len(ids) - 1
    assert result.nll == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
    unwindowed = measure_perplexity(hf, [text])
    assert unwindowed.nll != pytest.approx(result.nll, rel=1e-4)  # less context, another value


def test_batches_do_not_change_the_result(hf) -> None:
    examples = load_examples(SAMPLE_HELDOUT)[:12]
    one_by_one = measure_perplexity(hf, examples, batch_tokens=1)
    batched = measure_perplexity(hf, examples, batch_tokens=4096)
    assert batched.tokens == one_by_one.tokens
    assert batched.nll == pytest.approx(one_by_one.nll, rel=1e-6)


def test_adapter_is_measured_on_the_same_tokens_and_the_base_stays_the_base(hf, tiny_model_dir: Path) -> None:
    examples = load_examples(SAMPLE_HELDOUT)[:8]
    base = measure_perplexity(hf, examples)
    tuned = measure_perplexity(hf, examples, adapter="tuned")
    assert tuned.tokens == base.tokens and tuned.nll != pytest.approx(base.nll, rel=1e-4)
    with TransformersBackend.load(tiny_model_dir, ModelConfig(base=str(tiny_model_dir))) as plain:
        assert measure_perplexity(plain, examples).nll == pytest.approx(base.nll, rel=1e-9)


def test_gguf_export_renders_the_same_tokens_and_mask_and_scores_the_same(gguf_model_dir: Path, tiny_gguf: Path,
                                                                         home) -> None:
    examples = load_examples(SAMPLE_HELDOUT)  # Japanese and English, multi-byte characters split across tokens
    with TransformersBackend.load(gguf_model_dir, ModelConfig(base=str(gguf_model_dir))) as hf, \
            LlamaCppBackend.load(tiny_gguf) as gguf:
        for example in examples:
            expected = render_example(example, hf.tokenizer, max_length=10_000)
            got = render_example(example, gguf.tokenizer, max_length=10_000)
            assert got.input_ids == expected.input_ids and got.assistant_mask == expected.assistant_mask
        assert gguf.encode(examples[0].messages[:1]) == hf.encode(examples[0].messages[:1])
        expected = measure_perplexity(hf, examples)
        got = measure_perplexity(gguf, examples)
    assert got.tokens == expected.tokens
    # llama.cpp keeps its KV cache in F16, so F32 weights agree to about 1e-4 here
    assert got.perplexity == pytest.approx(expected.perplexity, rel=1e-3)
    by_path = model_perplexity(tiny_gguf, SAMPLE_HELDOUT, home=home)
    assert by_path.nll == pytest.approx(got.nll, rel=1e-9)


def test_progress_and_cancel(hf) -> None:
    import threading

    examples = load_examples(SAMPLE_HELDOUT)[:6]
    seen = []
    measure_perplexity(hf, examples, batch_tokens=1, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(EvalCancelled):
        measure_perplexity(hf, examples, cancel=cancel)


def test_bad_input_is_a_clear_error(hf, tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="no examples"):
        measure_perplexity(hf, [])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="holds no records"):
        measure_perplexity(hf, empty)
    question_only = Example((Message("user", "hello?"),), None, "q.jsonl:1")
    with pytest.raises(EvalError, match="assistant answers to score") as error:
        measure_perplexity(hf, [question_only])
    assert "--all-tokens" in error.value.hint
    with pytest.raises(EvalError, match="stride"):
        measure_perplexity(hf, [_chat(*QA[0])], max_length=8, stride=9)
    with pytest.raises(EvalError, match="at least 2 tokens"):
        measure_perplexity(hf, [_chat(*QA[0])], max_length=1)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        measure_perplexity(hf, broken)
    assert "broken.jsonl:" in error.value.where
