"""Write small data files in every supported format for the data tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Short questions and answers, half Japanese, that every kind of test trains or chats on.
QA = [
    ("What is the capital of France?", "Paris."),
    ("日本の首都はどこですか？", "東京です。"),
    ("What is two plus two?", "Four."),
    ("こんにちは！", "こんにちは。ご用件は何でしょうか？"),
    ("Name a primary color.", "Red."),
    ("富士山の高さは？", "3776メートルです。"),
]


def chat(user: str, assistant: str, system: str | None = None) -> dict[str, Any]:
    head = [{"role": "system", "content": system}] if system else []
    return {"messages": [*head, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


# A better and a worse answer to some of QA's questions: too short, wrong fact, wrong language.
WORSE = ["Lyon.", "大阪です。", "Five.", "Hello.", "Blue?", "1000メートルです。"]


def pair(prompt: str, chosen: str, rejected: str) -> dict[str, Any]:
    """trl's preference record with an explicit text prompt."""
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def write_pair_data(path: Path, examples: int = 30) -> Path:
    """`examples` preference records cycling through QA (numbered, so no two are duplicates)."""
    return write_jsonl(path, [pair(f"{QA[i % len(QA)][0]} ({i})", QA[i % len(QA)][1], WORSE[i % len(QA)])
                              for i in range(examples)])


def write_chat_data(path: Path, examples: int = 60) -> Path:
    """`examples` chat records cycling through QA."""
    return write_jsonl(path, [chat(*QA[i % len(QA)]) for i in range(examples)])


def write_jsonl(path: Path, records: Iterable[Any], *, encoding: str = "utf-8") -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_bytes(text.encode(encoding))
    return path


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_json(path: Path, records: list[Any], *, indent: int | None = 2) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=indent), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_parquet(path: Path, records: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path
