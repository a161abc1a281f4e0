"""What judging answers in chat should have written: shared by the CLI and the workbench tests,
which take the same steps (a good answer, then an edited one)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from engine.data import check_file

# The tiny model answers greedily with blank lines, which are not judged; sampled, it writes words.
SETTINGS = {"temperature": 1.0, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "max_new_tokens": 4,
            "seed": 3, "system_prompt": "丁寧に"}
EDITED = "Paris.\nIt is Paris."


def records(path: Path) -> list[dict]:
    """The records of a collected file, each meta's time checked and left out (it is the clock's)."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        assert time.time() - 600 < datetime.fromisoformat(line["meta"].pop("time")).timestamp() <= time.time() + 1
    return lines


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def check_good_then_edit(folder: Path, first: str, second: str, model: str) -> list[dict[str, str]]:
    """`hello` answered `first`, marked good; `again` answered `second`, edited into EDITED.
    Returns the conversation after the edit, which later records go on from."""
    meta = {"models": {"answered": model}, "generation": SETTINGS}
    system = {"role": "system", "content": SETTINGS["system_prompt"]}
    again = [system, user("hello"), assistant(first), user("again")]
    assert records(folder / "kto.jsonl") == [{"prompt": again[:2], "completion": [assistant(first)], "label": True,
                                              "meta": {"judgement": "good", **meta}}]
    assert records(folder / "sft.jsonl") == [{"messages": [*again, assistant(EDITED)],
                                              "meta": {"judgement": "edit", **meta}}]
    assert records(folder / "pairs.jsonl") == [{"prompt": again, "chosen": [assistant(EDITED)],
                                                "rejected": [assistant(second)], "meta": {"judgement": "edit", **meta}}]
    for name in ("kto.jsonl", "sft.jsonl", "pairs.jsonl"):
        assert not check_file(folder / name).errors
    return [*again, assistant(EDITED)]
