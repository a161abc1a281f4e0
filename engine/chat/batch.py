"""Several answers decoded together, one model step for all of them (the server's batches).

Each answer keeps what makes it the answer a lone request would get: its own sampler and seed,
its own stop set, token limit and cancel event, and its own text stream. Only the model step is
shared. A finished or cancelled answer leaves the batch before the next step, and new answers
may join it there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.chat.backend import ChatBackend, Clock, GenerationStats, TextStream, next_token
from engine.chat.sampling import Sampler, fresh_seed
from engine.config import GenerationConfig


@dataclass
class BatchRow:
    """One answer to decode in a batch, and where its text and its end go."""

    prompt_ids: list[int]
    params: GenerationConfig
    cancel: threading.Event
    on_delta: Callable[[str], None]
    on_end: Callable[[GenerationStats], None]
    started: float = field(default_factory=time.perf_counter)  # when it was asked for: its clock starts there


@dataclass
class _Answer:
    row: BatchRow
    sampler: Sampler
    clock: Clock
    text: TextStream
    seed: int
    done: bool = False

    def end(self) -> None:
        self.done = True
        if rest := self.text.finish():
            self.row.on_delta(rest)
        self.row.on_end(self.clock.stats(prompt_tokens=len(self.row.prompt_ids), seed=self.seed))


def answer_batch(backend: ChatBackend, rows: Sequence[BatchRow], adapter: str | None,
                 more: Callable[[int], list[BatchRow]] = lambda free: [], max_rows: int = 1) -> None:
    """Decode every row's answer, side by side, until each has ended (stop, length or cancel).

    Between two steps, ended rows leave the batch, and where the backend can add rows, `more(n)`
    may hand up to n new ones (at most `max_rows` in all), which join it: continuous batching.
    """
    backend.check_adapter(adapter)
    answers = [_answer(backend, row) for row in rows]
    with backend._busy, backend._batch_decoding([row.prompt_ids for row in rows], adapter) as decoder:
        logits = decoder.logits
        while answers:
            fed = [_step(backend, answer, logits[index]) for index, answer in enumerate(answers)]
            going = [index for index, answer in enumerate(answers) if not answer.done]
            decoder.keep(going)
            answers = [answers[index] for index in going]
            logits = decoder.advance([fed[index] for index in going]) if answers else None
            joining = more(max(max_rows - len(answers), 0)) if decoder.join is not None else []
            if joining:
                joined = decoder.join([row.prompt_ids for row in joining])
                answers += [_answer(backend, row) for row in joining]
                logits = joined if logits is None else np.concatenate([logits, joined])


def _answer(backend: ChatBackend, row: BatchRow) -> _Answer:
    seed = row.params.seed if row.params.seed is not None else fresh_seed()
    return _Answer(row, Sampler(row.params, row.prompt_ids, seed), Clock(row.started), TextStream(backend.decode), seed)


def _step(backend: ChatBackend, answer: _Answer, logits) -> int:
    """The token to feed this row next; an answer that ends here is ended (and feeds a dummy)."""
    if answer.done:
        return 0
    if answer.row.cancel.is_set():
        answer.end()  # the clock's reason stays "cancelled"
        return 0
    token = next_token(answer.sampler, answer.clock, logits, backend.stop_ids)
    if token is None:
        answer.end()
        return 0
    if delta := answer.text.feed(token):
        answer.row.on_delta(delta)
    if answer.clock.tokens >= answer.row.params.max_new_tokens:
        answer.clock.reason = "length"
        answer.end()
    return token
