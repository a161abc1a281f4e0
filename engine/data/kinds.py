"""What a data file holds - SFT records, preference pairs or KTO ratings - and which training
objective each kind serves, so that a mismatch is one clear error before anything loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.data.hub import numbered, place
from engine.data.preference import PAIR_FORMATS
from engine.errors import ConfigError, DataError
from engine.i18n import N_
from engine.phrases import Phrase, phrase

SFT, PAIRS, RATINGS = "sft", "pairs", "ratings"

FORMAT_KINDS = {
    "text": SFT, "alpaca": SFT, "instruction": SFT, "sharegpt": SFT, "messages": SFT,
    **{format: PAIRS for format in PAIR_FORMATS}, "kto": RATINGS,
}
KIND_NAMES = {SFT: N_("SFT records"), PAIRS: N_("preference pairs"), RATINGS: N_("KTO ratings")}
KIND_SHAPES = {  # {formats}: the formats of the kind
    SFT: N_("conversations or text (formats {formats})"),
    PAIRS: N_("a prompt with a chosen and a rejected answer (formats {formats})"),
    RATINGS: N_("a prompt and a completion labelled true or false (format {formats})"),
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

    def describe(self) -> Phrase:
        if self.detected_at:
            return phrase("{kind} ({format} format, detected from {line})", kind=kind_name(self.kind),
                          format=self.format, line=numbered(self.path, self.detected_at))
        return phrase("{kind} ({format} format)", kind=kind_name(self.kind), format=self.format)

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
    raise DataError(phrase("{path} holds no records", path=str(path)), where=str(path),
                    hint=phrase("add at least one record"))


def kind_name(kind: str) -> Phrase:
    return Phrase(KIND_NAMES[kind])


def _shape(kind: str) -> Phrase:
    formats = ", ".join(format for format, of in FORMAT_KINDS.items() if of == kind)
    return Phrase(KIND_SHAPES[kind], (("formats", formats),))


def mismatch(needs: str | Phrase, wanted: str, data: DataKind) -> Phrase:
    return phrase("{needs} needs {kind}, but {path} holds {holds}", needs=needs, kind=kind_name(wanted),
                  path=data.path, holds=data.describe())


def mismatch_hint(wanted: str, data: DataKind) -> Phrase:
    fitting = [name.upper() for name, kind in OBJECTIVE_KINDS.items() if kind == data.kind]
    objectives = phrase("{first} or {second}", first=fitting[0], second=fitting[1]) if len(fitting) == 2 else fitting[0]
    return phrase("{kind} are {shape}; {other} train with {objectives}", kind=kind_name(wanted), shape=_shape(wanted),
                  other=kind_name(data.kind), objectives=objectives)


def check_objective(objective: str, data: DataKind) -> None:
    """Raise a ConfigError unless the training `objective` (sft, dpo, orpo, kto) learns from `data`."""
    wanted = OBJECTIVE_KINDS.get(objective)
    if wanted is None:
        raise ConfigError(phrase("training.objective is {objective!r}; expected one of: {choices}",
                                 objective=objective, choices=", ".join(OBJECTIVE_KINDS)), where="training.objective")
    if data.kind != wanted:
        raise ConfigError(mismatch(objective.upper(), wanted, data), where=data.where, hint=mismatch_hint(wanted, data))


def require_kind(data: DataKind, wanted: str, needs: str) -> None:
    """Raise a DataError unless `data` is of the `wanted` kind; `needs` names what needs it."""
    if data.kind != wanted:
        raise DataError(mismatch(needs, wanted, data), where=data.where, hint=mismatch_hint(wanted, data))
