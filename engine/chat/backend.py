"""The chat interface every backend offers, and the one decode loop they share.

A backend only knows how to turn messages into prompt token ids, token ids back into text,
and how to run its model one token at a time (`_decoding`). Everything that decides what the
user sees - context fitting, sampling, stop tokens, streaming of complete characters, cancel
and timing - happens once, here, so transformers and llama.cpp cannot drift apart.

`stream_chat` is a generator: the TUI runs it in a worker thread and sets `cancel` (a
`threading.Event`) to stop between two tokens; closing the generator stops it the same way.
A backend runs one answer at a time; a second caller waits for the first to finish.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.chat.history import FittedConversation, fit_to_context, with_system_prompt
from engine.chat.sampling import Sampler, fresh_seed
from engine.config import GenerationConfig
from engine.errors import TanrenError
from engine.i18n import Gettext
from engine.messages import Message
from engine.phrases import phrase

# The longest context a chat uses unless told otherwise: both backends apply the same cap, so
# they drop the same old turns. Beyond it a CPU answer would take minutes anyway.
DEFAULT_MAX_CONTEXT = 4096

@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    new_tokens: int  # answer tokens, without the end-of-turn token
    ttft_s: float  # from the call to the first answer token (prompt formatting and prefill included)
    tokens_per_s: float  # decoding speed after the first token
    total_s: float
    stop_reason: str  # stop (end-of-turn token), length (max_new_tokens), cancelled
    seed: int
    dropped_messages: int = 0

    def summary(self, _: Gettext) -> str:
        """One line under the answer; the stop reason keeps its OpenAI finish_reason name."""
        line = _("{tokens} tokens ({reason}), first token {ttft:.2f} s, {speed:.1f} tokens/s, "
                 "prompt {prompt} tokens, seed {seed}", tokens=self.new_tokens, reason=self.stop_reason,
                 ttft=self.ttft_s, speed=self.tokens_per_s, prompt=self.prompt_tokens, seed=self.seed)
        if self.dropped_messages:
            line += _(", {count} old messages left out", count=self.dropped_messages)
        return line


@dataclass(frozen=True)
class Decoder:
    """One answer in progress: the next-token logits after the prompt, and a way to feed a token."""

    logits: np.ndarray
    advance: Callable[[int], np.ndarray]


@dataclass(frozen=True)
class BatchDecoder:
    """Several answers in progress in one model step: each row's next-token logits ([rows, vocab])
    after its prompt, a way to feed one token per row, to keep only some rows, and (where the
    backend can) to add rows between two steps (continuous batching)."""

    logits: np.ndarray
    advance: Callable[[Sequence[int]], np.ndarray]
    keep: Callable[[Sequence[int]], None]
    join: Callable[[list[list[int]]], np.ndarray] | None = None  # the new rows' logits


class ChatBackend(ABC):
    """A loaded model that answers conversations. Subclasses: transformers and llama.cpp.

    Besides chat, a backend scores token sequences (`score`, for perplexity) and answers many
    conversations greedily (`greedy_answers`, for ROUGE); `tokenizer` renders data examples
    the way training does (an HF tokenizer, or llama.cpp's behind the same interface).
    """

    kind: str  # transformers or llama.cpp
    batches: bool = False  # whether _batch_decoding runs several prompts in each model step
    name: str
    context_length: int
    stop_ids: frozenset[int]
    tokenizer: Any
    adapters: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.last_stats: GenerationStats | None = None
        self._busy = threading.Lock()

    @abstractmethod
    def encode(self, messages: Sequence[Message], adapter: str | None = None) -> list[int]:
        """Prompt token ids: the chat template (the one `adapter` was trained with, if it saved
        one) applied, ending with the assistant's header."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Answer text for token ids (special tokens left out)."""

    @abstractmethod
    def _decoding(self, prompt_ids: list[int], adapter: str | None) -> contextlib.AbstractContextManager[Decoder]:
        """Run the prompt through the model; the decoder's state is freed when the block ends."""

    def _batch_decoding(self, prompts: list[list[int]],
                        adapter: str | None) -> contextlib.AbstractContextManager[BatchDecoder]:
        """Run the prompts through the model side by side (backends whose `batches` is true)."""
        raise NotImplementedError(f"{self.kind} answers one prompt at a time")

    @abstractmethod
    def _score(self, sequences: list[list[int]], adapter: str | None) -> list[np.ndarray]:
        """`score` for sequences already checked, with the backend held."""

    def score(self, sequences: Sequence[Sequence[int]], *, adapter: str | None = None) -> list[np.ndarray]:
        """For each token sequence, run from an empty context: log p(ids[i] | ids[:i]) for i >= 1
        (float64, one value fewer than the sequence has tokens)."""
        self.check_adapter(adapter)
        for ids in sequences:
            if not 2 <= len(ids) <= self.context_length:
                raise TanrenError(phrase("a sequence of {count} tokens cannot be scored by {model}: it needs 2 to "
                                         "{context} tokens (the context window)", count=len(ids), model=self.name,
                                         context=self.context_length))
        with self._busy:
            return self._score([list(ids) for ids in sequences], adapter)

    def greedy_answers(self, conversations: Sequence[Sequence[Message]], *, max_new_tokens: int,
                       adapter: str | None = None) -> list[str]:
        """Each conversation's greedy answer (no repetition penalty), up to an end-of-turn token.

        One at a time through the chat decode loop; transformers overrides it to answer a batch
        at once, which gives the same tokens.
        """
        params = GenerationConfig(temperature=0, repetition_penalty=1.0, max_new_tokens=max_new_tokens, seed=0)
        return ["".join(self.stream_chat(messages, params, adapter=adapter)) for messages in conversations]

    def fitted_prompt(self, messages: Sequence[Message], *, answer_tokens: int, adapter: str | None = None) -> list[int]:
        """Prompt ids of `messages` with the oldest turns dropped until `answer_tokens` more fit."""
        return self._fitted(messages, answer_tokens, adapter)[0]

    def _fitted(self, messages: Sequence[Message], answer_tokens: int,
                adapter: str | None) -> tuple[list[int], FittedConversation]:
        encoded: dict[tuple[Message, ...], list[int]] = {}  # every candidate, so the kept one is not encoded again

        def count(kept: Sequence[Message]) -> int:
            encoded[tuple(kept)] = ids = self.encode(kept, adapter)
            return len(ids)

        fitted = fit_to_context(messages, count, context_length=self.context_length, answer_tokens=answer_tokens)
        return encoded[fitted.messages], fitted

    def count_tokens(self, messages: Sequence[Message], adapter: str | None = None) -> int:
        return len(self.encode(messages, adapter))

    def prompt_logits(self, messages: Sequence[Message], *, adapter: str | None = None) -> np.ndarray:
        """The model's next-token logits after the formatted prompt (for checks and comparisons)."""
        self.check_adapter(adapter)
        with self._busy, self._decoding(self.encode(messages, adapter), adapter) as decoder:
            return decoder.logits

    def close(self) -> None:
        """Free the model now rather than at interpreter exit."""

    def __enter__(self) -> ChatBackend:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def check_adapter(self, adapter: str | None) -> None:
        if adapter is not None and adapter not in self.adapters:
            loaded = ", ".join(self.adapters) or phrase("none")
            raise TanrenError(phrase("adapter {adapter!r} is not loaded on {model} (loaded: {loaded})",
                                     adapter=adapter, model=self.name, loaded=loaded))

    def stream_chat(self, messages: Sequence[Message], params: GenerationConfig,
                    cancel: threading.Event | None = None, *, adapter: str | None = None,
                    on_stats: Callable[[GenerationStats], None] | None = None) -> Iterator[str]:
        """Yield the answer as text pieces, the oldest turns left out if the conversation is too long
        for the context; `last_stats` (and `on_stats`, if given) describes it once the generator ends."""
        self.check_adapter(adapter)
        with self._busy:
            clock = Clock(time.perf_counter())
            prompt_ids, fitted = self._fitted(with_system_prompt(messages, params.system_prompt),
                                              params.max_new_tokens, adapter)
            yield from self._answer(prompt_ids, params, cancel, adapter, clock, fitted.dropped_messages, on_stats)

    def stream_prompt(self, prompt_ids: Sequence[int], params: GenerationConfig,
                      cancel: threading.Event | None = None, *, adapter: str | None = None,
                      on_stats: Callable[[GenerationStats], None] | None = None) -> Iterator[str]:
        """`stream_chat` for prompt token ids already made (the caller checked that they fit)."""
        self.check_adapter(adapter)
        with self._busy:
            clock = Clock(time.perf_counter())
            yield from self._answer(list(prompt_ids), params, cancel, adapter, clock, 0, on_stats)

    def _answer(self, prompt_ids: list[int], params: GenerationConfig, cancel: threading.Event | None,
                adapter: str | None, clock: Clock, dropped: int,
                on_stats: Callable[[GenerationStats], None] | None) -> Iterator[str]:
        seed = params.seed if params.seed is not None else fresh_seed()
        try:
            tokens = self._tokens(prompt_ids, params, Sampler(params, prompt_ids, seed), cancel, adapter, clock)
            yield from text_deltas(self.decode, tokens)
        finally:
            self.last_stats = clock.stats(prompt_tokens=len(prompt_ids), seed=seed, dropped_messages=dropped)
            if on_stats is not None:
                on_stats(self.last_stats)

    def _tokens(self, prompt_ids: list[int], params: GenerationConfig, sampler: Sampler,
                cancel: threading.Event | None, adapter: str | None, clock: Clock) -> Iterator[int]:
        """Answer token ids until an end-of-turn token, max_new_tokens, or cancel."""
        with self._decoding(prompt_ids, adapter) as decoder:
            logits = decoder.logits
            while not (cancel is not None and cancel.is_set()):
                token = next_token(sampler, clock, logits, self.stop_ids)
                if token is None:
                    return
                yield token
                if clock.tokens >= params.max_new_tokens:
                    clock.reason = "length"
                    return
                logits = decoder.advance(token)


def next_token(sampler: Sampler, clock: Clock, logits: np.ndarray, stop_ids: frozenset[int]) -> int | None:
    """The answer's next token, counted and remembered by the sampler; None at an end-of-turn token."""
    token = sampler(logits)
    clock.sampled()
    if token in stop_ids:
        clock.reason = "stop"
        return None
    clock.tokens += 1
    sampler.accept(token)
    return token


class TextStream:
    """The new text after each token of one answer. A multi-byte character (Japanese, emoji) may
    span tokens: its replacement character is held back until the token that completes it arrives."""

    def __init__(self, decode: Callable[[Sequence[int]], str]):
        self.decode = decode
        self.ids: list[int] = []
        self.shown = ""

    def feed(self, token: int) -> str:
        self.ids.append(token)
        text = self.decode(self.ids)
        if len(text) > len(self.shown) and not text.endswith("\ufffd"):
            delta, self.shown = text[len(self.shown):], text
            return delta
        return ""

    def finish(self) -> str:
        """What is left at the end: the last whole characters held back."""
        if self.ids and len(text := whole_characters(self.decode(self.ids))) > len(self.shown):
            delta, self.shown = text[len(self.shown):], text
            return delta
        return ""


def text_deltas(decode: Callable[[Sequence[int]], str], tokens: Iterator[int]) -> Iterator[str]:
    """A TextStream over `tokens`, as a generator of the non-empty deltas."""
    stream = TextStream(decode)
    for token in tokens:
        if delta := stream.feed(token):
            yield delta
    if rest := stream.finish():
        yield rest


def whole_characters(text: str) -> str:
    """`text` less the U+FFFD that an answer cut off inside a multi-byte character ends with."""
    return text.rstrip("\ufffd")


class Clock:
    """Times one answer; the reason stays "cancelled" unless it ends by a stop token or length."""

    def __init__(self, start: float):
        self.start = start
        self.first = self.last = None
        self.samples = self.tokens = 0
        self.reason = "cancelled"

    def sampled(self) -> None:
        self.last = time.perf_counter()
        self.first = self.first or self.last
        self.samples += 1

    def stats(self, **fields) -> GenerationStats:
        first = self.first or time.perf_counter()
        last = self.last or first
        return GenerationStats(
            new_tokens=self.tokens, ttft_s=first - self.start, total_s=time.perf_counter() - self.start,
            tokens_per_s=(self.samples - 1) / (last - first) if last > first else 0.0,
            stop_reason=self.reason, **fields,
        )


@dataclass(frozen=True)
class ChatTarget:
    """What the user chats with: a backend, with one of its adapters or none (the base)."""

    label: str
    backend: ChatBackend
    adapter: str | None = None

    @property
    def context_length(self) -> int:
        return self.backend.context_length

    @property
    def last_stats(self) -> GenerationStats | None:
        return self.backend.last_stats

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.backend.count_tokens(messages, self.adapter)

    def stream_chat(self, messages: Sequence[Message], params: GenerationConfig,
                    cancel: threading.Event | None = None) -> Iterator[str]:
        return self.backend.stream_chat(messages, params, cancel, adapter=self.adapter)
