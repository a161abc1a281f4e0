"""ROUGE: Japanese-aware tokens, values computed by hand for English and Japanese pairs,
references from data, and batched greedy answers equal to the chat loop's."""

from __future__ import annotations


import pytest

from engine.chat.backend import ChatBackend
from engine.data import SAMPLE_HELDOUT, Example, load_examples
from engine.messages import Message
from evals.errors import EvalError
from evals.rouge import RougeTokenizer, measure_rouge, references, rouge_scores

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tokens_are_cjk_characters_and_whole_latin_words() -> None:
    tokenize = RougeTokenizer().tokenize
    assert tokenize("鉄の元素記号はFeです。") == ["鉄", "の", "元", "素", "記", "号", "は", "fe", "で", "す"]
    assert tokenize("The Cat-sat, 3.14!") == ["the", "cat", "sat", "3", "14"]
    # full-width letters and digits and half-width katakana are the same words as their usual forms
    assert tokenize("ＦＥは３７７６ｍ、ｺｰﾋｰ") == ["fe", "は", "3776m", "コ", "ー", "ヒ", "ー"]
    assert tokenize("佐々木さん・コーヒー") == ["佐", "々", "木", "さ", "ん", "コ", "ー", "ヒ", "ー"]
    assert tokenize("「」。、！？") == []


@pytest.mark.parametrize(("prediction", "reference", "expected"), [
    # the, cat, on, the, mat of 6 tokens each; bigrams: the cat, on the, the mat of 5; LCS: the cat on the mat
    ("the cat lay on the mat", "The cat sat on the mat", (5 / 6, 3 / 5, 5 / 6)),
    # the same 10 characters; bigrams 日本 本の の首 首都 東京 です of 9; LCS 日本の首都です (7)
    ("日本の首都は東京です。", "東京は日本の首都です。", (1.0, 6 / 9, 7 / 10)),
    # 6 of 6 predicted tokens in the 10 of the reference: P 1, R 0.6; bigrams 5 of 5 in 9
    ("元素記号はＦｅ。", "鉄の元素記号はFeです。", (0.75, 2 * (5 / 9) / (1 + 5 / 9), 0.75)),
    ("Paris.", "パリです。", (0.0, 0.0, 0.0)),
])
def test_rouge_values_computed_by_hand(prediction: str, reference: str, expected: tuple[float, ...]) -> None:
    result = rouge_scores([prediction], [reference])
    assert (result.rouge1, result.rouge2, result.rougeL) == pytest.approx(expected)
    assert result.examples == 1


def test_scores_are_averaged_over_examples() -> None:
    result = rouge_scores(["the cat lay on the mat", "日本の首都は東京です。"],
                          ["The cat sat on the mat", "東京は日本の首都です。"])
    assert result.rouge1 == pytest.approx((5 / 6 + 1.0) / 2)
    assert result.rougeL == pytest.approx((5 / 6 + 7 / 10) / 2)


def test_references_are_the_last_answer_after_the_conversation_before_it() -> None:
    conversation = (Message("system", "丁寧に。"), Message("user", "こんにちは"), Message("assistant", "こんにちは！"),
                    Message("user", "日本の首都は？"), Message("assistant", "東京です。"))
    [reference] = references([Example(conversation, None, "chat.jsonl:3")])
    assert reference.prompt == conversation[:4] and reference.answer == "東京です。"


@pytest.mark.parametrize(("example", "message"), [
    (Example((), "just some text", "text.jsonl:2"), "raw text"),
    (Example((Message("user", "hello?"),), None, "chat.jsonl:5"), "no assistant turn"),
    (Example((Message("user", "hello?"), Message("assistant", "。")), None, "chat.jsonl:7"), "no words"),
])
def test_missing_references_name_the_example(example: Example, message: str) -> None:
    with pytest.raises(EvalError, match=message) as error:
        references([example])
    assert error.value.where == example.source


def test_no_examples_is_an_error() -> None:
    with pytest.raises(EvalError, match="no examples"):
        references([])


def test_batched_greedy_answers_are_the_chat_loops_answers(hf) -> None:
    # prompts of different lengths, so the batch is left-padded
    prompts = [ref.prompt for ref in references(load_examples(SAMPLE_HELDOUT)[:6])]
    for adapter in (None, "tuned"):
        batched = hf.greedy_answers(prompts, max_new_tokens=12, adapter=adapter)
        one_by_one = ChatBackend.greedy_answers(hf, prompts, max_new_tokens=12, adapter=adapter)
        assert batched == one_by_one
    assert len(set(hf.greedy_answers(prompts, max_new_tokens=12, adapter="tuned"))) > 1  # not all alike


def test_measure_rouge_compares_each_answer_with_its_reference(hf) -> None:
    prompts = [ref.prompt for ref in references(load_examples(SAMPLE_HELDOUT)[:8])]
    answers = ChatBackend.greedy_answers(hf, prompts, max_new_tokens=8, adapter="tuned")
    # the adapter's own answers as references (those with words): it scores 1, the base does not
    pairs = [(p, a) for p, a in zip(prompts, answers) if RougeTokenizer().tokenize(a)]
    assert pairs
    examples = [Example((*p, Message("assistant", a)), None, f"self.jsonl:{i}") for i, (p, a) in enumerate(pairs, 1)]
    seen = []
    tuned = measure_rouge(hf, examples, adapter="tuned", max_new_tokens=8, batch_size=3,
                          progress=lambda done, total: seen.append((done, total)))
    assert (tuned.rouge1, tuned.rougeL, tuned.examples) == (pytest.approx(1.0), pytest.approx(1.0), len(pairs))
    assert seen[-1] == (len(pairs), len(pairs)) and len(seen) == -(-len(pairs) // 3)
    base = measure_rouge(hf, examples, max_new_tokens=8)
    assert base.rouge1 < 1.0
