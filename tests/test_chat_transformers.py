"""The transformers chat backend on the tiny model: streaming, cancel, stop tokens, adapters."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from engine.chat.backend import ChatTarget, text_deltas, whole_characters
from engine.chat.compare import compare
from engine.chat.transformers_backend import TransformersBackend
from engine.config import GenerationConfig, ModelConfig
from engine.errors import TanrenError
from engine.messages import Message
from tests.tiny_model import make_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUESTION = [Message("user", "What is the capital of France?")]
JAPANESE = [
    Message("user", "こんにちは、元気ですか？"),
    Message("assistant", "はい、元気です。ありがとうございます。"),
    Message("user", "日本の首都はどこですか？"),
]
SAMPLED = GenerationConfig(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_new_tokens=24, seed=3)
GREEDY = GenerationConfig(temperature=0, repetition_penalty=1.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {name: make_adapter(tiny_model_dir, root / name, seed) for seed, name in enumerate(["run.a", "run-b"])}


@pytest.fixture
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend.load(tiny_model_dir, ModelConfig(base=str(tiny_model_dir)))


def test_streams_pieces_that_add_up_to_the_answer(backend: TransformersBackend) -> None:
    pieces = list(backend.stream_chat(QUESTION, SAMPLED))
    stats = backend.last_stats
    assert len(pieces) > 1 and all(pieces)
    assert stats.new_tokens >= len(pieces)
    assert stats.prompt_tokens == backend.count_tokens(QUESTION)
    assert stats.stop_reason in ("stop", "length") and stats.seed == 3
    assert stats.ttft_s > 0 and stats.tokens_per_s > 0
    assert pieces == list(backend.stream_chat(QUESTION, SAMPLED))  # same seed, same answer


def test_greedy_answer_is_what_generate_gives(backend: TransformersBackend) -> None:
    """The hand-written decode loop (KV cache, stop tokens) reproduces transformers' generate."""
    import torch

    for messages in (QUESTION, JAPANESE):
        ids = backend.encode(messages)
        output = backend.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=GREEDY.max_new_tokens,
                                        eos_token_id=sorted(backend.stop_ids))
        expected = whole_characters(backend.decode([t for t in output[0, len(ids):].tolist() if t not in backend.stop_ids]))
        assert "".join(backend.stream_chat(messages, GREEDY)) == expected


def test_cancel_from_another_thread_stops_between_tokens(backend: TransformersBackend) -> None:
    cancel, first_piece, pieces = threading.Event(), threading.Event(), []

    def worker() -> None:  # how the TUI runs it: a worker thread, Esc sets the event
        for piece in backend.stream_chat(QUESTION, GenerationConfig(max_new_tokens=400, seed=1), cancel):
            pieces.append(piece)
            first_piece.set()
            cancel.wait()

    thread = threading.Thread(target=worker)
    thread.start()
    assert first_piece.wait(30)
    cancel.set()
    thread.join(30)
    assert not thread.is_alive()
    assert backend.last_stats.stop_reason == "cancelled"
    assert backend.last_stats.new_tokens < 10
    assert "".join(backend.stream_chat(QUESTION, SAMPLED))  # the backend is free again


def test_closing_the_generator_cancels_and_frees_the_backend(backend: TransformersBackend) -> None:
    stream = backend.stream_chat(QUESTION, GenerationConfig(max_new_tokens=400, seed=1))
    next(stream)
    stream.close()
    assert backend.last_stats.stop_reason == "cancelled" and backend.last_stats.new_tokens < 5
    done = threading.Event()
    threading.Thread(target=lambda: (list(backend.stream_chat(QUESTION, SAMPLED)), done.set()), daemon=True).start()
    assert done.wait(30), "the closed stream kept the backend busy"


def test_answer_ends_before_a_stop_token(backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    ids = backend.encode(QUESTION)
    full = backend.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12,
                                  eos_token_id=sorted(backend.stop_ids))[0, len(ids):].tolist()
    assert len(full) == 12
    stop_at = full.index(full[5])
    monkeypatch.setattr(backend, "stop_ids", backend.stop_ids | {full[5]})
    assert "".join(backend.stream_chat(QUESTION, GREEDY)) == whole_characters(backend.decode(full[:stop_at]))
    assert backend.last_stats.stop_reason == "stop"
    assert backend.last_stats.new_tokens == stop_at


def test_stop_ids_are_the_eos_and_end_of_turn_tokens(backend: TransformersBackend) -> None:
    vocab = backend.tokenizer.get_vocab()
    assert backend.stop_ids == {vocab["<|im_end|>"], vocab["<|endoftext|>"]}


def test_prompt_is_the_chat_template_with_one_bos(backend: TransformersBackend) -> None:
    ids = backend.encode(QUESTION)
    expected = backend.tokenizer.apply_chat_template([m.as_dict() for m in QUESTION], add_generation_prompt=True,
                                                     tokenize=True, return_dict=False)
    assert ids == list(expected)
    bos = backend.tokenizer.bos_token_id
    assert ids[0] == bos and ids[1] != bos


def test_japanese_streams_whole_characters(backend: TransformersBackend) -> None:
    text = "日本の首都は東京です。こんにちは、元気ですか？🙂"
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    splits = sum(backend.decode(ids[:k]).endswith("\ufffd") for k in range(1, len(ids)))
    assert splits > 0  # some tokens end inside a character, so holding back matters
    pieces = list(text_deltas(backend.decode, iter(ids)))
    assert "".join(pieces) == text and not any("\ufffd" in piece for piece in pieces)


