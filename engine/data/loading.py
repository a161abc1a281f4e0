"""Read a data file into examples: detect its record format, normalize every record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from engine.data.example import AnyExample, Example
from engine.data.formats import FORMATS, detect_format, normalize
from engine.data.hub import place
from engine.data.kinds import SFT, DataKind, require_kind
from engine.data.problems import RecordError, kind_hint, title
from engine.data.readers import Progress, read_records
from engine.errors import DataError
from engine.phrases import phrase

MAX_RECORD_BYTES = 10 << 20


class ExampleStream:
    """Iterate `(line, example | RecordError)` over a file; `format` is known after the first record.

    The examples are Examples, or PreferencePairs or RatedExamples for a preference format.

    With format "auto" the format is detected from the first record that is an object with
    recognizable fields (`detected_at` is its line) and then required of every record, so a
    record that lacks a field is reported as such instead of being read as another format.
    """

    def __init__(self, path: str | Path, format: str = "auto", on_progress: Progress | None = None):
        if format != "auto" and format not in FORMATS:
            raise DataError(phrase("unknown format {format!r}", format=format),
                            hint=phrase("use one of: {choices}", choices=", ".join(("auto", *FORMATS))))
        self.path = path
        self.label = str(path)
        self.format: str | None = None if format == "auto" else format
        self.detected_at: int | None = None
        self.on_progress = on_progress

    def __iter__(self) -> Iterator[tuple[int, AnyExample | RecordError]]:
        label, format = self.label, self.format
        for line, value in read_records(self.path, self.on_progress):
            if not isinstance(value, RecordError):
                try:
                    if format is None:
                        format = self.format = detect_format(value)
                        self.detected_at = line
                    value = normalize(value, format, place(label, line))
                    _check_size(value)
                except RecordError as error:
                    value = error
            yield line, value


def _check_size(example: AnyExample) -> None:
    """Refuse a record above MAX_RECORD_BYTES of text before anything tokenizes it (tokenizing 50 MB
    takes minutes and gigabytes); counting characters first keeps the usual case free."""
    contents = example.contents()
    if 4 * sum(map(len, contents)) <= MAX_RECORD_BYTES:  # UTF-8 takes at most 4 bytes a character
        return
    size = sum(len(content.encode()) for content in contents)
    if size > MAX_RECORD_BYTES:
        raise RecordError("too-large", phrase("{size:,.1f} MiB of text, above the limit of {limit} MiB a record",
                                              size=size / 2**20, limit=MAX_RECORD_BYTES >> 20))


def record_error(label: str, line: int, error: RecordError) -> DataError:
    return DataError(phrase("{problem}: {detail}", problem=title(error.code), detail=error.detail),
                     where=place(label, line), hint=error.hint)


def load_records(path: str | Path, format: str = "auto") -> tuple[DataKind, list[AnyExample]]:
    """What the file holds and every example of it; raises DataError naming file:line at the
    first bad record."""
    stream = ExampleStream(path, format)
    examples = []
    for line, item in stream:
        if isinstance(item, RecordError):
            raise record_error(stream.label, line, item)
        examples.append(item)
    if not examples:
        raise DataError(phrase("{path} holds no records", path=str(path)), where=str(path), hint=kind_hint("empty-file"))
    return DataKind(str(path), stream.format, stream.detected_at), examples


def load_examples(path: str | Path, format: str = "auto", *, needs: str = "SFT") -> list[Example]:
    """Every example of a file of SFT records (conversations or text); a file of another kind is
    a DataError that says what `needs` them."""
    data, examples = load_records(path, format)
    require_kind(data, SFT, needs)
    return examples
