"""Long text records become training windows (continued pretraining); conversations stay as they were;
the rows land in an Arrow cache that a resume reuses; long texts are tokenized in exact slices."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import RunConfig, apply_overrides
from engine.data import load_examples, render_example, render_examples
from engine.data.rows import RowCounts, training_rows
from engine.data.slices import TextTokens, slices
from engine.data.windows import window_count
from engine.events import EventLog, Log
from engine.train.dataset import build_datasets
from tests.data_files import QA, chat, write_jsonl
from tests.spies import record_calls
from tests.tiny_model import build_sentencepiece_tokenizer, build_tokenizer

DOCUMENT = "".join(f"第{i}章。日本の首都は東京です。 The capital of Japan is Tokyo, line {i}.\n" for i in range(40))


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def _texts(tmp_path: Path, *texts: str):
    return load_examples(write_jsonl(tmp_path / "texts.jsonl", [{"text": text} for text in texts]))


def _whole(example, tokenizer) -> list[int]:
    """The document's ids as render_example makes them uncut."""
    return render_example(example, tokenizer, max_length=1 << 30).input_ids


@pytest.mark.parametrize("stride", [None, 48, 17])
def test_a_text_gives_the_windows_its_length_implies_and_labels_every_token_once(tmp_path, tokenizer, stride) -> None:
    (example,) = _texts(tmp_path, DOCUMENT)
    ids, window = _whole(example, tokenizer), 64
    rows = list(training_rows([example], tokenizer, max_length=window, stride=stride))
    # Without overlap consecutive windows share one token (the next one's context), so a window
    # moves on by window - 1; with a stride, by the stride.
    step = stride or window - 1
    assert len(rows) == 1 + -(-(len(ids) - window) // step) == window_count(len(ids), max_length=window,
                                                                          stride=stride or window) > 10
    labelled, predicted = [0] * len(ids), [0] * len(ids)
    for index, row in enumerate(rows):
        begin = index * step
        assert row.input_ids == ids[begin:begin + window] and len(row.input_ids) <= window
        for offset, mark in enumerate(row.assistant_masks):
            labelled[begin + offset] += mark
            predicted[begin + offset] += mark and offset > 0  # a row's first token is never a target
    assert labelled == [1] * len(ids)
    assert predicted == [0] + [1] * (len(ids) - 1)  # all but the document's first, each exactly once


def test_windows_never_cross_documents(tmp_path, tokenizer) -> None:
    examples = _texts(tmp_path, DOCUMENT, "短い文書です。", DOCUMENT[::-1])
    counts = RowCounts()
    rows = list(training_rows(examples, tokenizer, max_length=64, counts=counts))
    documents = [_whole(example, tokenizer) for example in examples]
    at = 0
    for ids in documents:
        mine = rows[at:at + window_count(len(ids), max_length=64, stride=64)]
        assert [t for row in mine for t in row.input_ids[bool(row is not mine[0]):]] == ids  # its windows, in order
        at += len(mine)
    assert at == len(rows) == counts.windows and counts.documents == 3 and counts.cut == 0


def test_conversations_are_rendered_as_before_cut_and_reported(tmp_path, tokenizer) -> None:
    records = [chat(*pair) for pair in QA] + [chat("長い質問です。" * 30, "答え。"), chat("質問", "長い答えです。" * 30)]
    examples = load_examples(write_jsonl(tmp_path / "chat.jsonl", records))
    counts = RowCounts()
    rows = list(training_rows(examples, tokenizer, max_length=48, counts=counts))
    expected = [r for r in render_examples(examples, tokenizer, max_length=48) if any(r.assistant_mask)]
    assert [(row.input_ids, row.assistant_masks) for row in rows] == [(r.input_ids, r.assistant_mask) for r in expected]
    cut = [r.truncated_tokens for r in render_examples(examples, tokenizer, max_length=48)]
    assert counts.untrained == 1 and counts.cut == sum(cut) > 0 and counts.windows == counts.documents == 0


def test_sliced_tokenizing_is_exact_and_a_tokenizer_it_would_change_gets_the_text_whole(tokenizer) -> None:
    text = DOCUMENT * 30
    assert len(list(slices(text))) > 10
    assert list(TextTokens(tokenizer).ids(text)) == tokenizer(text, add_special_tokens=False)["input_ids"]
    sentencepiece = build_sentencepiece_tokenizer()  # prepends "▁" to every string: slices would differ
    whole = TextTokens(sentencepiece)
    assert whole.backend is None
    assert list(whole.ids(text)) == sentencepiece(text, add_special_tokens=False)["input_ids"]


def _config(data: Path, *more: str) -> RunConfig:
    return apply_overrides(RunConfig(), [f"data.path={data}", "data.split=0.9,0.1,0", "data.max_length=64", *more])


def _tokenizer_calls(monkeypatch, tokenizer) -> list:
    calls = record_calls(monkeypatch, type(tokenizer), "__call__", lambda *_: 1)
    calls += record_calls(monkeypatch, TextTokens, "batches", lambda *_: 1)
    return calls


def test_a_resume_reads_the_rows_from_the_run_s_arrow_cache_without_tokenizing(tmp_path, tokenizer, monkeypatch) -> None:
    data = write_jsonl(tmp_path / "docs.jsonl", [{"text": f"{i}: {DOCUMENT}"} for i in range(10)])
    config, cache = _config(data), tmp_path / "run" / "dataset"
    calls = _tokenizer_calls(monkeypatch, tokenizer)
    first = build_datasets(config, tokenizer, EventLog(tmp_path / "e1.jsonl"), cache=cache)
    assert calls and (cache / "train.arrow").is_file() and first.train.cache_files  # on disk, memory-mapped
    calls.clear()
    events = EventLog(tmp_path / "e2.jsonl")
    again = build_datasets(config, tokenizer, events, cache=cache)
    assert calls == []  # nothing tokenized again
    assert again.train[:] == first.train[:] and again.validation[:] == first.validation[:]  # the same windows, in order
    assert again.train_tokens == first.train_tokens
    logs = [e.message for e in events.read() if isinstance(e, Log)]
    assert any("reused" in m for m in logs)
    assert any(f"9 text records became {len(first.train)} windows of at most 64 tokens" in m for m in logs)
    write_jsonl(data, [{"text": f"{i}: {DOCUMENT}"} for i in range(12)])  # the data changed: built anew
    assert len(build_datasets(config, tokenizer, EventLog(tmp_path / "e3.jsonl"), cache=cache).train) > len(first.train)
    assert calls
