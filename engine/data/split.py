"""Deterministic train/validation/test split.

Each example gets a key: the BLAKE2b hash of the seed and the example's normalized prompt.
Examples are ordered by key and cut at the exact fractions (rounded), so the split depends only
on the seed and the contents, never on the order of records in the file or in memory. Examples
that share a prompt (including exact duplicates) share a key and the cuts never separate them,
so the same question cannot leak from training into validation or test. Within a split,
examples keep their file order. Preference pairs and KTO ratings split the same way, by their prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from engine.config.schema import DataConfig
from engine.data.example import AnyExample
from engine.data.kinds import SFT, require_kind
from engine.data.loading import load_records
from engine.errors import DataError
from engine.phrases import phrase


@dataclass(frozen=True)
class Splits:
    train: tuple[AnyExample, ...]
    validation: tuple[AnyExample, ...]
    test: tuple[AnyExample, ...]


def split_counts(total: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """(train, validation, test) sizes before same-prompt groups are kept together."""
    validation = int(total * fractions[1] + 0.5)
    test = min(total - validation, int(total * fractions[2] + 0.5))
    return total - validation - test, validation, test


def split_key(example: AnyExample, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\0{example.prompt_key()}".encode(), digest_size=16).digest()


def split_examples(examples: Sequence[AnyExample], fractions: Sequence[float], seed: int) -> Splits:
    keys = [split_key(e, seed) for e in examples]
    order = sorted(range(len(examples)), key=keys.__getitem__)
    _train, validation, test = split_counts(len(examples), fractions)

    def cut(position: int) -> int:
        while 0 < position < len(order) and keys[order[position]] == keys[order[position - 1]]:
            position += 1
        return position

    first, second = cut(validation), cut(validation + test)
    part = [0] * len(examples)  # 0 train, 1 validation, 2 test
    for rank, index in enumerate(order):
        part[index] = 1 if rank < first else 2 if rank < second else 0
    chosen = [tuple(e for e, p in zip(examples, part) if p == want) for want in (0, 1, 2)]
    return Splits(*chosen)


def load_splits(config: DataConfig, *, kind: str | None = SFT, needs: str = "SFT") -> Splits:
    """Load `config.path` and split it; with `validation_path`, that file is the validation split
    and `path` is split into train and test by the test fraction. Files must hold `kind` of data
    (engine.data.kinds; None takes any kind, the same in both files); `needs` names what needs it."""
    if not config.path:
        raise DataError(phrase("no training data given"), where="data.path",
                        hint=phrase("set data.path to a .jsonl, .json, .csv or .parquet file"))
    data, examples = load_records(config.path, config.format)
    wanted = data.kind if kind is None else kind
    require_kind(data, wanted, needs)
    if config.validation_path:
        validation_data, validation = load_records(config.validation_path, config.format)
        require_kind(validation_data, wanted, needs)
        rest = split_examples(examples, (1 - config.split[2], 0.0, config.split[2]), config.seed)
        splits = Splits(rest.train, tuple(validation), rest.test)
    else:
        splits = split_examples(examples, config.split, config.seed)
    if not splits.train:
        raise DataError(
            phrase("no training examples left after the split of {examples} examples", examples=len(examples)),
            where="data.split", hint=phrase("add examples or give the train part a larger fraction"),
        )
    return splits
