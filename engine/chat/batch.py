"""Several answers decoded together, one model step for all of them (the server's batches).

Each answer keeps what makes it the answer a lone request would get: its own sampler and seed,
its own stop set, token limit and cancel event, and its own text stream. Only the model step is
shared. A finished or cancelled answer leaves the batch's bookkeeping at once (its stats are
final); its row keeps stepping, ignored, until the batch ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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


def answer_batch(backend: ChatBackend, rows: Sequence[BatchRow], adapter: str | None) -> None:
    """Decode every row's answer, side by side, until each has ended (stop, length or cancel)."""
    backend.check_adapter(adapter)
    answers = []
    for row in rows:
        seed = row.params.seed if row.params.seed is not None else fresh_seed()
        answers.append(_Answer(row, Sampler(row.params, row.prompt_ids, seed), Clock(row.started),
                               TextStream(backend.decode), seed))
    with backend._busy, backend._batch_decoding([row.prompt_ids for row in rows], adapter) as decoder:
        logits = decoder.logits
        while True:
            fed = [_step(backend, answer, logits[index]) for index, answer in enumerate(answers)]
            if all(answer.done for answer in answers):
                return
            logits = decoder.advance(fed)


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
