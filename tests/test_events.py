from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import TanrenError
from engine.events import EventLog, Log, Metrics, Progress, Status, parse_event


def test_events_round_trip_as_json_lines(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    written = [
        Status("running"),
        Progress(3, 10, message="学習中"),
        Metrics(3, {"loss": 1.5, "learning_rate": 2e-4}),
        Log("checkpoint saved"),
        Status("done"),
    ]
    for event in written:
        log.append(event)
    assert log.read() == written
    lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and '"event": "progress"' in lines[1] and "学習中" in lines[1]


def test_partial_last_line_is_not_read_yet(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(Status("running").to_json() + "\n" + '{"event": "progress", "do', encoding="utf-8")
    assert EventLog(path).read() == [Status("running", time=EventLog(path).read()[0].time)]


def test_bad_lines_and_states_are_reported() -> None:
    with pytest.raises(TanrenError):
        parse_event('{"event": "nope"}')
    with pytest.raises(ValueError):
        Status("exploded")
