"""The data doctor: validate a training file as a stream and report every problem by file:line.

One pass reads each record once and keeps only a few numbers per record (line, hashes, length),
so memory stays small for files of any size. Errors make the file unusable; warnings do not.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.config.schema import TrainingConfig
from engine.data.example import RatedExample
from engine.data.hub import numbered, place
from engine.data.kinds import FORMAT_KINDS, RATINGS, kind_name
from engine.data.lengths import LengthStats, TokenLengths, length_stats
from engine.data.loading import ExampleStream
from engine.data.pii import find_personal_data
from engine.data.problems import ERROR, KINDS, SHOWN, Detail, RecordError, kind_hint
from engine.data.split import split_counts
from engine.phrases import phrase

MIN_OUTPUT_CHARS = 3
DIVERSITY_MIN_EXAMPLES = 20
DIVERSITY_MIN_DISTINCT = 0.5  # share of distinct responses below which diversity is low
DIVERSITY_MAX_REPEAT = 0.1  # share of the most common response above which diversity is low
KTO_MIN_MICRO_BATCH = 2  # trl's KTO estimates its KL term from the other examples of a micro-batch

Progress = Callable[[str, float], None]  # (file, fraction read)


@dataclass(frozen=True)
class Finding:
    """One kind of problem, with where the first few are. The title, details and advice are the
    catalog's (Phrases, or a library's own text), translated where the report is shown; `examples`
    and `hint` give them in English, as `--json` keeps them."""

    code: str
    severity: str
    title: str  # a message id of problems.KINDS
    count: int
    places: tuple[tuple[str, Detail], ...]  # (file:line, detail) of the first few
    advice: Detail | None

    @property
    def examples(self) -> tuple[str, ...]:
        """"file:line: detail", the first few."""
        return tuple(f"{where}: {detail}" for where, detail in self.places)

    @property
    def hint(self) -> str | None:
        return None if self.advice is None else str(self.advice)

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "title": self.title, "count": self.count,
                "examples": list(self.examples), "hint": self.hint}


@dataclass(frozen=True)
class Report:
    path: str
    format: str | None
    detected_at: int | None  # line the format was detected from (None: given with --format)
    examples: int  # usable examples in `path`
    findings: tuple[Finding, ...]
    lengths: LengthStats | None
    split: tuple[int, int, int]  # planned train, validation, test sizes
    seed: int
    max_length: int
    validation_path: str | None = None
    validation_examples: int | None = None
    validation_format: str | None = None
    labels: tuple[int, int] | None = None  # KTO ratings: how many are desirable (true), how many not

    @property
    def kind(self) -> str | None:
        """sft, pairs or ratings (engine.data.kinds); None when no format was told."""
        return FORMAT_KINDS.get(self.format) if self.format else None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity != ERROR)

    @property
    def usable(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        findings = [finding.to_dict() for finding in self.findings]
        return {**asdict(self), "findings": findings, "kind": self.kind, "usable": self.usable}


class _Findings:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.shown: dict[str, list[tuple[str, Detail]]] = {}
        self.hints: dict[str, Detail | None] = {}

    def add(self, code: str, where: str, detail: Detail, hint: Detail | None = None) -> None:
        count = self.counts.get(code, 0)
        if count == 0:
            self.shown[code], self.hints[code] = [], hint if hint is not None else kind_hint(code)
        self.counts[code] = count + 1
        if count < SHOWN:
            self.shown[code].append((where, detail))

    def frozen(self) -> tuple[Finding, ...]:
        order = list(KINDS)
        codes = sorted(self.counts, key=lambda c: (KINDS[c].severity != ERROR, order.index(c)))
        return tuple(
            Finding(c, KINDS[c].severity, KINDS[c].title, self.counts[c], tuple(self.shown[c]), self.hints[c])
            for c in codes
        )


class _FileScan:
    """One file's pass: per-record checks now, per-file checks (duplicates, diversity) after."""

    def __init__(self, path: str | Path, format: str, findings: _Findings, lengths: TokenLengths | None,
                 *, keep_prompts: bool, on_progress: Progress | None):
        label = str(path)
        progress = (lambda fraction: on_progress(label, fraction)) if on_progress else None
        self.stream = ExampleStream(path, format, progress)
        self.label, self.findings, self.lengths = label, findings, lengths
        self.lines, self.hashes, self.responses, self.chars = array("q"), array("q"), array("q"), array("q")
        self.prompts: array | None = array("q") if keep_prompts else None
        self.records = 0
        self.labels = [0, 0]  # KTO ratings: false, true

    def run(self) -> _FileScan:
        # The per-record body is the hot loop of the whole check: plain locals, no extra calls.
        add, label, lengths, prompts = self.findings.add, self.label, self.lengths, self.prompts
        lines, hashes, responses_seen, chars = self.lines.append, self.hashes.append, self.responses.append, self.chars.append
        for line, example in self.stream:
            self.records += 1
            if isinstance(example, RecordError):
                add(example.code, place(label, line), example.detail, example.hint)
                continue
            contents, responses = example.contents(), example.responses()
            if type(example) is RatedExample:
                self.labels[example.label] += 1
            lines(line)
            hashes(hash(contents))  # roles aside: the same texts in other roles are a duplicate too
            responses_seen(hash(responses))
            chars(sum(map(len, contents)))
            if prompts is not None:
                prompts.append(hash(example.prompt_key()))
            for response in example.desired():  # a short rejected answer is often the point of a pair
                if len(response.strip()) < MIN_OUTPUT_CHARS:
                    add("short-output", example.source, phrase("output {text!r}", text=response.strip()))
            found = find_personal_data("\n".join(contents))
            if found:
                add("personal-data", example.source, found)
            if lengths is not None:
                lengths.add(example)
        if lengths is not None:
            lengths.flush()
        if self.records == 0:
            add("empty-file", label, phrase("no records"))
        self._duplicates()
        self._diversity()
        self._one_label()
        return self

    @property
    def examples(self) -> int:
        return len(self.lines)

    def _duplicates(self) -> None:
        import numpy as np

        first = _first_occurrence(self.hashes)
        for index in np.nonzero(first != np.arange(len(first)))[0]:
            self.findings.add("duplicate", place(self.label, self.lines[index]),
                              phrase("same as {line}", line=numbered(self.label, self.lines[first[index]])))

    def _diversity(self) -> None:
        import numpy as np

        total = self.examples
        if total < DIVERSITY_MIN_EXAMPLES:
            return
        _, first, counts = np.unique(np.frombuffer(self.responses, dtype=np.int64), return_index=True, return_counts=True)
        top = int(counts.argmax())
        if len(counts) < DIVERSITY_MIN_DISTINCT * total or counts[top] > DIVERSITY_MAX_REPEAT * total:
            self.findings.add("low-diversity", self.label, phrase(
                "{distinct:,} distinct responses among {total:,} examples; the most common (first at {line}) "
                "appears {times:,} times", distinct=len(counts), total=total,
                line=numbered(self.label, self.lines[first[top]]), times=int(counts[top])))

    def _one_label(self) -> None:
        false, true = self.labels
        if FORMAT_KINDS.get(self.stream.format) == RATINGS and self.examples and not (false and true):
            self.findings.add("one-label", self.label, phrase("all {count:,} labels are {label}", count=self.examples,
                                                              label="true" if true else "false"))


