"""Datasets in the Hugging Face cache: `hf:ORG/NAME[:SPLIT]` reads like a data file, never downloads.

The dataset's files come from the hub cache that `hf download --repo-type dataset ORG/NAME` fills
(huggingface_hub finds the snapshot offline) and `datasets` reads them as `load_dataset` does on
a folder (Parquet, JSON Lines, CSV...; splits from the file names, "train" by default). Records
are numbered from 1 in the split's order; errors name `hf:ORG/NAME:SPLIT record N`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import DataError
from engine.phrases import Phrase, phrase

PREFIX = "hf:"
DEFAULT_SPLIT = "train"
PROGRESS_EVERY = 4096


@dataclass(frozen=True)
class HubData:
    repo: str  # ORG/NAME
    split: str

    @property
    def label(self) -> str:
        return f"{PREFIX}{self.repo}:{self.split}"


def is_hub(path: str | Path) -> bool:
    return str(path).startswith(PREFIX)


def place(label: str, number: int) -> str:
    """Where a record is: `file:line`, or `hf:ORG/NAME:SPLIT record N`."""
    return f"{label} record {number}" if is_hub(label) else f"{label}:{number}"


def numbered(label: str, number: int) -> Phrase:
    """Record `number` of `label` in words: a line of a file, a record of a dataset."""
    return phrase("record {number}", number=number) if is_hub(label) else phrase("line {number}", number=number)


def parse(spec: str) -> HubData:
    repo, _, split = spec.removeprefix(PREFIX).partition(":")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise DataError(phrase("{spec!r} does not name a dataset", spec=spec), where=spec,
                        hint=phrase("write hf:ORG/NAME or hf:ORG/NAME:SPLIT, e.g. hf:my-org/manuals:train"))
    return HubData(repo, split or DEFAULT_SPLIT)


def hub_records(spec: str, progress: Callable[[float], None]) -> Iterator[tuple[int, Any]]:
    """(record number, record) for every record of the cached split, with progress now and then."""
    data = parse(spec)
    dataset = _load(data, _snapshot(data))
    total = max(1, len(dataset))
    for number, record in enumerate(dataset, 1):
        yield number, record
        if number % PROGRESS_EVERY == 0:
            progress(number / total)
    progress(1.0)


def snapshot(spec: str) -> Path:
    """The cached snapshot folder of `spec`'s dataset: its name is the revision, so it tells one copy from another."""
    return _snapshot(parse(spec))


def _snapshot(data: HubData) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(data.repo, repo_type="dataset", local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise DataError(
            phrase("the dataset {repo} is not in the local Hugging Face cache (tanren never downloads at run time)",
                   repo=data.repo),
            where=data.label, hint=phrase("download it first with: {command}", command=_download(data.repo)),
        ) from None


def _download(repo: str) -> str:
    return f"hf download --repo-type dataset {repo}"


def _load(data: HubData, folder: Path):
    from datasets import disable_progress_bars, load_dataset

    disable_progress_bars()  # the reading shows tanren's progress, not a second bar of datasets'
    try:
        splits = load_dataset(str(folder))
    except Exception as exc:  # datasets raises many kinds (no data files, mixed formats, bad Parquet...)
        raise DataError(phrase("datasets cannot read the cached copy of {repo}: {error}", repo=data.repo, error=str(exc)),
                        where=str(folder),
                        hint=phrase("re-download it with: {command}", command=_download(data.repo))) from None
    if data.split not in splits:
        raise DataError(phrase("the dataset {repo} has no split {split!r}", repo=data.repo, split=data.split),
                        where=data.label, hint=phrase("name one of its splits: {splits}", splits=", ".join(
                            f"hf:{data.repo}:{name}" for name in splits)))
    return splits[data.split]
