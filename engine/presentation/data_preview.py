"""Examples as the model sees them, the scored tokens marked: what `tanren data preview` prints
and the workbench's Data screen shows, built once for both, in the language of the `_` it is given.

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
from engine.i18n import N_, Gettext

TRAINED, CHOSEN, REJECTED = "trained", "chosen", "rejected"
# The answers' marks as a summary names them
MARK_LABELS = {CHOSEN: N_("chosen"), REJECTED: N_("rejected")}

Piece = tuple[str, str | None]  # decoded text, and its mark (None: context, not scored)


@dataclass(frozen=True)
class Preview:
    source: str
    summary: str  # tokens, scored tokens, what max_length cut (in the language of the `_` given)
    pieces: tuple[Piece, ...]
    marks: frozenset[str]  # the marks its pieces use, for the legend


def previews(path: str | Path, format: str, tokenizer, *, max_length: int, count: int, _: Gettext,
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
        shown.append(preview(record, tokenizer, max_length=max_length, _=_))
    return shown


def preview(record: AnyExample, tokenizer, *, max_length: int, _: Gettext) -> Preview:
    if isinstance(record, PreferencePair):
        return _pair(record, tokenizer, max_length, _)
    if isinstance(record, RatedExample):
        mark = CHOSEN if record.label else REJECTED
        rendered = render_example(record.example(), tokenizer, max_length=max_length)
        summary = _tokens(rendered, _) + _(", label {label}", label=str(record.label).lower())
        return _one(record.source, summary, _pieces(tokenizer, rendered, mark))
    rendered = render_example(record, tokenizer, max_length=max_length)
    return _one(record.source, _tokens(rendered, _, trained=True), _pieces(tokenizer, rendered, TRAINED))


def _pair(pair: PreferencePair, tokenizer, max_length: int, _: Gettext) -> Preview:
    chosen, rejected = (render_example(e, tokenizer, max_length=max_length) for e in pair.conversations())
    prompt, chosen_answer = _split_answer(_pieces(tokenizer, chosen, CHOSEN))
    rejected_answer = _split_answer(_pieces(tokenizer, rejected, REJECTED))[1]
    # Both answers continue the same prompt, so it is shown once, the answers one under the other.
    pieces = (*prompt, *chosen_answer, ("\n", None), *rejected_answer)
    summary = "; ".join(f"{_(MARK_LABELS[mark])}: {_tokens(rendered, _)}"
                        for mark, rendered in ((CHOSEN, chosen), (REJECTED, rejected)))
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


def _tokens(rendered: Rendered, _: Gettext, *, trained: bool = False) -> str:
    """How many tokens, how many of them count: `trained` for SFT, scored for a preference answer."""
    tokens, counted = len(rendered.input_ids), sum(rendered.assistant_mask)
    text = _("{tokens:,} tokens, {trained:,} trained", tokens=tokens, trained=counted) if trained else \
        _("{tokens:,} tokens, {scored:,} scored", tokens=tokens, scored=counted)
    if rendered.truncated_tokens:
        text += _(", {cut:,} cut by max length", cut=rendered.truncated_tokens)
    return text
