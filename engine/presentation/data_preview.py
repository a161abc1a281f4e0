"""Examples as the model sees them, the scored tokens marked: what `tanren data preview` prints
and the workbench's Data screen shows, built once for both.

An SFT example shows its trained tokens. A preference pair shows its prompt once and then both
answers, the chosen one marked `chosen` and the rejected one `rejected`; a KTO rating shows its
completion marked as the one or the other by its label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.data.example import AnyExample, PreferencePair, RatedExample
from engine.data.hub import place
from engine.data.loading import ExampleStream
from engine.data.problems import RecordError
from engine.data.render import Rendered, render_example, trained_segments

TRAINED, CHOSEN, REJECTED = "trained", "chosen", "rejected"

Piece = tuple[str, str | None]  # decoded text, and its mark (None: context, not scored)


@dataclass(frozen=True)
class Preview:
    source: str
    summary: str  # tokens, scored tokens, what max_length cut
    pieces: tuple[Piece, ...]
    marks: frozenset[str]  # the marks its pieces use, for the legend


def previews(path: str | Path, format: str, tokenizer, *, max_length: int, count: int,
             on_skip: Callable[[str, RecordError], None] = lambda _where, _error: None) -> list[Preview]:
    """The first `count` usable records of the file; each unusable one before them goes to `on_skip`."""
    shown: list[Preview] = []
    stream = ExampleStream(path, format)
    for line, record in stream:
        if len(shown) == count:
            break
        if isinstance(record, RecordError):
            on_skip(place(stream.label, line), record)
            continue
        shown.append(preview(record, tokenizer, max_length=max_length))
    return shown


def preview(record: AnyExample, tokenizer, *, max_length: int) -> Preview:
    if isinstance(record, PreferencePair):
        return _pair(record, tokenizer, max_length)
    if isinstance(record, RatedExample):
        mark = CHOSEN if record.label else REJECTED
        rendered = render_example(record.example(), tokenizer, max_length=max_length)
        summary = _tokens(rendered, "scored") + f", label {str(record.label).lower()}"
        return _one(record.source, summary, _pieces(tokenizer, rendered, mark))
    rendered = render_example(record, tokenizer, max_length=max_length)
    return _one(record.source, _tokens(rendered, "trained"), _pieces(tokenizer, rendered, TRAINED))


def _pair(pair: PreferencePair, tokenizer, max_length: int) -> Preview:
    chosen, rejected = (render_example(e, tokenizer, max_length=max_length) for e in pair.conversations())
    prompt, chosen_answer = _split_answer(_pieces(tokenizer, chosen, CHOSEN))
    _, rejected_answer = _split_answer(_pieces(tokenizer, rejected, REJECTED))
    # Both answers continue the same prompt, so it is shown once, the answers one under the other.
    pieces = (*prompt, *chosen_answer, ("\n", None), *rejected_answer)
    summary = f"chosen: {_tokens(chosen, 'scored')}; rejected: {_tokens(rejected, 'scored')}"
    return Preview(pair.source, summary, pieces, frozenset((CHOSEN, REJECTED)))


def _one(source: str, summary: str, pieces: tuple[Piece, ...]) -> Preview:
    return Preview(source, summary, pieces, frozenset(mark for _, mark in pieces if mark))


def _pieces(tokenizer, rendered: Rendered, mark: str) -> tuple[Piece, ...]:
    return tuple((text, mark if scored else None) for text, scored in trained_segments(tokenizer, rendered))


def _split_answer(pieces: tuple[Piece, ...]) -> tuple[tuple[Piece, ...], tuple[Piece, ...]]:
    """The pieces before the scored answer, and the answer (without the context after it)."""
    scored = [i for i, (_, mark) in enumerate(pieces) if mark]
    if not scored:
        return pieces, ()  # max_length cut the whole answer; the summary says so
    return pieces[:scored[0]], pieces[scored[0]:scored[-1] + 1]


def _tokens(rendered: Rendered, scored: str) -> str:
    text = f"{len(rendered.input_ids):,} tokens, {sum(rendered.assistant_mask):,} {scored}"
    if rendered.truncated_tokens:
        text += f", {rendered.truncated_tokens:,} cut by max length"
    return text