def _first_occurrence(hashes: array):
    """For each position, the position of the first element with the same hash."""
    import numpy as np

    values = np.frombuffer(hashes, dtype=np.int64)
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    return first[inverse]


def _same_kind(train: _FileScan, validation: _FileScan, findings: _Findings) -> None:
    kinds = [FORMAT_KINDS.get(scan.stream.format) for scan in (train, validation)]
    if None not in kinds and kinds[0] != kinds[1]:
        findings.add("other-kind", validation.label, phrase(
            "{kind} ({format} format), beside {other} ({other_format} format) in {path}", kind=kind_name(kinds[1]),
            format=validation.stream.format, other=kind_name(kinds[0]), other_format=train.stream.format,
            path=train.label))


def _leakage(train: _FileScan, validation: _FileScan, findings: _Findings) -> None:
    import numpy as np

    train_prompts = np.frombuffer(train.prompts, dtype=np.int64)
    order = np.argsort(train_prompts, kind="stable")
    ordered = train_prompts[order]
    for index, prompt in enumerate(np.frombuffer(validation.prompts, dtype=np.int64)):
        at = int(np.searchsorted(ordered, prompt))
        if at < len(ordered) and ordered[at] == prompt:
            findings.add("leakage", place(validation.label, validation.lines[index]),
                         phrase("same prompt as {place}", place=place(train.label, train.lines[order[at]])))


def check_file(
    path: str | Path,
    *,
    format: str = "auto",
    validation_path: str | Path | None = None,
    tokenizer=None,
    max_length: int = 1024,
    window_stride: int | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    micro_batch_size: int = TrainingConfig.micro_batch_size,
    on_progress: Progress | None = None,
) -> Report:
    """Validate `path` (and `validation_path`); with a tokenizer, also check lengths in tokens.

    `micro_batch_size` is the one training will use (default: tanren train's); KTO ratings need
    at least two examples in each micro-batch. Text records longer than `max_length` become
    windows `window_stride` tokens apart (default max_length), which the lengths count."""
    findings = _Findings()
    lengths = TokenLengths(tokenizer, max_length, findings.add, stride=window_stride) if tokenizer is not None else None
    keep_prompts = validation_path is not None
    main = _FileScan(path, format, findings, lengths, keep_prompts=keep_prompts, on_progress=on_progress).run()
    stats = lengths.stats() if lengths else length_stats("characters", main.chars, main.examples)
    rated = FORMAT_KINDS.get(main.stream.format) == RATINGS
    if rated and micro_batch_size < KTO_MIN_MICRO_BATCH:
        findings.add("kto-batch", main.label, phrase("micro-batches of {size} example: the KL term of each would be "
                                                     "its own reward", size=micro_batch_size))
    validation = None
    if validation_path is not None:
        validation = _FileScan(validation_path, format, findings, lengths, keep_prompts=True, on_progress=on_progress).run()
        _same_kind(main, validation, findings)
        _leakage(main, validation, findings)
        train, _, test = split_counts(main.examples, (1 - split[2], 0.0, split[2]))
        planned = (train, validation.examples, test)
    else:
        planned = split_counts(main.examples, split)
    return Report(
        path=str(path), format=main.stream.format, detected_at=main.stream.detected_at, examples=main.examples,
        findings=findings.frozen(), lengths=stats, split=planned, seed=seed, max_length=max_length,
        validation_path=None if validation is None else str(validation_path),
        validation_examples=None if validation is None else validation.examples,
        validation_format=None if validation is None else validation.stream.format,
        labels=(main.labels[1], main.labels[0]) if rated else None,
    )