def test_an_answer_cut_inside_a_character_ends_with_the_last_whole_one(backend: TransformersBackend) -> None:
    text = "日本の首都は東京です。🙂"
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = max(k for k in range(1, len(ids)) if backend.decode(ids[:k]).endswith("\ufffd"))
    answer = "".join(text_deltas(backend.decode, iter(ids[:cut])))
    assert answer and text.startswith(answer) and "\ufffd" not in answer


def test_japanese_conversation(backend: TransformersBackend) -> None:
    rendered = backend.tokenizer.decode(backend.encode(JAPANESE))
    assert rendered.endswith("<|im_start|>user\n日本の首都はどこですか？<|im_end|>\n<|im_start|>assistant\n")
    assert "<|im_start|>assistant\nはい、元気です。ありがとうございます。<|im_end|>" in rendered
    answer = "".join(backend.stream_chat(JAPANESE, GREEDY))
    assert backend.last_stats.prompt_tokens == len(backend.encode(JAPANESE)) and answer


def test_long_history_keeps_the_system_prompt_and_latest_turns(tiny_model_dir: Path) -> None:
    backend = TransformersBackend.load(tiny_model_dir, ModelConfig(base=str(tiny_model_dir)), max_context=160)
    history = []
    for i in range(12):
        history += [Message("user", f"question {i}: the capital of Japan?"), Message("assistant", f"answer {i}: Tokyo")]
    history.append(Message("user", "and of France?"))
    params = GenerationConfig(max_new_tokens=20, seed=0, system_prompt="Answer briefly.")
    list(backend.stream_chat(history, params))
    stats = backend.last_stats
    assert stats.dropped_messages > 0 and stats.dropped_messages % 2 == 0  # whole turns
    assert stats.prompt_tokens <= 160 - 20
    kept = [Message("system", "Answer briefly."), *history[stats.dropped_messages:]]
    assert stats.prompt_tokens == backend.count_tokens(kept)
    with pytest.raises(TanrenError, match="latest message"):
        list(backend.stream_chat([Message("user", "Tokyo " * 200)], params))


def test_adapters_hot_swap_on_one_base(backend: TransformersBackend, adapters: dict[str, Path]) -> None:
    base_logits = backend.prompt_logits(QUESTION)
    base_answer = "".join(backend.stream_chat(QUESTION, GREEDY))
    base_model = backend.model
    for name, folder in adapters.items():
        backend.add_adapter(name, folder)
    assert backend.model.base_model.model is base_model  # wrapped, not reloaded

    a, b = (backend.prompt_logits(QUESTION, adapter=name) for name in adapters)
    assert not np.allclose(a, base_logits) and not np.allclose(a, b)
    assert np.array_equal(backend.prompt_logits(QUESTION), base_logits)  # back to the base, bit for bit
    assert np.array_equal(backend.prompt_logits(QUESTION, adapter="run.a"), a)
    assert np.array_equal(backend.prompt_logits(QUESTION), base_logits)

    base, adapted = ChatTarget("base", backend), ChatTarget("run.a", backend, "run.a")
    result = compare(base, adapted, QUESTION, GREEDY)
    assert result.first.text == base_answer
    assert result.parted_at is not None and result.second.text != base_answer
    sampled = GenerationConfig(max_new_tokens=24)  # no seed: compare picks one for both
    assert compare(adapted, adapted, QUESTION, sampled).parted_at is None


def test_a_model_without_chat_template_is_a_clear_error(tiny_model_dir: Path) -> None:
    backend = TransformersBackend.load(tiny_model_dir, ModelConfig(base=str(tiny_model_dir)))
    backend.tokenizer.chat_template = None
    backend = TransformersBackend(backend.model, backend.tokenizer, name="plain")
    with pytest.raises(TanrenError, match="plain has no chat template"):
        list(backend.stream_chat(QUESTION, GREEDY))


def test_an_adapter_chats_with_the_template_it_was_trained_with(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A base without a chat template is trained with the plain one, which training saves beside
    the adapter: chat with the adapter uses it, while the base alone still has none."""
    import shutil

    from transformers import AutoTokenizer

    from engine.data.render import PLAIN_TEMPLATE

    base = Path(shutil.copytree(tiny_model_dir, tmp_path / "base"))
    for name in ("chat_template.jinja", "chat_template.json"):
        (base / name).unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(base)
    adapter = make_adapter(base, tmp_path / "run" / "adapter", seed=1)
    tokenizer.chat_template = PLAIN_TEMPLATE
    tokenizer.save_pretrained(adapter)

    backend = TransformersBackend.load(base, ModelConfig(base=str(base)), adapters={"run": adapter})
    list(backend.stream_chat(QUESTION, GREEDY, adapter="run"))
    assert backend.last_stats.new_tokens > 0  # (the random model's bytes need not make whole characters)
    expected = tokenizer.apply_chat_template([m.as_dict() for m in QUESTION], add_generation_prompt=True,
                                             tokenize=False)
    assert expected.startswith("### User:\n")
    assert backend.encode(QUESTION, "run") == tokenizer(expected, add_special_tokens=False)["input_ids"]
    assert backend.last_stats.prompt_tokens == ChatTarget("run", backend, "run").count_tokens(QUESTION)
    with pytest.raises(TanrenError, match="has no chat template"):
        list(backend.stream_chat(QUESTION, GREEDY))


def test_adapter_errors_are_clear(backend: TransformersBackend, adapters: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TanrenError, match="not loaded"):
        list(backend.stream_chat(QUESTION, GREEDY, adapter="nope"))
    with pytest.raises(TanrenError, match="adapter_config.json"):
        backend.add_adapter("empty", tmp_path)
    backend.add_adapter("run.a", adapters["run.a"])
    with pytest.raises(TanrenError, match="already loaded"):
        backend.add_adapter("run.a", adapters["run.a"])

