"""What a data file holds - SFT records, preference pairs or KTO ratings - and which training
objective each kind serves, so that a mismatch is one clear error before anything loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.data.hub import numbering, place
from engine.data.preference import PAIR_FORMATS
from engine.errors import ConfigError, DataError

SFT, PAIRS, RATINGS = "sft", "pairs", "ratings"

FORMAT_KINDS = {
    "text": SFT, "alpaca": SFT, "instruction": SFT, "sharegpt": SFT, "messages": SFT,
    **{format: PAIRS for format in PAIR_FORMATS}, "kto": RATINGS,
}
KIND_NAMES = {SFT: "SFT records", PAIRS: "preference pairs", RATINGS: "KTO ratings"}
KIND_SHAPES = {
    SFT: "conversations or text (formats text, alpaca, instruction, sharegpt, messages)",
    PAIRS: "a prompt with a chosen and a rejected answer (formats " + ", ".join(PAIR_FORMATS) + ")",
    RATINGS: "a prompt and a completion labelled true or false (format kto)",
}
# The data each training objective learns from; trl's DPO and ORPO take pairs, its KTO ratings.
OBJECTIVE_KINDS = {"sft": SFT, "dpo": PAIRS, "orpo": PAIRS, "kto": RATINGS}
# The objective a file of each kind trains with unless told otherwise: pairs go to DPO, the usual one.
DEFAULT_OBJECTIVES = {SFT: "sft", PAIRS: "dpo", RATINGS: "kto"}


@dataclass(frozen=True)
class DataKind:
    path: str
    format: str
    detected_at: int | None  # the line the format was detected from; None when it was given

    @property
    def kind(self) -> str:
        return FORMAT_KINDS[self.format]

    def describe(self) -> str:
        how = f", detected from {numbering(self.path)} {self.detected_at}" if self.detected_at else ""
        return f"{KIND_NAMES[self.kind]} ({self.format} format{how})"

    @property
    def where(self) -> str:
        return place(self.path, self.detected_at) if self.detected_at else self.path


def data_kind(path: str | Path, format: str = "auto") -> DataKind:
    """What `path` holds, from the first record whose format can be told (or from `format`)."""
    from engine.data.loading import ExampleStream, record_error
    from engine.data.problems import RecordError

    stream = ExampleStream(path, format)
    if stream.format is not None:
        return DataKind(str(path), stream.format, None)
    for line, item in stream:
        if stream.format is not None:
            return DataKind(str(path), stream.format, stream.detected_at)
        if isinstance(item, RecordError):
            raise record_error(stream.label, line, item)
    raise DataError(f"{path} holds no records", where=str(path), hint="add at least one record")


def mismatch(needs: str, wanted: str, data: DataKind) -> str:
    return f"{needs} needs {KIND_NAMES[wanted]}, but {data.path} holds {data.describe()}"


def mismatch_hint(wanted: str, data: DataKind) -> str:
    fitting = [name.upper() for name, kind in OBJECTIVE_KINDS.items() if kind == data.kind]
    return (f"{KIND_NAMES[wanted]} are {KIND_SHAPES[wanted]}; {KIND_NAMES[data.kind]} train with "
            f"{' or '.join(fitting)}")


def check_objective(objective: str, data: DataKind) -> None:
    """Raise a ConfigError unless the training `objective` (sft, dpo, orpo, kto) learns from `data`."""
    wanted = OBJECTIVE_KINDS.get(objective)
    if wanted is None:
        raise ConfigError(f"training.objective is {objective!r}; expected one of: {', '.join(OBJECTIVE_KINDS)}",
                          where="training.objective")
    if data.kind != wanted:
        raise ConfigError(mismatch(objective.upper(), wanted, data), where=data.where, hint=mismatch_hint(wanted, data))


def require_kind(data: DataKind, wanted: str, needs: str) -> None:
    """Raise a DataError unless `data` is of the `wanted` kind; `needs` names what needs it."""
    if data.kind != wanted:
        raise DataError(mismatch(needs, wanted, data), where=data.where, hint=mismatch_hint(wanted, data))
