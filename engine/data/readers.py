"""Stream records out of JSONL, JSON (array), CSV/TSV and Parquet files, never loading a file whole.

`read_records` yields `(line, value)`: `line` is 1-based (the row number for Parquet); `value`
is the parsed record, or a RecordError for a record that cannot be parsed. Problems with the
file as a whole (missing, unknown type) raise DataError. A file that is not UTF-8 yields one
error at the first bad line and stops: nothing after it can be trusted.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from engine.data.encoding import UTF8_BOM, not_utf8
from engine.data.hub import hub_records, is_hub, parse
from engine.data.problems import Detail, RecordError
from engine.errors import DataError
from engine.phrases import phrase

Progress = Callable[[float], None]  # called now and then with the fraction of the file read
Record = tuple[int, Any]

CHUNK = 1 << 20
MAX_RECORD_CHARS = 64 << 20
PROGRESS_EVERY = 4096
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet", ".pq": "parquet"}
# Columns of a CSV file that hold a conversation as JSON text.
JSON_COLUMNS = ("messages", "conversations")
# A CSV cell is text, so KTO's boolean label is written true or false.
CSV_BOOLEANS = {"true": True, "false": False}


def ensure_readable(path: str | Path) -> None:
    if is_hub(path):
        parse(str(path))  # whether it is cached shows when it is read: finding out costs as much
        return
    path = Path(path)
    if not path.exists():
        raise DataError(phrase("{path} does not exist", path=str(path)), where=str(path), hint=phrase("check the path"))
    if not path.is_file():
        raise DataError(phrase("{path} is not a file", path=str(path)), where=str(path),
                        hint=phrase("give the path of one data file"))
    try:
        path.open("rb").close()
    except OSError as exc:
        raise DataError(phrase("cannot read {path}: {why}", path=str(path), why=exc.strerror), where=str(path)) from None


def read_records(path: str | Path, on_progress: Progress | None = None) -> Iterator[Record]:
    progress = on_progress or (lambda _fraction: None)
    if is_hub(path):
        return hub_records(str(path), progress)
    path = Path(path)
    ensure_readable(path)
    kind = _file_kind(path)
    if kind == "parquet":
        return _parquet(path, progress)
    if kind == "csv" or kind == "tsv":
        return _csv(path, "," if kind == "csv" else "\t", progress)
    first = _first_char(path) if kind == "json" else ""
    if first == "[":
        return _json_array(path, progress)
    if first == "{" and not _first_line_is_object(path):
        raise DataError(
            phrase("{path} holds a single JSON object, not a list of records", path=str(path)), where=str(path),
            hint=phrase("a .json data file must be an array [{...}, {...}] or one object per line (JSON Lines)"),
        )
    return _jsonl(path, progress)


def _file_kind(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind:
        return kind
    first = _first_char(path)
    if first in ("[", "{"):
        return "json"
    raise DataError(
        phrase("cannot tell the file type of {name}", name=path.name), where=str(path),
        hint=phrase("use a .jsonl, .json, .csv, .tsv or .parquet file"),
    )


def _first_char(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4096).removeprefix(UTF8_BOM).lstrip()
    return chr(head[0]) if head else ""


def _first_line_is_object(path: Path) -> bool:
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    return isinstance(json.loads(raw.removeprefix(UTF8_BOM)), dict)
                except ValueError:  # JSONDecodeError and UnicodeDecodeError
                    return False
    return False


def _size(handle: BinaryIO) -> int:
    return max(1, os.fstat(handle.fileno()).st_size)


_SCAN = json.JSONDecoder().scan_once  # the C scanner that json.loads ends in


def _parse(text: str) -> Any:
    """json.loads(text) without its Python wrappers on the common path (twice as fast per line)."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:  # leading whitespace, or not JSON: json.loads parses it or says why
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _jsonl(path: Path, progress: Progress) -> Iterator[Record]:
    with path.open("rb") as handle:
        for line, raw in _numbered_lines(handle, progress):
            try:
                # Without its line break, which json would call a control character in an open string.
                value = _parse(raw.rstrip(b"\r\n").decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield line, not_utf8(path, raw, exc.start)
                return
            except json.JSONDecodeError as exc:
                if raw.strip():  # blank lines are skipped, as every JSON Lines reader does
                    yield line, RecordError("invalid-json", phrase("{error} (column {column})", error=exc.msg,
                                                                   column=exc.colno))
                continue
            except RecursionError:
                yield line, _TOO_DEEP
                continue
            if b"\\ud" in raw or b"\\uD" in raw:  # rare: check the escapes form whole characters
                value = _with_whole_characters(value)
            yield line, value
        progress(1.0)


def _numbered_lines(handle: BinaryIO, progress: Progress) -> Iterator[tuple[int, bytes]]:
    """The file's lines numbered from 1, the BOM dropped, with progress every few thousand lines."""
    size, done = _size(handle), 0
    for line, raw in enumerate(handle, 1):
        done += len(raw)
        yield line, (raw.removeprefix(UTF8_BOM) if line == 1 else raw)
        if line % PROGRESS_EVERY == 0:
            progress(done / size)


_TOO_DEEP = RecordError("invalid-json", phrase("nested too deeply"))


def _with_whole_characters(value: Any) -> Any:
    """`value`, or an error if a \\uD800-\\uDFFF escape left half a character (no tokenizer takes it)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        escape = f"\\u{ord(exc.object[exc.start]):04x}"
        return RecordError("invalid-json", phrase("the escape {escape} is half of a character (an unpaired surrogate)",
                                                  escape=escape))
    return value


class _NotUtf8(Exception):
    def __init__(self, line: int, error: RecordError):
        self.line = line
        self.error = error


def _text_lines(path: Path, handle: BinaryIO, progress: Progress) -> Iterator[str]:
    """Decoded lines (BOM dropped); raises _NotUtf8 at the first line that is not UTF-8."""
    for line, raw in _numbered_lines(handle, progress):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _NotUtf8(line, not_utf8(path, raw, exc.start)) from None


def _csv(path: Path, delimiter: str, progress: Progress) -> Iterator[Record]:
    csv.field_size_limit(MAX_RECORD_CHARS)  # the default (128 KiB) is too small for long documents
    with path.open("rb") as handle:
        reader = csv.reader(_text_lines(path, handle, progress), delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            header = [name.strip() for name in header]
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    yield line, RecordError("malformed-csv", phrase("{values} values for {columns} columns",
                                                                    values=len(row), columns=len(header)))
                    continue
                yield line, _csv_record(header, row)
        except _NotUtf8 as exc:
            yield exc.line, exc.error
        except csv.Error as exc:
            yield reader.line_num, RecordError("malformed-csv", phrase("{error} (reading stopped here)", error=str(exc)))
        progress(1.0)


def _csv_record(header: list[str], row: list[str]) -> dict[str, Any] | RecordError:
    record: dict[str, Any] = dict(zip(header, row))
    for column in JSON_COLUMNS:
        cell = record.get(column)
        if isinstance(cell, str) and cell.lstrip().startswith("["):
            try:
                record[column] = json.loads(cell)
            except json.JSONDecodeError as exc:
                return RecordError("invalid-json", phrase("column {column!r}: {error} (character {position})",
                                                          column=column, error=exc.msg, position=exc.pos + 1))
    label = record.get("label")
    if label is not None:
        record["label"] = CSV_BOOLEANS.get(label.strip().lower(), label)
    return record


class _Malformed(Exception):
    def __init__(self, line: int, detail: Detail):
        self.line, self.detail = line, detail


class _JsonArray:
    """Elements of a top-level JSON array, decoded one at a time from a bounded text buffer."""

    _SPACE = re.compile(r"[ \t\r\n]*")

    def __init__(self, path: Path, handle: BinaryIO, progress: Progress):
        self.path, self.handle, self.progress = path, handle, progress
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.size, self.done = _size(handle), 0
        self.buf, self.pos, self.eof = "", 0, False
        # Lines are counted lazily up to `counted` so that finding a record's line stays linear.
        self.line, self.counted = 1, 0
        self.byte_line = 1  # line of the next undecoded byte, to place an encoding error

    def records(self) -> Iterator[Record]:
        json_decoder = json.JSONDecoder()
        self._skip_space()
        if self.buf[self.pos:self.pos + 1] != "[":
            raise DataError(phrase("{path} is not a JSON array", path=str(self.path)), where=str(self.path))
        self.pos += 1
        count = 0
        if self._peek() == "]":
            return
        while True:
            self._skip_space()
            line = self._line()
            try:
                value = self._decode(json_decoder)
            except _Malformed as exc:
                yield exc.line, RecordError("invalid-json", exc.detail)
                return
            yield line, value
            count += 1
            if count % PROGRESS_EVERY == 0:
                self.progress(self.done / self.size)
            following = self._peek()
            if following == ",":
                self.pos += 1
            elif following == "]":
                self.pos += 1
                if self._peek():
                    yield self._line(), RecordError("invalid-json", phrase("text after the closing ']'"))
                self.progress(1.0)
                return
            else:
                problem = phrase("the array is not closed with ']'") if not following else phrase("expected ',' or ']' here")
                yield self._line(), RecordError("invalid-json", problem)
                return

    def _fill(self) -> bool:
        """Read one more chunk into the buffer (dropping consumed text); False at the end."""
        if self.eof:
            return False
        self._line()
        self.buf, self.counted, self.pos = self.buf[self.pos:], 0, 0
        raw = self.handle.read(CHUNK)
        self.done += len(raw)
        try:
            text = self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            line_start = raw.rfind(b"\n", 0, exc.start) + 1
            line_end = raw.find(b"\n", exc.start)
            sample = raw[line_start:line_end if line_end >= 0 else len(raw)]
            line = self.byte_line + raw.count(b"\n", 0, exc.start)
            raise _NotUtf8(line, not_utf8(self.path, sample, exc.start - line_start)) from None
        self.byte_line += raw.count(b"\n")
        if self.done == len(raw):
            text = text.removeprefix("\ufeff")
        self.buf += text
        self.eof = not raw
        return True

    def _skip_space(self) -> None:
        while True:
            self.pos = self._SPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self._fill():
                return

    def _peek(self) -> str:
        self._skip_space()
        return self.buf[self.pos:self.pos + 1]

    def _line(self) -> int:
        self.line += self.buf.count("\n", self.counted, self.pos)
        self.counted = self.pos
        return self.line

    def _decode(self, decoder: json.JSONDecoder) -> Any:
        last_error = None
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise _Malformed(self._line(), _TOO_DEEP.detail) from None
            except json.JSONDecodeError as exc:
                # An error may only mean the element continues in the next chunk. It is real at
                # the end of the file, or when more text does not move it (an unterminated
                # string always moves, so it is bounded by the record size limit instead).
                error = (exc.msg, exc.pos - self.pos)
                repeated = error == last_error and not exc.msg.startswith("Unterminated string")
                too_big = len(self.buf) - self.pos > MAX_RECORD_CHARS
                if repeated or too_big or not self._fill():
                    line = self._line() + self.buf.count("\n", self.pos, exc.pos)
                    raise _Malformed(line, phrase("record larger than 64 MiB, or a string never closed") if too_big
                                     else exc.msg)
                last_error = error
                continue
            if end == len(self.buf) and self._fill():
                continue  # a number at the very end of the buffer may continue in the next chunk
            start, self.pos = self.pos, end
            if self.buf.find("\\ud", start, end) >= 0 or self.buf.find("\\uD", start, end) >= 0:
                return _with_whole_characters(value)
            return value


def _json_array(path: Path, progress: Progress) -> Iterator[Record]:
    with path.open("rb") as handle:
        try:
            yield from _JsonArray(path, handle, progress).records()
        except _NotUtf8 as exc:
            yield exc.line, exc.error


def _parquet(path: Path, progress: Progress) -> Iterator[Record]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(phrase("{path} is not a readable Parquet file: {error}", path=str(path), error=str(exc)),
                        where=str(path)) from None
    total, row = max(1, table.metadata.num_rows), 0
    with table:
        for batch in table.iter_batches(batch_size=PROGRESS_EVERY):
            for record in batch.to_pylist():
                row += 1
                yield row, record
            progress(row / total)
