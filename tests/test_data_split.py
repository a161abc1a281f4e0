"""The split is deterministic for a seed, independent of record order, and never separates a prompt."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.config import DataConfig
from engine.data import Example, load_examples, load_splits, split_examples
from engine.errors import DataError
from engine.messages import Message
from tests.data_files import chat, write_jsonl


def examples(count: int) -> list[Example]:
    return [
        Example((Message("user", f"質問 {i}"), Message("assistant", f"答え {i}")), None, f"d.jsonl:{i + 1}")
        for i in range(count)
    ]


def contents(part) -> set:
    return {e.messages for e in part}


def test_exact_fractions_and_every_example_in_one_split() -> None:
    data = examples(200)
    splits = split_examples(data, (0.8, 0.1, 0.1), seed=42)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (160, 20, 20)
    assert sorted(e.source for s in (splits.train, splits.validation, splits.test) for e in s) == sorted(
        e.source for e in data
    )
    assert list(splits.train) == [e for e in data if e in splits.train]  # file order kept within a split


def test_same_seed_same_split_whatever_the_order() -> None:
    data = examples(100)
    shuffled = data[:]
    random.Random(7).shuffle(shuffled)
    first, again = split_examples(data, (0.8, 0.1, 0.1), seed=3), split_examples(shuffled, (0.8, 0.1, 0.1), seed=3)
    for a, b in zip((first.train, first.validation, first.test), (again.train, again.validation, again.test)):
        assert contents(a) == contents(b)
    other = split_examples(data, (0.8, 0.1, 0.1), seed=4)
    assert contents(other.validation) != contents(first.validation)


def test_the_split_is_stable_across_processes() -> None:
    # BLAKE2b, not Python's per-process salted hash: the same validation set in every run.
    import subprocess
    import sys

    code = (
        "from tests.test_data_split import examples\n"
        "from engine.data import split_examples\n"
        "print(sorted(e.source for e in split_examples(examples(50), (0.8, 0.1, 0.1), seed=1).validation))"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": str(seed), "PYTHONPATH": str(Path(__file__).parent.parent)}).stdout
        for seed in (1, 2)
    }
    assert len(outputs) == 1 and outputs.pop().count("d.jsonl") == 5


def test_examples_with_the_same_prompt_stay_together() -> None:
    data = examples(40)
    same = [Example((Message("user", "同じ質問"), Message("assistant", f"別の答え {i}")), None, f"s:{i}") for i in range(12)]
    for seed in range(20):
        splits = split_examples(data + same, (0.5, 0.25, 0.25), seed=seed)
        homes = [sum(e in part for e in same) for part in (splits.train, splits.validation, splits.test)]
        assert sorted(homes) == [0, 0, 12]


def test_load_splits_from_a_file_and_with_a_validation_file(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [chat(f"q{i}?", f"a{i}.") for i in range(50)])
    validation = write_jsonl(tmp_path / "val.jsonl", [chat(f"v{i}?", f"w{i}.") for i in range(7)])
    splits = load_splits(DataConfig(path=str(train), split=(0.8, 0.1, 0.1), seed=5))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (40, 5, 5)
    assert load_splits(DataConfig(path=str(train), split=(0.8, 0.1, 0.1), seed=5)) == splits
    explicit = load_splits(DataConfig(path=str(train), validation_path=str(validation), split=(0.8, 0.1, 0.1)))
    assert list(explicit.validation) == load_examples(validation)
    assert (len(explicit.train), len(explicit.test)) == (45, 5)


def test_load_splits_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no training data"):
        load_splits(DataConfig())
    one = write_jsonl(tmp_path / "one.jsonl", [chat("q?", "a.")])
    with pytest.raises(DataError, match="no training examples left"):
        load_splits(DataConfig(path=str(one), split=(0.0, 1.0, 0.0)))
    bad = write_jsonl(tmp_path / "bad.jsonl", [chat("q?", "a."), {"messages": []}])
    with pytest.raises(DataError) as raised:
        load_splits(DataConfig(path=str(bad)))
    assert raised.value.where == f"{bad}:2"
