"""The loss mask covers exactly the assistant's tokens and the end-of-turn token that closes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data import Example, ensure_chat_template, render_example
from engine.data.render import PLAIN_TEMPLATE, rendered_lengths, rendered_text
from engine.errors import DataError
from engine.messages import Message
from tests.tiny_model import build_tokenizer

CONVERSATION = (
    Message("system", "丁寧に答えてください。"),
    Message("user", "日本の首都はどこですか？"),
    Message("assistant", "日本の首都は東京です。"),
    Message("user", "What is the capital of France?"),
    Message("assistant", "The capital of France is Paris."),
)


def trained_runs(tokenizer, rendered) -> list[str]:
    """The decoded text of each run of consecutive trained tokens."""
    runs: list[list[int]] = []
    previous = 0
    for token, trained in zip(rendered.input_ids, rendered.assistant_mask):
        if trained and not previous:
            runs.append([])
        if trained:
            runs[-1].append(token)
        previous = trained
    return [tokenizer.decode(run) for run in runs]


def example(*messages: Message) -> Example:
    return Example(tuple(messages), None, "test.jsonl:1")


def check_mask(tokenizer, end_of_turn: str) -> None:
    rendered = render_example(example(*CONVERSATION), tokenizer, max_length=4096)
    assert len(rendered.input_ids) == len(rendered.assistant_mask) and rendered.truncated_tokens == 0
    # Exactly the two answers, each through its end-of-turn token; no header, system or user token.
    assert trained_runs(tokenizer, rendered) == [
        f"日本の首都は東京です。{end_of_turn}", f"The capital of France is Paris.{end_of_turn}",
    ]
    full = tokenizer.decode(rendered.input_ids)
    assert full == tokenizer.apply_chat_template([m.as_dict() for m in CONVERSATION], tokenize=False)


def test_mask_on_the_tiny_chatml_model(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    check_mask(AutoTokenizer.from_pretrained(tiny_model_dir), "<|im_end|>")


@pytest.mark.real_model
def test_mask_on_the_default_model(default_model_dir: Path) -> None:
    from engine.config import ModelConfig
    from engine.models.loading import load_tokenizer

    tokenizer = load_tokenizer(default_model_dir, ModelConfig())
    check_mask(tokenizer, "<|im_end|>")
    # SmolLM2's template adds its default system prompt; it is context, never trained.
    rendered = render_example(example(*CONVERSATION[1:3]), tokenizer, max_length=4096)
    assert "SmolLM" in tokenizer.decode(rendered.input_ids)
    assert trained_runs(tokenizer, rendered) == ["日本の首都は東京です。<|im_end|>"]
    assert tokenizer.decode(rendered.input_ids[-1:]) == "\n" and rendered.assistant_mask[-1] == 0


def test_raw_text_trains_on_every_token_and_ends_with_eos() -> None:
    tokenizer = build_tokenizer()
    rendered = render_example(Example((), "吾輩は猫である。", "t.jsonl:1"), tokenizer, max_length=512)
    assert rendered.input_ids[-1] == tokenizer.eos_token_id and set(rendered.assistant_mask) == {1}
    assert tokenizer.decode(rendered.input_ids[:-1]) == "吾輩は猫である。"


def test_assistant_only_false_trains_everything() -> None:
    rendered = render_example(example(*CONVERSATION), build_tokenizer(), max_length=512, assistant_only=False)
    assert set(rendered.assistant_mask) == {1}


def test_opening_assistant_turn_is_context_not_trained() -> None:
    tokenizer = build_tokenizer()
    messages = (Message("assistant", "いらっしゃいませ。"), Message("user", "水をください。"), Message("assistant", "どうぞ。"))
    assert trained_runs(tokenizer, render_example(example(*messages), tokenizer, max_length=512)) == ["どうぞ。<|im_end|>"]


def test_bos_is_never_doubled_and_added_where_the_template_omits_it() -> None:
    tokenizer = build_tokenizer()
    tokenizer.add_bos_token = True  # Llama-style: encoding adds BOS (here <|im_start|>) in front
    bos = tokenizer.bos_token_id
    assert tokenizer("a")["input_ids"][0] == bos
    chat = render_example(example(*CONVERSATION), tokenizer, max_length=512)
    assert chat.input_ids[:2] != [bos, bos] and chat.input_ids[0] == bos  # the template already starts with it
    text = render_example(Example((), "hello", "t:1"), tokenizer, max_length=512)
    assert text.input_ids[0] == bos and text.input_ids[1] != bos
    tokenizer.chat_template = PLAIN_TEMPLATE  # a template that does not write BOS
    plain = render_example(example(*CONVERSATION[1:3]), tokenizer, max_length=512)
    assert plain.input_ids[0] == bos and plain.input_ids[1] != bos and plain.assistant_mask[0] == 0


def test_plain_template_for_bases_without_one() -> None:
    tokenizer = build_tokenizer()
    tokenizer.chat_template = None
    ensure_chat_template(tokenizer)
    assert tokenizer.chat_template == PLAIN_TEMPLATE
    rendered = render_example(example(*CONVERSATION), tokenizer, max_length=512)
    text = tokenizer.decode(rendered.input_ids)
    assert text.startswith("丁寧に答えてください。\n\n### User:\n日本の首都はどこですか？\n\n### Assistant:\n")
    assert trained_runs(tokenizer, rendered) == ["日本の首都は東京です。<|im_end|>", "The capital of France is Paris.<|im_end|>"]
    tokenizer.chat_template = "{{ 'custom' }}"
    ensure_chat_template(tokenizer)
    assert tokenizer.chat_template == "{{ 'custom' }}"  # an existing template is kept


def test_truncation_reports_the_cut() -> None:
    tokenizer = build_tokenizer()
    full = render_example(example(*CONVERSATION), tokenizer, max_length=4096)
    cut = render_example(example(*CONVERSATION), tokenizer, max_length=20)
    assert cut.input_ids == full.input_ids[:20] and cut.assistant_mask == full.assistant_mask[:20]
    assert cut.truncated_tokens == len(full.input_ids) - 20


def test_templates_that_rewrite_history_are_refused_clearly() -> None:
    tokenizer = build_tokenizer()
    # Renders only the last turn: a prefix of the conversation is not a prefix of the rendering.
    tokenizer.chat_template = "{{ messages[-1]['role'] + ': ' + messages[-1]['content'] }}"
    with pytest.raises(DataError, match="cannot be told apart") as raised:
        render_example(example(*CONVERSATION), tokenizer, max_length=512)
    assert raised.value.where == "test.jsonl:1" and "assistant_only_loss" in raised.value.hint
    tokenizer.chat_template = "{{ raise_exception('Conversation roles must alternate') }}"
    with pytest.raises(DataError, match="roles must alternate"):
        render_example(example(*CONVERSATION), tokenizer, max_length=512)


@pytest.mark.parametrize("add_bos", [False, True])
def test_batch_lengths_match_rendering_one_by_one(add_bos: bool) -> None:
    tokenizer = build_tokenizer()
    tokenizer.add_bos_token = add_bos
    examples = [example(*CONVERSATION), example(*CONVERSATION[1:3]), Example((), "吾輩は猫である。" * 5, "t:2")]
    for template in (tokenizer.chat_template, PLAIN_TEMPLATE):
        tokenizer.chat_template = template
        texts = [rendered_text(e, tokenizer) for e in examples]
        expected = [len(render_example(e, tokenizer, max_length=10**6).input_ids) for e in examples]
        assert rendered_lengths(examples, texts, tokenizer) == expected
