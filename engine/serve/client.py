"""A running server as a chat target: the workbench's Chat screen talks to it through the `openai`
client, as any other app would, with the same streaming and stop interface as a loaded model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.chat.backend import GenerationStats
from engine.chat.history import with_system_prompt
from engine.chat.sampling import fresh_seed
from engine.config import GenerationConfig
from engine.errors import TanrenError
from engine.messages import Message, as_dicts
from engine.phrases import phrase


@dataclass
class ServerTarget:
    """One model of a server at `url` (its /v1 root), chatted with over HTTP."""

    label: str
    url: str
    model: str
    api_key: str | None = None
    context_length: int = 4096
    last_stats: GenerationStats | None = None

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return 0  # the server counts them; its answer's usage reports them

    def stream_chat(self, messages: Sequence[Message], params: GenerationConfig,
                    cancel: threading.Event | None = None) -> Iterator[str]:
        import openai

        client = openai.OpenAI(base_url=self.url, api_key=self.api_key or "none", max_retries=0, timeout=600)
        seed = params.seed if params.seed is not None else fresh_seed()
        start, first, usage, reason = time.perf_counter(), None, None, "cancelled"
        try:
            stream = client.chat.completions.create(
                model=self.model, messages=as_dicts(with_system_prompt(messages, params.system_prompt)),
                stream=True, stream_options={"include_usage": True}, seed=seed,
                temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
                extra_body={"top_k": params.top_k, "repetition_penalty": params.repetition_penalty})
        except openai.APIError as exc:
            raise TanrenError(phrase("the server at {url} refused the request: {why}", url=self.url, why=exc),
                              hint=phrase("see its log with `tanren servers`")) from None
        with stream:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    break
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    reason = choice.finish_reason or reason
                    if choice.delta.content:
                        first = first or time.perf_counter()
                        yield choice.delta.content
        end = time.perf_counter()
        tokens = usage.completion_tokens if usage else 0
        self.last_stats = GenerationStats(
            prompt_tokens=usage.prompt_tokens if usage else 0, new_tokens=tokens, ttft_s=(first or end) - start,
            tokens_per_s=(tokens - 1) / (end - first) if first and end > first and tokens > 1 else 0.0,
            total_s=end - start, stop_reason=reason, seed=seed)
