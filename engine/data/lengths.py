"""Token lengths for the data check: exact where they matter, cheap everywhere else.

Tokenizing every record costs far more than reading it (on 2 cores the default model's fast
tokenizer does ~25k short strings/s), so:

- Too long: a record can only exceed `max_length` if its template overhead plus the UTF-8
  size of its contents does (no tokenizer makes more tokens than bytes, plus one per string
  for a leading-space piece). Only records past that bound are measured exactly, in batches
  through the fast tokenizer, so every over-long example is found and the cut is exact.
  Records above LONG_BYTES are measured at once, alone and in slices (engine.data.slices), and
  only their length is kept, so memory stays bounded whatever their size.
- Windows: text records are not cut but become windows (engine.data.windows); their exact
  lengths give the exact number of windows, and a long text record is never "too long".
- Template: the template overhead is rendered once per distinct sequence of roles, so a
  template that refuses a role sequence (e.g. a system turn) is reported for every record.
- Statistics: the length distribution comes from a seeded reservoir sample of examples,
  rendered exactly (all examples when there are fewer than the sample size); the share of
  trained tokens from a random quarter of that sample, as locating the answers costs more.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.data.example import AnyExample, Example
from engine.data.problems import SHOWN, Detail
from engine.data.slices import TextTokens
from engine.data.render import (
    Rendered,
    adds_bos,
    chat_text,
    ensure_chat_template,
    render_example,
    render_examples,
    rendered_lengths,
    rendered_text,
)
from engine.data.windows import window_count
from engine.errors import DataError
from engine.messages import Message
from engine.phrases import phrase

SAMPLE_SIZE = 1000
TRAINED_SAMPLE_SIZE = 250
BATCH = 64
SLACK = 8  # tokens, for merges across the template/content boundaries
LONG_BYTES = 64 << 10  # past this a record is measured alone, at once, and only its length kept

Report = Callable[[str, str, Detail], None]  # (problem code, source, detail)


@dataclass(frozen=True)
class LengthStats:
    unit: str  # "tokens" or "characters"
    measured: int  # examples measured: all of them, or a sample
    examples: int
    total: int  # across all examples (extrapolated from the sample if sampled)
    min: int
    p50: int
    p90: int
    p99: int
    max: int
    trained_share: float | None  # share of tokens that are trained (tokens only)
    windows: int | None = None  # training windows the text records give (exact; None without text records)


@dataclass(frozen=True)
class _Measured:
    """A sampled record too long to keep: its length, and whether all of it is trained (raw text)."""

    tokens: int
    text: bool


def length_stats(unit: str, lengths: Sequence[int], examples: int,
                 trained_share: float | None = None, windows: int | None = None) -> LengthStats | None:
    """Distribution of `lengths` (one per measured example; an array of millions is fine)."""
    import numpy as np

    if not len(lengths):
        return None
    ordered = np.sort(np.asarray(lengths, dtype=np.int64))

    def pick(q: float) -> int:
        return int(ordered[min(len(ordered) - 1, int(q * len(ordered)))])

    total = int(ordered.sum())
    return LengthStats(
        unit=unit, measured=len(ordered), examples=examples, total=round(total * examples / len(ordered)),
        min=pick(0.0), p50=pick(0.5), p90=pick(0.9), p99=pick(0.99), max=int(ordered[-1]),
        trained_share=trained_share, windows=windows,
    )


class TokenLengths:
    def __init__(self, tokenizer, max_length: int, report: Report, *, stride: int | None = None,
                 sample_size: int = SAMPLE_SIZE, seed: int = 0):
        ensure_chat_template(tokenizer)
        self.tokenizer, self.max_length, self.report = tokenizer, max_length, report
        self.stride = stride or max_length
        self.text_tokens = TextTokens(tokenizer)
        self.windows = self.texts = 0  # windows of the text records, and how many text records
        self.bos = int(adds_bos(tokenizer))
        self.eos = int(tokenizer.eos_token_id is not None)
        self.overheads: dict[tuple[str, ...], int | DataError] = {}
        self.sample: list[Example | _Measured] = []
        self.sample_size, self.random, self.seen = sample_size, random.Random(seed), 0
        self.weight, self.next_kept = 1.0, 0  # for _skip_ahead
        self.failed: set[str] = set()  # sources already reported as template errors
        self.pending: list[Example] = []  # past the byte bound, to be measured exactly
        self.too_long = 0

    def add(self, record: AnyExample) -> None:
        """Take one record: its conversation, or both of a preference pair's."""
        for example in record.conversations():
            roles = tuple([m.role for m in example.messages])
            overhead = self.overheads.get(roles)
            if overhead is None:
                overhead = self.overheads[roles] = self._overhead(roles, example.source)
            if isinstance(overhead, DataError):
                self.report("template-error", example.source, overhead.phrases[0])
                return  # once per record: a pair's two conversations have the same roles
            self.texts += example.is_text
            contents = example.contents()
            budget = self.max_length - overhead - SLACK
            # UTF-8 bytes bound the tokens; counting characters first spares the usual case the encoding
            small = 4 * sum(map(len, contents)) + len(contents) <= budget
            size = 0 if small else sum(len(c.encode()) + 1 for c in contents)
            if size > LONG_BYTES:
                self._measure_alone(example)
                continue
            self._keep_sampled(example)
            if size > budget:
                self.pending.append(example)
            else:  # the usual case: it fits, so it is one window
                self.windows += example.is_text
        if len(self.pending) >= BATCH:  # never between a record's conversations, so they are measured together
            self.flush()

    def flush(self) -> None:
        """Measure the pending examples exactly and report those longer than max_length (a
        record with two over-long conversations once, by the longer)."""
        measured, texts = self._texts(self.pending)
        self.pending = []
        longest: dict[str, tuple[int, Example]] = {}
        for example, length in zip(measured, rendered_lengths(measured, texts, self.tokenizer)):
            if example.is_text:
                self.windows += window_count(length, max_length=self.max_length, stride=self.stride)
            elif length > self.max_length and length > longest.get(example.source, (0, example))[0]:
                longest[example.source] = (length, example)
        for length, example in longest.values():
            self._report_too_long(example, length)

    def stats(self) -> LengthStats | None:
        self.flush()
        measured, texts = self._texts([item for item in self.sample if isinstance(item, Example)])
        known = [item for item in self.sample if isinstance(item, _Measured)]
        # The trained share needs each answer located (two more template renderings per turn),
        # so it comes from a smaller random part of the sample; long raw text is trained whole.
        part = sorted(self.random.sample(range(len(measured)), min(TRAINED_SAMPLE_SIZE, len(measured))))
        masked = render_examples([measured[i] for i in part], self.tokenizer, max_length=1 << 30,
                                 on_error=self._template_error)
        whole = sum(item.tokens for item in known if item.text)
        tokens = sum(len(r.input_ids) for r in masked) + whole
        trained = (sum(sum(r.assistant_mask) for r in masked) + whole) / max(1, tokens)
        lengths = rendered_lengths(measured, texts, self.tokenizer) + [item.tokens for item in known]
        return length_stats("tokens", lengths, self.seen, trained, self.windows if self.texts else None)

    def _measure_alone(self, example: Example) -> None:
        """Length of a long record, counted in slices without keeping its tokens; a long
        conversation over max_length is reported, a long text counted in windows."""
        try:
            text = rendered_text(example, self.tokenizer)
        except DataError as error:
            self._template_error(example, error)
            return
        bos = self.bos and not text.startswith(self.tokenizer.bos_token)  # a template may write BOS itself
        length = self.text_tokens.count(text) + bos + (self.eos if example.is_text else 0)
        self._keep_sampled(_Measured(length, example.is_text))
        if example.is_text:
            self.windows += window_count(length, max_length=self.max_length, stride=self.stride)
        elif length > self.max_length:
            self._report_too_long(example, length)

    def _texts(self, examples: Sequence[Example]) -> tuple[list[Example], list[str]]:
        """The examples the chat template renders, and their texts; the others are reported."""
        measured, texts = [], []
        for example in examples:
            try:
                texts.append(rendered_text(example, self.tokenizer))
                measured.append(example)
            except DataError as error:
                self._template_error(example, error)
        return measured, texts

    def _overhead(self, roles: tuple[str, ...], source: str) -> int | DataError:
        if not roles:
            return self.bos + self.eos
        try:
            text = chat_text(self.tokenizer, [Message(role, "") for role in roles], source=source)
        except DataError as error:
            return error
        return self.bos + len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _keep_sampled(self, example: Example | _Measured) -> None:
        self.seen += 1
        if len(self.sample) < self.sample_size:
            self.sample.append(example)
            if len(self.sample) == self.sample_size:
                self._skip_ahead()
        elif self.seen == self.next_kept:
            self.sample[self.random.randrange(self.sample_size)] = example
            self._skip_ahead()

    def _skip_ahead(self) -> None:
        """Li's Algorithm L: draw which later example enters the sample next, instead of
        drawing a random number for every example (a uniform sample all the same)."""
        self.weight *= math.exp(math.log(self._uniform()) / self.sample_size)
        self.next_kept = self.seen + 1 + math.floor(math.log(self._uniform()) / math.log1p(-self.weight))

    def _uniform(self) -> float:
        """Uniform in (0, 1): both logarithms above need it above 0."""
        return 1.0 - self.random.random()

    def _template_error(self, example: Example, error: DataError) -> None:
        if example.source not in self.failed:
            self.failed.add(example.source)
            self.report("template-error", example.source, error.phrases[0])

    def _render(self, example: Example, *, max_length: int) -> Rendered | None:
        try:
            return render_example(example, self.tokenizer, max_length=max_length)
        except DataError as error:
            self._template_error(example, error)
            return None

    def _report_too_long(self, example: Example, length: int) -> None:
        self.too_long += 1
        untrained = False
        if self.too_long <= SHOWN:  # only the listed ones are worth rendering to see what is left
            rendered = self._render(example, max_length=self.max_length)
            untrained = rendered is not None and not any(rendered.assistant_mask)
        cut = length - self.max_length
        self.report("too-long", example.source,
                    phrase("{tokens:,} tokens, {cut:,} would be cut (no trained tokens left)", tokens=length, cut=cut)
                    if untrained else phrase("{tokens:,} tokens, {cut:,} would be cut", tokens=length, cut=cut))
