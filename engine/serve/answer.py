"""One request's answer: the prompt checked against the context, `tanren chat`'s sampling settings,
OpenAI's stop strings over the scheduler's stream, and a finish reason and token counts at the end."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.chat.backend import GenerationStats
from engine.config import GenerationConfig
from engine.serve.errors import ApiError
from engine.serve.scheduler import Ticket
from engine.serve.schemas import Usage


def sampling(request, *, prompt_tokens: int, context_length: int, max_tokens_limit: int) -> GenerationConfig:
    """`tanren chat`'s generation settings with the request's fields on top.

    Without `max_tokens` the answer may fill the context, up to the server's limit; asking for
    more than fits is an error, as with OpenAI, rather than an answer cut without saying so.
    """
    room = context_length - prompt_tokens
    if request.max_tokens is not None and request.max_tokens > max_tokens_limit:
        raise ApiError(400, f"max_tokens is {request.max_tokens}; this server answers at most {max_tokens_limit}",
                       param="max_tokens")
    wanted = request.max_tokens or min(max_tokens_limit, room)
    if wanted > room or room < 1:
        raise ApiError(400, f"This model's maximum context length is {context_length} tokens. However, you "
                       f"requested {prompt_tokens + wanted} tokens ({prompt_tokens} in the messages, {wanted} "
                       f"in the completion). Please reduce the length of the messages or completion.",
                       param="messages", code="context_length_exceeded")
    fields = {"temperature": request.temperature, "top_p": request.top_p, "top_k": request.top_k,
              "repetition_penalty": request.repetition_penalty, "seed": request.seed}
    return dataclasses.replace(GenerationConfig(), max_new_tokens=wanted,
                               **{name: value for name, value in fields.items() if value is not None})


class StopStrings:
    """Text deltas cut at the first stop string, holding back only what may begin one."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [stop for stop in stops if stop]
        self.pending = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """The text that can be shown now; after a stop string, nothing more."""
        if self.stopped:
            return ""
        self.pending += delta
        found = [i for i in (self.pending.find(stop) for stop in self.stops) if i >= 0]
        if found:
            self.stopped = True
            shown, self.pending = self.pending[:min(found)], ""
            return shown
        keep = max((n for stop in self.stops for n in range(1, len(stop)) if self.pending.endswith(stop[:n])),
                   default=0)
        shown, self.pending = self.pending[:len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return shown

    def flush(self) -> str:
        shown, self.pending = self.pending, ""
        return shown


@dataclass
class Outcome:
    """How an answer ended, known once its stream is exhausted, and how it waited."""

    stats: GenerationStats | None = None
    stopped_by_string: bool = False
    queue_s: float = 0.0
    batch_size: int = 0

    @property
    def finish_reason(self) -> str | None:
        if self.stopped_by_string:
            return "stop"
        reason = self.stats.stop_reason if self.stats else "cancelled"
        return None if reason == "cancelled" else reason

    def usage(self) -> Usage:
        prompt = self.stats.prompt_tokens if self.stats else 0
        completion = self.stats.new_tokens if self.stats else 0
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def answer(ticket: Ticket, stops: Sequence[str], outcome: Outcome) -> Iterator[str]:
    """The text deltas of a submitted request; `outcome` is filled in when the stream ends. A stop
    string ends its generation at the next step (the scheduler sees the ticket cancelled), and is
    not part of the text."""
    cut = StopStrings(stops)
    try:
        for delta in ticket.deltas():
            if shown := cut.feed(delta):
                yield shown
            if cut.stopped:
                outcome.stopped_by_string = True
                ticket.cancel.set()
                for _rest in ticket.deltas():  # until the scheduler has ended it, for its stats
                    pass
                break
        if rest := cut.flush():
            yield rest
    finally:
        ticket.cancel.set()  # a consumer that leaves early (the client went away) ends the answer
        outcome.stats, outcome.queue_s, outcome.batch_size = ticket.stats, ticket.queue_s, ticket.batch_size
