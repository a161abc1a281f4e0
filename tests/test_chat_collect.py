"""Judged answers become training data: the records each judgement writes, the data doctor's
verdict on them, and appends that stay whole when the writer is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.chat.collect import Dataset, Turn, default_dataset, edit, list_datasets, prefer, rate
from engine.config import GenerationConfig
from engine.data import check_file
from engine.errors import InvalidNameError, TanrenError
from engine.i18n import load_catalog
from engine.messages import Message
from engine.paths import Home
from tests.judged import assistant, records

ENGLISH = load_catalog("en").gettext

PARAMS = GenerationConfig(temperature=0.0, max_new_tokens=16, seed=7, system_prompt="Answer briefly.")
TURN = Turn((Message("user", "Hi"), Message("assistant", "Hello!")), "What is the capital of France?",
            "Lyon.", "tiny", PARAMS)
PROMPT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is the capital of France?"}]
GENERATION = {"temperature": 0.0, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "max_new_tokens": 16,
              "seed": 7, "system_prompt": "Answer briefly."}


def test_each_judgement_writes_its_records_and_the_doctor_accepts_them(home: Home) -> None:
    dataset = Dataset.open(home, "capitals")
    assert rate(dataset, TURN, False).describe(ENGLISH) == "0 SFT · 0 pairs · 1 KTO"
    assert edit(dataset, TURN, "Paris.").describe(ENGLISH) == "1 SFT · 1 pairs · 1 KTO"
    other = Turn(TURN.history, TURN.question, "Marseille.", "tiny + tuned", PARAMS)
    assert prefer(dataset, TURN.with_answer("Paris."), other).describe(ENGLISH) == "1 SFT · 2 pairs · 1 KTO"

    folder = home.root / "datasets" / "capitals"
    edited = {"judgement": "edit", "models": {"answered": "tiny"}, "generation": GENERATION}
    assert records(folder / "kto.jsonl") == [{"prompt": PROMPT, "completion": [assistant("Lyon.")], "label": False, "meta": {
        "judgement": "bad", "models": {"answered": "tiny"}, "generation": GENERATION}}]
    assert records(folder / "sft.jsonl") == [{"messages": [*PROMPT, assistant("Paris.")], "meta": edited}]
    assert records(folder / "pairs.jsonl") == [
        {"prompt": PROMPT, "chosen": [assistant("Paris.")], "rejected": [assistant("Lyon.")], "meta": edited},
        {"prompt": PROMPT, "chosen": [assistant("Paris.")], "rejected": [assistant("Marseille.")], "meta": {
            "judgement": "prefer", "models": {"chosen": "tiny", "rejected": "tiny + tuned"}, "generation": GENERATION}},
    ]
    formats = {}
    for kind, path in dataset.files():
        report = check_file(path)
        assert report.usable and not report.errors, report.errors
        formats[kind] = report.format
    assert formats == {"sft": "messages", "pairs": "preference", "ratings": "kto"}
    assert [d.name for d in list_datasets(home)] == ["capitals"] and default_dataset(home).name == "capitals"


def test_judgements_the_doctor_would_refuse_write_nothing(home: Home) -> None:
    dataset = default_dataset(home)
    assert dataset.name == "chat"
    with pytest.raises(TanrenError, match="the same as the model's"):
        edit(dataset, TURN, "  Lyon. ")
    with pytest.raises(TanrenError, match="nothing to prefer"):
        prefer(dataset, TURN, TURN)
    with pytest.raises(TanrenError, match="the answer is empty"):
        rate(dataset, TURN.with_answer(""), True)
    assert dataset.counts().describe(ENGLISH) == "0 SFT · 0 pairs · 0 KTO" and list_datasets(home) == []
    with pytest.raises(InvalidNameError, match="invalid dataset name"):
        Dataset.open(home, "../runs")


# Records of about 1 MB, so that an append takes long enough to be killed in: the test kills the
# writer as soon as it sees one under way (its copy), or after a while, whichever comes first.
WRITER = """
import sys
from pathlib import Path
from engine.chat.collect import Dataset, Turn, rate
from engine.config import GenerationConfig
from engine.paths import Home

dataset = Dataset.open(Home(Path(sys.argv[1])), "killed")
turn = Turn((), "q", "答" * 350_000, "tiny", GenerationConfig())
while True:
    rate(dataset, turn, True)
"""


def test_a_writer_killed_mid_append_leaves_whole_records(home: Home) -> None:
    path = home.root / "datasets" / "killed" / "kto.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    written = killed_in_flight = 0
    for delay in (0.003, 0.013, 0.021, 0.029, 0.037, 0.047):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(home.root)], env=env)
        deadline = time.monotonic() + 60
        while (path.read_bytes().count(b"\n") if path.exists() else 0) <= written:
            assert time.monotonic() < deadline and child.poll() is None, "the writer wrote nothing"
            time.sleep(0.005)
        in_flight = _wait_for_a_copy(path, delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        killed_in_flight += bool(in_flight)
        data = path.read_bytes()
        assert data.endswith(b"\n"), "a half record at the end of the file"
        lines = data.splitlines()
        assert all(json.loads(line)["label"] is True for line in lines)
        assert len(lines) > written
        written = len(lines)
    assert killed_in_flight, "no kill landed while a record was being appended"
    assert rate(Dataset.open(home, "killed"), TURN, True).ratings == written + 1
    # The next append clears the copies the killed writer was making.
    assert not list(path.parent.glob("*.tmp"))
    report = check_file(path)
    assert report.usable and report.examples == written + 1


def _wait_for_a_copy(path: Path, seconds: float) -> list[Path]:
    """Up to `seconds` for an append in flight (the copy it writes), so that the kill lands in it."""
    deadline = time.monotonic() + seconds
    while not (copies := list(path.parent.glob(f".{path.name}.*.tmp"))) and time.monotonic() < deadline:
        time.sleep(0.0005)
    return copies
