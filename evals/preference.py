"""Preference accuracy and margin on held-out pairs: does the model prefer the chosen answer?

Each pair's prompt is rendered with its chosen answer and with its rejected one exactly as
training renders them (`PreferencePair.conversations`: the chat template, only the final answer
scored, through its end-of-turn token), and each answer's log-probability is the sum over its
tokens given the prompt - the quantity DPO compares. The accuracy is the share of pairs whose
chosen answer is the likelier (a tie does not count); the margin is the mean of chosen minus
rejected, in nats. A pair whose longer conversation does not fit the window is left out and
counted.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from engine.chat.backend import ChatBackend
from engine.data import PreferencePair, ensure_chat_template, render_examples
from engine.phrases import phrase
from evals.errors import EvalError
from evals.perplexity import DEFAULT_BATCH_TOKENS, Progress, Window, context_window, logprob_sums


@dataclass(frozen=True)
class PreferenceResult:
    accuracy: float  # share of pairs whose chosen answer has the higher log-probability
    margin: float  # mean log p(chosen) - log p(rejected), each summed over the answer's tokens
    pairs: int  # pairs measured
    skipped: int  # pairs left out: longer than the window


def measure_preference(backend: ChatBackend, pairs: Sequence[PreferencePair], *, adapter: str | None = None,
                       max_length: int | None = None, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                       progress: Progress | None = None, cancel: threading.Event | None = None) -> PreferenceResult:
    """Accuracy and margin of `backend` (with `adapter`, or the base) on `pairs`; `max_length` is
    the window (default and upper bound: the backend's context length)."""
    if not pairs:
        raise EvalError(phrase("there are no preference pairs to measure"),
                        hint=phrase("give a file of preference pairs (prompt, chosen, rejected) with --data"))
    window = context_window(max_length, backend.context_length)
    ensure_chat_template(backend.tokenizer)  # a base without one is trained with the plain template
    rendered = render_examples([e for pair in pairs for e in pair.conversations()], backend.tokenizer,
                               max_length=sys.maxsize)
    windows = []
    for chosen, rejected in zip(rendered[::2], rendered[1::2]):
        if max(len(chosen.input_ids), len(rejected.input_ids)) <= window:
            windows += [Window(r.input_ids, 1, r.assistant_mask[1:]) for r in (chosen, rejected)]
    if not windows:
        raise EvalError(phrase("none of the {n} pairs fits the window of {window} tokens", n=len(pairs), window=window),
                        where="--max-length", hint=phrase("raise --max-length (at most the model's context)"))
    sums = logprob_sums(backend, windows, adapter=adapter, batch_tokens=batch_tokens, progress=progress,
                        cancel=cancel)
    margins = [chosen - rejected for chosen, rejected in zip(sums[::2], sums[1::2])]
    return PreferenceResult(accuracy=sum(m > 0 for m in margins) / len(margins),
                            margin=math.fsum(margins) / len(margins), pairs=len(margins),
                            skipped=len(pairs) - len(margins))
