"""Training rows: each conversation one row (cut at max_length), each raw text record its windows.

A conversation longer than `max_length` is cut and the cut reported, because splitting it would
change what its answers answer. A text record (continued pretraining on documents) is never cut:
it becomes the windows `engine.data.windows` places, with the tokens each window predicts for
the first time labelled, so every token is trained once and an overlap is context only. Each
window is a row of its own and never crosses into another document; `training.packing` may then
put several rows into one, each still attending only to itself. Texts are tokenized in slices
(`engine.data.slices`) and rows come out one by one, so a long document never needs more than
its own ids in memory (4 bytes a token).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.data.example import Example
from engine.data.render import RENDER_BATCH, adds_bos, frame, render_examples
from engine.data.slices import TextTokens
from engine.data.windows import spans


@dataclass(frozen=True)
class Row:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the token is labelled


@dataclass
class RowCounts:
    """What the rows came to, counted while they are made."""

    rows: int = 0
    tokens: int = 0  # in the rows, context included
    cut: int = 0  # tokens of conversations cut at max_length
    untrained: int = 0  # conversations left out: the cut took every trained token
    documents: int = 0  # text records
    windows: int = 0  # the rows the text records gave


def training_rows(examples: Sequence[Example], tokenizer, *, max_length: int, stride: int | None = None,
                  assistant_only: bool = True, counts: RowCounts | None = None) -> Iterator[Row]:
    """The rows of `examples` in order; `stride` (default max_length) spaces a text's windows."""
    counts = counts if counts is not None else RowCounts()
    text_tokens, add_bos = TextTokens(tokenizer), adds_bos(tokenizer)
    conversations: list[Example] = []
    for example in examples:
        if not example.is_text:
            conversations.append(example)
            if len(conversations) == RENDER_BATCH:
                yield from _conversation_rows(conversations, tokenizer, max_length, assistant_only, counts)
                conversations = []
            continue
        yield from _conversation_rows(conversations, tokenizer, max_length, assistant_only, counts)
        conversations = []
        ids = _document_ids(example.text, text_tokens, tokenizer, add_bos)
        yield from _windows(ids, max_length, stride or max_length, counts)
    yield from _conversation_rows(conversations, tokenizer, max_length, assistant_only, counts)


def _conversation_rows(examples: list[Example], tokenizer, max_length: int, assistant_only: bool,
                       counts: RowCounts) -> Iterator[Row]:
    if not examples:
        return
    for rendered in render_examples(examples, tokenizer, max_length=max_length, assistant_only=assistant_only):
        counts.cut += rendered.truncated_tokens
        if not any(rendered.assistant_mask):  # a row without labels has no loss to average
            counts.untrained += 1
            continue
        counts.rows += 1
        counts.tokens += len(rendered.input_ids)
        yield Row(rendered.input_ids, rendered.assistant_mask)


def _document_ids(text: str, text_tokens: TextTokens, tokenizer, add_bos: bool) -> array:
    """The text's ids framed as render_example frames raw text (EOS after it, BOS where wanted)."""
    body = text_tokens.ids(text)
    before, after = frame(tokenizer, body[0] if body else None, is_text=True, add_bos=add_bos)
    ids = array("i", before)
    ids.extend(body)
    ids.extend(after)
    return ids


def _windows(ids: array, max_length: int, stride: int, counts: RowCounts) -> Iterator[Row]:
    counts.documents += 1
    for span in spans(len(ids), max_length=max_length, stride=stride):
        # The first window labels its first token too, as a text that fits is labelled whole;
        # no loss predicts a row's first token, so that changes nothing but keeps one rule.
        labelled = 0 if span.begin == 0 else span.first
        counts.rows += 1
        counts.windows += 1
        counts.tokens += span.end - span.begin
        yield Row(ids[span.begin:span.end].tolist(),
                  [0] * (labelled - span.begin) + [1] * (span.end - labelled))
