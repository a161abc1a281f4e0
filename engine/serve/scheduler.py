"""Requests to one loaded model, queued (bounded) and answered in batches by one thread.

Decoding is memory-bound: a step for several answers costs little more than a step for one.
So the thread takes every request waiting for the same adapter (up to `max_batch`) and decodes
them together (engine.chat.batch); requests for that adapter that arrive meanwhile join the
running batch between two steps, as answers that ended leave it (continuous batching), and
those for other adapters wait for it to empty. A backend that cannot batch (llama.cpp here)
answers them in turn. When
`max_queue` requests already wait, a new one is refused with 429 and a Retry-After instead of
piling up until memory runs out. A cancelled request (a client gone, a stop string met) leaves
its batch at the next step.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from engine.chat.backend import ChatBackend, GenerationStats
from engine.chat.batch import BatchRow, answer_batch
from engine.config import GenerationConfig
from engine.serve.errors import ApiError

RETRY_AFTER_S = 1
# How long a batch about to start waits for more requests. Clients of a batch send their next
# requests when their answers end, within milliseconds of each other; without the wait the first
# would start a batch of one and the rest a batch of the others, alternately.
GATHER_S = 0.03


class Ticket:
    """A request's place in the scheduler, and the stream its answer arrives on."""

    def __init__(self, prompt_ids: list[int], params: GenerationConfig, adapter: str | None):
        self.adapter = adapter
        self.cancel = threading.Event()
        self.queued = time.perf_counter()
        self.queue_s = 0.0
        self.batch_size = 0
        self.stats: GenerationStats | None = None
        self.ended = False  # set by the decoding thread when the answer has ended
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self.row = BatchRow(prompt_ids, params, self.cancel, self._items.put, self._end, started=self.queued)

    def _end(self, stats: GenerationStats) -> None:
        self.ended = True
        self._items.put(stats)

    def started(self, batch_size: int) -> None:
        self.queue_s, self.batch_size = time.perf_counter() - self.queued, batch_size

    def failed(self, exc: BaseException) -> None:
        self._items.put(exc)

    def deltas(self) -> Iterator[str]:
        """The answer's text as it is decoded; ends when the scheduler ends the answer."""
        while True:
            item = self._items.get()
            if isinstance(item, GenerationStats):
                self.stats = item
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class Scheduler:
    """The queue and the decoding thread of one loaded model (all its adapters)."""

    def __init__(self, backend: ChatBackend, *, max_batch: int, max_queue: int):
        self.backend = backend
        self.max_batch = max_batch if backend.batches else 1
        self.max_queue = max_queue
        self._waiting: list[Ticket] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"tanren-decode-{backend.name}", daemon=True)
        self._thread.start()

    def submit(self, ticket: Ticket) -> Ticket:
        with self._changed:
            if len(self._waiting) >= self.max_queue:
                raise ApiError(429, f"{len(self._waiting)} requests already wait for this model; try again shortly",
                               code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)})
            self._waiting.append(ticket)
            self._changed.notify()
        return ticket

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout=30)

    def _next_batch(self) -> list[Ticket] | None:
        """The oldest waiting request and those waiting for the same adapter, up to max_batch,
        after a moment for others to join it."""
        with self._changed:
            while not self._waiting and not self._closed:
                self._changed.wait()
            deadline = time.monotonic() + GATHER_S
            while self.max_batch > 1 and not self._closed and (left := deadline - time.monotonic()) > 0 \
                    and len(self._matching()) < self.max_batch:
                self._changed.wait(left)
            if self._closed:
                return None
            batch = self._matching()[:self.max_batch]
            self._waiting = [t for t in self._waiting if t not in batch]
            return batch

    def _matching(self) -> list[Ticket]:
        """The waiting requests for the oldest one's adapter, oldest first."""
        adapter = self._waiting[0].adapter
        return [ticket for ticket in self._waiting if ticket.adapter == adapter]

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [ticket for ticket in batch if not ticket.cancel.is_set()]
            for ticket in batch:
                ticket.started(len(live))
                if ticket not in live:
                    ticket.row.on_end(GenerationStats(len(ticket.row.prompt_ids), 0, 0.0, 0.0, 0.0, "cancelled", 0))
            if live:
                self._decode(live)

    def _join(self, batch: list[Ticket], free: int) -> list[BatchRow]:
        """Up to `free` waiting requests for the running batch's adapter, which join it now."""
        with self._changed:
            joining = [ticket for ticket in self._waiting if ticket.adapter == batch[0].adapter
                       and not ticket.cancel.is_set()][:free]
            self._waiting = [ticket for ticket in self._waiting if ticket not in joining]
        running = sum(not ticket.ended for ticket in batch)
        for ticket in joining:
            ticket.started(running + len(joining))
        batch += joining  # so that a failure reaches them too
        return [ticket.row for ticket in joining]

    def _decode(self, batch: list[Ticket]) -> None:
        try:
            if self.backend.batches:
                answer_batch(self.backend, [ticket.row for ticket in batch], batch[0].adapter,
                             more=lambda free: self._join(batch, free), max_rows=self.max_batch)
            else:
                (ticket,) = batch
                for delta in self.backend.stream_prompt(ticket.row.prompt_ids, ticket.row.params, ticket.cancel,
                                                        adapter=ticket.adapter, on_stats=ticket.row.on_end):
                    ticket.row.on_delta(delta)
        except Exception as exc:  # noqa: BLE001 - every waiting request learns of it; the thread serves on
            for ticket in batch:
                ticket.failed(exc)
