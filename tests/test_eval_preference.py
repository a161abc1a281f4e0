"""The preference metric on the tiny model: accuracy and margin against log-probabilities computed
directly with transformers, with an adapter, over the window, and bad input."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from engine.data import PreferencePair, load_records
from engine.data.bundled import SAMPLE_PREFERENCE
from engine.messages import Message
from evals.errors import EvalCancelled, EvalError
from evals.preference import measure_preference

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYSTEM = Message("system", "丁寧に答えてください。")
PAIRS = [
    PreferencePair((Message("user", "What is the capital of France?"),), "The capital of France is Paris.",
                   "Lyon.", "pairs.jsonl:1"),
    PreferencePair((Message("user", "日本の首都はどこですか？"),), "日本の首都は東京です。", "大阪です。", "pairs.jsonl:2"),
    PreferencePair((SYSTEM, Message("user", "こんにちは、元気ですか？"), Message("assistant", "はい、元気です。"),
                    Message("user", "What is the answer?")), "It is forty-two.", "It is forty-three.", "pairs.jsonl:3"),
]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


def answer_logprob(model, tokenizer, prompt: tuple[Message, ...], answer: str) -> float:
    """log p(answer and its end-of-turn token | prompt), from one plain forward pass over the
    prompt as the chat template ends it for generation ("<|im_start|>assistant\\n") and the answer."""
    import torch

    text = tokenizer.apply_chat_template([m.as_dict() for m in prompt], add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), -1)
    return sum(float(logprobs[len(prompt_ids) + i - 1, token]) for i, token in enumerate(answer_ids))


def test_accuracy_and_margin_are_those_of_the_answers_log_probabilities(hf, model) -> None:
    margins = [answer_logprob(model, hf.tokenizer, p.prompt, p.chosen)
               - answer_logprob(model, hf.tokenizer, p.prompt, p.rejected) for p in PAIRS]
    result = measure_preference(hf, PAIRS)
    assert (result.pairs, result.skipped) == (3, 0)
    assert result.accuracy == pytest.approx(sum(m > 0 for m in margins) / 3)
    assert result.margin == pytest.approx(math.fsum(margins) / 3, rel=1e-6)
    # one pair at a time: the same numbers
    alone = [measure_preference(hf, [p], batch_tokens=1) for p in PAIRS]
    assert [r.margin for r in alone] == pytest.approx(margins, rel=1e-6)
    assert [r.accuracy for r in alone] == [float(m > 0) for m in margins]


def test_the_adapter_is_measured_on_the_same_pairs(hf) -> None:
    _, pairs = load_records(SAMPLE_PREFERENCE)
    base = measure_preference(hf, pairs[:10])
    tuned = measure_preference(hf, pairs[:10], adapter="tuned")
    assert base.pairs == tuned.pairs == 10 and tuned.margin != pytest.approx(base.margin, rel=1e-4)
    assert 0 <= base.accuracy <= 1 and 0 <= tuned.accuracy <= 1


def test_pairs_longer_than_the_window_are_left_out_and_counted(hf) -> None:
    long_prompt = (Message("user", "The capital of France is Paris. " * 20),)
    pairs = [*PAIRS[:2], PreferencePair(long_prompt, "Yes.", "No.", "pairs.jsonl:4")]
    result = measure_preference(hf, pairs, max_length=64)
    assert (result.pairs, result.skipped) == (2, 1)
    assert result.margin == pytest.approx(measure_preference(hf, PAIRS[:2]).margin, rel=1e-9)
    with pytest.raises(EvalError, match="none of the 1 pairs fits the window of 64 tokens"):
        measure_preference(hf, pairs[2:], max_length=64)


def test_progress_cancel_and_no_pairs(hf) -> None:
    seen = []
    measure_preference(hf, PAIRS, batch_tokens=1, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]  # two answers a pair
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(EvalCancelled):
        measure_preference(hf, PAIRS, cancel=cancel)
    with pytest.raises(EvalError, match="no preference pairs") as error:
        measure_preference(hf, [])
    assert "--data" in error.value.hint
