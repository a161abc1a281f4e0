"""Perplexity: exp of the token-weighted mean negative log-likelihood over a dataset.

Every example is rendered exactly as training renders it (`engine.data.render_example` with
the backend's tokenizer: the HF tokenizer, or llama.cpp's for a GGUF file) and the tokens its
assistant mask marks are scored: on chat data the assistant's answers with their end-of-turn
token, which is what training learns; with `assistant_only=False`, every token. The mean is
over all scored tokens of the dataset (long answers weigh by their length, as in the training
loss), and the first token of an example is never scored: nothing predicts it.

A text longer than the window (`max_length`) is scored with a sliding window, placed by the same
rule training uses to cut long documents (`engine.data.windows`): windows start every `stride`
tokens and each scores only the tokens its predecessors did not, so every token is predicted
once, with all tokens before it as context, or at least `max_length - stride` of them once the
text outgrows the window (at stride = window, consecutive windows share one context token).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.chat.backend import ChatBackend
from engine.data import Example, ensure_chat_template, load_examples, render_examples
from engine.data.windows import spans
from engine.i18n import N_
from engine.paths import Home
from engine.phrases import phrase
from evals.errors import EvalCancelled, EvalError

Progress = Callable[[int, int], None]  # (done, total)

# Sequences scored in one forward pass, counted in padded tokens: the logits of a batch take
# batch_tokens x vocabulary floats (about 400 MB for a 49k vocabulary).
DEFAULT_BATCH_TOKENS = 2048


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    nll: float  # mean negative log-likelihood per scored token, in nats
    tokens: int  # tokens scored
    examples: int  # examples that had tokens to score


@dataclass(frozen=True)
class Window:
    """A token sequence to score from an empty context, and which of its positions count."""

    ids: list[int]
    first: int  # the first scored position; positions before it are context only
    weights: list[int]  # 1 where a position from `first` on is scored


def measure_perplexity(backend: ChatBackend, examples: Sequence[Example] | str | Path, *,
                       adapter: str | None = None, max_length: int | None = None, stride: int | None = None,
                       assistant_only: bool = True, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                       progress: Progress | None = None, cancel: threading.Event | None = None) -> PerplexityResult:
    """Perplexity of `backend` (with `adapter`, or the base) on `examples` (or a data file).

    `max_length` is the window (default and upper bound: the backend's context length);
    `stride` defaults to half the window. `cancel` stops it between batches (EvalCancelled).
    """
    examples = _examples(examples)
    window = context_window(max_length, backend.context_length)
    stride = stride or max(1, window // 2)
    if not 1 <= stride <= window:
        raise EvalError(phrase("the stride ({stride}) must be between 1 and the window ({window} tokens)",
                               stride=stride, window=window), where="stride")
    jobs, measured = _jobs(backend, examples, window=window, stride=stride, assistant_only=assistant_only)
    sums = logprob_sums(backend, jobs, adapter=adapter, batch_tokens=batch_tokens, progress=progress, cancel=cancel)
    tokens = sum(sum(job.weights) for job in jobs)
    nll = -math.fsum(sums) / tokens
    return PerplexityResult(perplexity=math.exp(nll), nll=nll, tokens=tokens, examples=measured)


def logprob_sums(backend: ChatBackend, windows: Sequence[Window], *, adapter: str | None = None,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> list[float]:
    """For each window, in order, the sum of the log-probabilities of its scored tokens (weighted).

    `cancel` stops it between batches (EvalCancelled)."""
    sums = [0.0] * len(windows)
    done = 0
    for batch in _batches([len(window.ids) for window in windows], batch_tokens):
        if cancel is not None and cancel.is_set():
            raise EvalCancelled()
        for index, logprobs in zip(batch, backend.score([windows[index].ids for index in batch], adapter=adapter)):
            # logprobs[p - 1] is log p(ids[p] | ids[:p])
            job = windows[index]
            sums[index] = math.fsum(w * lp for w, lp in zip(job.weights, logprobs[job.first - 1:]))
        done += len(batch)
        if progress is not None:
            progress(done, len(windows))
    return sums


def model_perplexity(model: str | Path, examples: Sequence[Example] | str | Path, *, home: Home | None = None,
                     adapter: str | Path | None = None, backend: str = "auto", **options) -> PerplexityResult:
    """Load `model` (a built-in name, HF folder - a merged export -, .gguf file or cached hub id),
    optionally with a PEFT adapter (a run name or folder), measure, and free it again.
    `options` are measure_perplexity's."""
    from engine.chat.targets import open_backend, resolve_adapter
    from engine.config import ModelConfig

    home = home or Home.from_env()
    refs = [resolve_adapter(str(adapter), home)] if adapter is not None else []
    with open_backend(ModelConfig(base=str(model)), home, backend=backend, adapters=refs) as loaded:
        return measure_perplexity(loaded, examples, adapter=refs[0].name if refs else None, **options)


def _examples(examples: Sequence[Example] | str | Path) -> Sequence[Example]:
    if isinstance(examples, (str, Path)):
        return load_examples(examples)  # raises a DataError for a file without records
    if not examples:
        raise EvalError(phrase("there are no examples to measure"),
                        hint=phrase("give a data file with at least one example"))
    return examples


def context_window(max_length: int | None, context_length: int) -> int:
    """The longest sequence scored at once: `max_length`, at most the model's context."""
    if max_length is not None and max_length < 2:
        raise EvalError(phrase("the window must hold at least 2 tokens, not {max_length}", max_length=max_length),
                        where="max_length")
    return min(max_length or context_length, context_length)


def _jobs(backend: ChatBackend, examples: Sequence[Example], *, window: int, stride: int,
          assistant_only: bool) -> tuple[list[Window], int]:
    """The windows that score at least one token, and how many examples they come from."""
    jobs: list[Window] = []
    measured = 0
    ensure_chat_template(backend.tokenizer)  # a base without one is trained with the plain template
    for rendered in render_examples(examples, backend.tokenizer, max_length=sys.maxsize, assistant_only=assistant_only):
        ids, mask = rendered.input_ids, rendered.assistant_mask
        found = [Window(ids[s.begin:s.end], s.first - s.begin, mask[s.first:s.end])
                 for s in spans(len(ids), max_length=window, stride=stride) if any(mask[s.first:s.end])]
        jobs += found
        measured += bool(found)
    if not jobs:
        message = (N_("none of the {n} examples has assistant answers to score") if assistant_only
                   else N_("none of the {n} examples has tokens after the first to score"))
        raise EvalError(phrase(message, n=len(examples)),
                        hint=phrase("give chat data with assistant turns, or measure all tokens (--all-tokens)"))
    return jobs, measured


def _batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Indices of sequences, longest first (similar lengths share a batch: less padding), in
    batches whose padded size stays within batch_tokens (at least one sequence each)."""
    batch: list[int] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True):
        if batch and (len(batch) + 1) * lengths[batch[0]] > batch_tokens:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch
