"""Where the windows over a long token sequence start and end: one rule for training and perplexity.

A sequence longer than `max_length` is covered by windows of at most `max_length` tokens. Each
window predicts the tokens after its start that no earlier window predicted, so every token but
the first (nothing comes before it) is predicted exactly once. The next window starts `stride`
tokens after the previous one, or earlier where that would leave a token unpredicted: a window's
first token is only context, so at stride = max_length consecutive windows share one token.
A smaller stride gives each prediction more context; the overlap is context, never predicted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    begin: int  # the window holds tokens [begin, end)
    end: int
    first: int  # it predicts tokens [first, end); those before `first` are context only


def spans(length: int, *, max_length: int, stride: int) -> Iterator[Span]:
    """The windows over a sequence of `length` tokens, in order (none for fewer than 2 tokens)."""
    if max_length < 2 or stride < 1:
        raise ValueError(f"windows need max_length >= 2 and stride >= 1, not {max_length} and {stride}")
    begin, predicted_to = 0, 1
    while predicted_to < length:
        end = min(begin + max_length, length)
        yield Span(begin, end, predicted_to)
        predicted_to, begin = end, min(begin + stride, end - 1)


def window_count(length: int, *, max_length: int, stride: int) -> int:
    """How many windows `spans` gives, without listing them (the data check counts millions)."""
    if length <= max_length:
        return 1
    step = min(stride, max_length - 1)
    return 1 + -(-(length - max_length) // step)
