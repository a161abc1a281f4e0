"""The chat-to-data loop: every judgement of an answer in chat appends training data to a dataset.

    $TANREN_HOME/datasets/NAME/sft.jsonl    edited answers, as conversations (messages format)
    $TANREN_HOME/datasets/NAME/pairs.jsonl  edited beats original, picked beats the other side (preference)
    $TANREN_HOME/datasets/NAME/kto.jsonl    answers marked good or bad (kto)

One file per kind, because a data file holds one kind of data (engine.data.kinds): each file is
what `tanren data check` reads and `tanren train` learns from with the matching objective. Every
record holds the conversation so far with the system prompt, and a `meta` object (the judgement,
which models answered, the generation settings, the time) that the data formats ignore.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from engine.atomic import atomic_append_text
from engine.chat.history import with_system_prompt
from engine.config import GenerationConfig
from engine.data.kinds import PAIRS, RATINGS, SFT
from engine.errors import TanrenError
from engine.i18n import Gettext
from engine.messages import Message, as_dicts
from engine.paths import Home
from engine.phrases import phrase

FILES = {SFT: "sft.jsonl", PAIRS: "pairs.jsonl", RATINGS: "kto.jsonl"}
FORMATS = {SFT: "messages", PAIRS: "preference", RATINGS: "kto"}
DEFAULT_DATASET = "chat"


@dataclass(frozen=True)
class Turn:
    """One answered message: the conversation before it, the question, and what a model said."""

    history: tuple[Message, ...]
    question: str
    answer: str
    model: str  # the label of the target that answered
    params: GenerationConfig  # the settings of this answer, its seed included

    def prompt(self) -> list[dict[str, str]]:
        """The turns the answer follows, as the model got them: the system prompt set for the
        chat first (it replaces one in the history), the question last."""
        return as_dicts(with_system_prompt((*self.history, Message("user", self.question)), self.params.system_prompt))

    def with_answer(self, answer: str) -> Turn:
        return dataclasses.replace(self, answer=answer)


@dataclass(frozen=True)
class Counts:
    sft: int = 0
    pairs: int = 0
    ratings: int = 0

    def describe(self, _: Gettext) -> str:
        return _("{sft} SFT · {pairs} pairs · {ratings} KTO", sft=self.sft, pairs=self.pairs, ratings=self.ratings)


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: Path

    @classmethod
    def open(cls, home: Home, name: str) -> Dataset:
        return cls(name, home.dataset_dir(name))

    def path(self, kind: str) -> Path:
        return self.folder / FILES[kind]

    def counts(self) -> Counts:
        def lines(kind: str) -> int:
            path = self.path(kind)
            return path.read_bytes().count(b"\n") if path.is_file() else 0

        return Counts(lines(SFT), lines(PAIRS), lines(RATINGS))

    def files(self) -> list[tuple[str, Path]]:
        """(kind, path) of the files that hold records."""
        return [(kind, self.path(kind)) for kind in FILES if self.path(kind).is_file()]

    def append(self, records: Sequence[tuple[str, dict]]) -> Counts:
        """Check every record as the data doctor reads it, then append each to its kind's file."""
        for kind, record in records:
            _check(kind, record)
        for kind, record in records:
            atomic_append_text(self.path(kind), json.dumps(record, ensure_ascii=False) + "\n")
        return self.counts()


def list_datasets(home: Home) -> list[Dataset]:
    """The collected datasets, newest first."""
    if not home.datasets.is_dir():
        return []
    folders = [path for path in home.datasets.iterdir() if path.is_dir() and any(
        (path / name).is_file() for name in FILES.values())]
    return [Dataset(path.name, path) for path in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)]


def default_dataset(home: Home) -> Dataset:
    """The dataset a chat writes to until another is chosen: the one written last, else `chat`."""
    datasets = list_datasets(home)
    return datasets[0] if datasets else Dataset.open(home, DEFAULT_DATASET)


def rate(dataset: Dataset, turn: Turn, good: bool) -> Counts:
    """Good or bad: one KTO rating."""
    record = {"prompt": turn.prompt(), "completion": _answer(turn.answer), "label": good,
              "meta": _meta("good" if good else "bad", turn, answered=turn.model)}
    return dataset.append([(RATINGS, record)])


def edit(dataset: Dataset, turn: Turn, text: str) -> Counts:
    """An answer edited into the one wanted: the conversation with it, and a pair where it beats the original."""
    if " ".join(text.split()) == " ".join(turn.answer.split()):
        raise TanrenError(phrase("the edited answer is the same as the model's"),
                          hint=phrase("change the answer, or leave it"))
    meta = _meta("edit", turn, answered=turn.model)
    conversation = {"messages": [*turn.prompt(), *_answer(text)], "meta": meta}
    pair = {"prompt": turn.prompt(), "chosen": _answer(text), "rejected": _answer(turn.answer), "meta": meta}
    return dataset.append([(SFT, conversation), (PAIRS, pair)])


def prefer(dataset: Dataset, chosen: Turn, rejected: Turn) -> Counts:
    """Compare mode: the better side's answer beats the other's, after the better side's conversation."""
    if " ".join(chosen.answer.split()) == " ".join(rejected.answer.split()):
        raise TanrenError(phrase("both sides gave the same answer; there is nothing to prefer"),
                          hint=phrase("ask again with another seed, or mark the answer good or bad in single mode"))
    record = {"prompt": chosen.prompt(), "chosen": _answer(chosen.answer), "rejected": _answer(rejected.answer),
              "meta": _meta("prefer", chosen, chosen=chosen.model, rejected=rejected.model)}
    return dataset.append([(PAIRS, record)])


def _answer(text: str) -> list[dict[str, str]]:
    if not text.strip():
        raise TanrenError(phrase("the answer is empty; there is nothing to judge"),
                          hint=phrase("ask again and let the model answer"))
    return [Message("assistant", text).as_dict()]


def _meta(judgement: str, turn: Turn, **models: str) -> dict:
    return {"judgement": judgement, "models": models, "generation": dataclasses.asdict(turn.params),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _check(kind: str, record: dict) -> None:
    """The data doctor's own reading of the record, so that no judgement writes a line it refuses."""
    from engine.data.formats import detect_format, normalize
    from engine.data.problems import RecordError

    try:
        if detect_format(record) != FORMATS[kind]:
            raise RecordError("unknown-format", f"it reads as {detect_format(record)}")
        normalize(record, FORMATS[kind], "chat")
    except RecordError as exc:
        raise TanrenError(phrase("this judgement would write a bad {format} record: {detail}",
                                 format=FORMATS[kind], detail=exc.detail)) from None
