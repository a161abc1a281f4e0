"""Turn the configured data files into training rows (engine.data.rows) in datasets' Arrow format.

With `cache` (a folder in the run), each split's rows are written into an Arrow file there, which
training reads memory-mapped, so a corpus far larger than memory trains. `dataset.json` beside
them records what they were made from (data files, data settings, tokenizer); a resume that finds
the same opens them instead of reading and tokenizing the data again, and so sees the same rows in
the same order: the trainer's saved data position points at the same window. Without `cache` the
rows are built in memory (tests, benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_file, atomic_write_text
from engine.config import RunConfig
from engine.data.rows import Row, RowCounts
from engine.errors import ConfigError
from engine.events import EventLog, Log
from engine.i18n import N_
from engine.phrases import Phrase, joined, phrase

CACHE_VERSION = 1  # raise when the rows of the same data change, so old caches are not reused
RECORD = "dataset.json"


@dataclass(frozen=True)
class TrainData:
    train: Any                 # datasets.Dataset with input_ids and assistant_masks
    validation: Any | None
    train_tokens: int


def build_datasets(config: RunConfig, tokenizer, events: EventLog, *, cache: Path | None = None) -> TrainData:
    if not config.data.path:
        raise ConfigError(phrase("no training data given"), where="data.path",
                          hint=phrase("pass --data FILE (.jsonl, .json, .csv, .parquet) or hf:ORG/NAME"))
    from engine.data import ensure_chat_template

    ensure_chat_template(tokenizer)
    key = _fingerprint(config, tokenizer)
    record = _cached(cache, key)
    if record is None:
        record, train, validation = _build(config, tokenizer, cache, key)
    else:
        events.append(Log.said(phrase("data: the tokenized rows of {path} are reused from {cache}",
                                      path=config.data.path, cache=str(cache))))
        train = _open(cache / "train.arrow")
        validation = _open(cache / "validation.arrow") if record["validation"] is not None else None
    events.append(Log.said(_summary(config, record)))
    return TrainData(train, validation, record["train"]["tokens"])


def _build(config: RunConfig, tokenizer, cache: Path | None, key: str) -> tuple[dict, Any, Any | None]:
    """Read, split and tokenize the data into Arrow (files in `cache`, else memory): the record
    of what the rows came to, and the train and validation datasets."""
    from engine.data import load_splits

    splits = load_splits(config.data)
    if not splits.train:
        raise ConfigError(phrase("{path} leaves no training examples after the split", path=config.data.path),
                          where="data.split")
    if cache is not None:
        (cache / RECORD).unlink(missing_ok=True)  # the record is written last: no record, no cache
    record: dict[str, Any] = {"key": key, "examples": [len(splits.train), len(splits.validation), len(splits.test)]}
    record["train"], train = _write(splits.train, "train", config, tokenizer, cache)
    record["validation"], validation = (_write(splits.validation, "validation", config, tokenizer, cache)
                                        if splits.validation else (None, None))
    if cache is not None:
        atomic_write_text(cache / RECORD, json.dumps(record))
    return record, train, validation


def _write(examples, name: str, config: RunConfig, tokenizer, cache: Path | None) -> tuple[dict, Any]:
    """The rows of one split as a dataset (an Arrow file in `cache`, else a buffer), and their counts."""
    import pyarrow as pa
    from datasets import Dataset

    from engine.data.rows import training_rows

    data, counts = config.data, RowCounts()
    rows = training_rows(examples, tokenizer, max_length=data.max_length, stride=data.window_stride,
                         assistant_only=data.assistant_only_loss, counts=counts)
    if cache is None:
        stream = pa.BufferOutputStream()
        _write_rows(rows, stream=stream)
        return asdict(counts), Dataset.from_buffer(stream.getvalue())
    with atomic_file(cache / f"{name}.arrow") as tmp:
        _write_rows(rows, path=str(tmp))
    return asdict(counts), _open(cache / f"{name}.arrow")


def _write_rows(rows: Iterable[Row], **sink) -> None:
    from datasets import Features, Sequence, Value
    from datasets.arrow_writer import ArrowWriter

    features = Features({"input_ids": Sequence(Value("int32")), "assistant_masks": Sequence(Value("int8"))})
    writer = ArrowWriter(features=features, **sink)
    for row in rows:
        writer.write({"input_ids": row.input_ids, "assistant_masks": row.assistant_masks})
    writer.finalize()


def _open(path: Path):
    from datasets import Dataset

    return Dataset.from_file(str(path))  # memory-mapped: the rows stay on disk


def _cached(cache: Path | None, key: str) -> dict | None:
    try:
        record = json.loads((cache / RECORD).read_text()) if cache is not None else None
    except (OSError, ValueError):
        return None
    return record if record is not None and record.get("key") == key else None


def _fingerprint(config: RunConfig, tokenizer) -> str:
    """What the rows depend on: the data settings, the data files as they are now, the tokenizer."""
    data = config.data
    files = [_state(path) for path in (data.path, data.validation_path) if path]
    tokens = (tokenizer.name_or_path, len(tokenizer), tokenizer.chat_template, tokenizer.bos_token_id,
              tokenizer.eos_token_id)
    text = json.dumps([CACHE_VERSION, asdict(data), files, tokens], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _state(path: str) -> tuple:
    """What tells one copy of a data source from another: a file's size and time, a cached dataset's revision."""
    from engine.data.hub import is_hub, snapshot

    if is_hub(path):
        return path, str(snapshot(path))
    if not os.path.isfile(path):
        return (path,)  # reading it says what is wrong
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


def in_clauses(parts: list[Phrase]) -> Phrase | str:
    """The clauses of one log line, "first; second; ...", each one a phrase of its own."""
    return joined(parts, N_("{first}; {second}"))


def _summary(config: RunConfig, record: dict) -> Phrase:
    train, validation, test = record["examples"]
    counts, max_length = record["train"], config.data.max_length
    clauses = [phrase("data: {train} training, {validation} validation, {test} test examples; {tokens} training "
                      "tokens", train=train, validation=validation, test=test, tokens=counts["tokens"])]
    if counts["documents"]:
        clauses.append(phrase("{documents} text records became {windows} windows of at most {max_length} tokens",
                              documents=counts["documents"], windows=counts["windows"], max_length=max_length))
    if counts["cut"]:
        clauses.append(phrase("{tokens} tokens cut at max_length {max_length}", tokens=counts["cut"],
                              max_length=max_length))
    if counts["untrained"]:
        clauses.append(phrase("{count} left out, their answers cut away at max_length", count=counts["untrained"]))
    return in_clauses(clauses)
