"""The job layer (engine.jobs) on job folders written by the test, and on stand-in processes
(tests/job_worker.py): the follower's offsets, its end, the final state, a process that died
without saying so, and waiting for the lock to be released. No model is loaded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.events import PERCENT, Log, Progress, Status, parse_event
from engine.i18n import load_catalog
from engine.jobs import Follower, JobDir, JobError, launch_detached, request_stop
from engine.jobs.print_follow import follow, print_events
from engine.locking import HeldLock, try_lock
from engine.paths import Home
from engine.phrases import phrase
from engine.presentation.event_lines import EventFormatter
from tests.conftest import REPO
from tests.job_worker import FakeJob

ENGLISH = load_catalog("en").gettext


@pytest.fixture
def job(home: Home) -> FakeJob:
    job = FakeJob(home.root / "jobs" / "one")
    job.path.mkdir(parents=True)
    return job


def _alive(job: JobDir) -> HeldLock:
    """Hold the job's lock as its process would; release() is the process exiting."""
    held = try_lock(job.lock_file)
    assert held is not None
    return held


def _later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def test_a_follower_reads_only_what_was_appended_and_resumes_from_an_offset(job: FakeJob) -> None:
    job.set_status("running", "started")
    job.events.append(Progress(1, 3))
    follower = Follower(job)
    assert [type(e) for e in follower.read()] == [Status, Progress]
    assert follower.read() == [] and follower.offset == job.events.size()
    job.events.append(Log("one more line"))
    with open(job.events.path, "a", encoding="utf-8") as handle:  # a line the writer has not finished
        handle.write('{"event": "log", "mess')
    assert [e.message for e in follower.read()] == ["one more line"]
    with open(job.events.path, "a", encoding="utf-8") as handle:
        handle.write('age": "finished later"}\n')
    later = Follower(job, offset=follower.offset)  # e.g. `tanren resume --follow`: only what comes now
    assert [e.message for e in later.read()] == ["finished later"]
    assert [e.message for e in follower.read()] == ["finished later"]
    assert Follower(job).read()[-1].message == "finished later"  # attaching again reads the whole history


def test_iterating_ends_at_the_final_status_and_then_waits_for_the_process_to_exit(job: FakeJob) -> None:
    held = _alive(job)
    job.set_status("running", "started")

    def work() -> None:
        for step in (1, 2, 3):
            time.sleep(0.05)
            job.events.append(Progress(step, 3))
        job.set_status("done", "three steps")

    writer = _later(0, work)
    follower = Follower(job, poll_s=0.01)
    seen = list(follower)
    writer.join()
    assert [type(e).__name__ for e in seen] == ["Status", "Progress", "Progress", "Progress", "Status"]
    assert follower.ended and follower.final_state() == "done"
    assert job.is_alive() and not follower.wait_until_released(timeout_s=0.1)  # recorded its end, not yet exited
    exiting = _later(0.2, held.release)
    assert follower.wait_until_released(timeout_s=10)
    exiting.join()
    assert not job.is_alive()


def test_a_failure_that_was_resumed_is_not_the_end(job: FakeJob) -> None:
    held = _alive(job)
    for state in ("running", "failed", "running"):
        job.set_status(state)
    follower = Follower(job, poll_s=0.01)
    finishing = _later(0.1, lambda: job.set_status("done"))
    assert [e.state for e in follower] == ["running", "failed", "running", "done"]
    finishing.join()
    held.release()
    assert follower.final_state() == "done"


def test_a_process_that_died_without_a_final_event_ends_the_follow_as_failed(job: FakeJob) -> None:
    held = _alive(job)
    job.set_status("running", "started")
    follower = Follower(job, poll_s=0.01)
    first = follower.poll()
    assert first.status.state == "running" and first.alive and first.status_changed

    def killed() -> None:
        job.events.append(Log("the last line before the kill"))
        held.release()

    dying = _later(0.1, killed)
    seen = list(follower)  # ends once the lock is free, after one last read
    dying.join()
    assert [e.message for e in seen] == ["the last line before the kill"]
    assert not follower.ended and follower.final_state() == "failed"
    update = follower.poll()
    assert update.status_changed and not update.alive
    assert update.status.state == "failed" and "without saying why" in update.status.reason
    assert update.status.hint == "start one again"
    assert follower.wait_until_released(timeout_s=0.1)


def test_poll_reports_a_status_once_and_watch_stops_when_cancelled(job: FakeJob) -> None:
    assert Follower(job).poll().status.state == "queued"  # no status yet: not started
    held = _alive(job)
    job.set_status("running", "started")
    follower = Follower(job, poll_s=0.01)
    assert follower.poll().status_changed
    quiet = follower.poll()
    assert quiet.events == [] and not quiet.status_changed
    job.set_status("cancelled", "stopped on request")
    update = follower.poll()
    assert update.status_changed and update.status.final and update.alive  # ended, process not yet gone
    held.release()
    update = follower.poll()
    assert update.status_changed and not update.alive and update.events == []

    polls = 0

    def cancelled() -> bool:
        nonlocal polls
        polls += 1
        return polls > 5

    updates = list(Follower(job, poll_s=0.01).watch(cancelled))
    assert len(updates) == 1 and len(updates[0].events) == 2  # the history, then nothing new until cancelled


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # `python -m tests.job_worker` imports from here


def test_a_detached_process_is_followed_to_its_end_and_released(job: FakeJob, stand_in) -> None:
    launch_detached(job, "tests.job_worker", ["done"])
    follower = Follower(job, poll_s=0.02)
    events = list(follower)
    assert [e.state for e in events if isinstance(e, Status)] == ["running", "done"]
    assert follower.final_state() == "done"
    assert follower.wait_until_released(timeout_s=30) and not job.is_alive()


def test_a_detached_process_that_vanishes_is_a_failure(job: FakeJob, stand_in) -> None:
    launch_detached(job, "tests.job_worker", ["vanish"])
    follower = Follower(job, poll_s=0.02)
    assert [e.message for e in follower if isinstance(e, Log)] == ["mode vanish"]
    assert follower.final_state() == "failed" and job.status().hint == "start one again"


def test_a_terminal_follow_prints_the_lines_and_exits_with_the_outcome(job: FakeJob, stand_in, capsys) -> None:
    launch_detached(job, "tests.job_worker", ["done"])
    assert follow(job, ENGLISH) == 0 and not job.is_alive()  # returns once the process let go
    followed = capsys.readouterr().out
    assert followed.splitlines() == ["[running] started", "mode done", "[done] two steps"]
    print_events(job, ENGLISH)
    assert capsys.readouterr().out == followed
    again = FakeJob(job.path.parent / "two")
    launch_detached(again, "tests.job_worker", ["vanish"])
    assert follow(again, ENGLISH) == 1


def test_a_running_job_is_not_launched_twice_and_stops_on_request(job: FakeJob, stand_in) -> None:
    launch_detached(job, "tests.job_worker", ["stop"])
    with pytest.raises(JobError, match="already running") as refused:
        launch_detached(job, "tests.job_worker", ["stop"])
    assert refused.value.hint == "follow it with `follow one`"
    follower = Follower(job, poll_s=0.02)
    for event in follower:
        if isinstance(event, Log):
            assert request_stop(job)
    assert follower.final_state() == "cancelled"
    assert follower.wait_until_released(timeout_s=30)
    assert not request_stop(job)


PSEUDO = load_catalog("pseudo").gettext


def test_a_status_keeps_its_phrases_through_the_events_file_and_is_shown_in_the_readers_language(
        job: FakeJob) -> None:
    """events.jsonl and status.json keep the English for scripts, and the phrase it was made from."""
    error = JobError(phrase("no file {path}", path=Path("/data/x.jsonl")), hint=phrase("pass --data FILE"))
    job.record_failure(error)
    (event,) = job.events.read()
    assert (event.reason, event.hint) == ("no file /data/x.jsonl", "pass --data FILE")
    assert parse_event(event.to_json()) == event
    assert event.reason_phrase == phrase("no file {path}", path="/data/x.jsonl")  # a Path is written as text
    assert EventFormatter(PSEUDO).format(event) == "⟦[⟦failed⟧] ⟦no file /data/x.jsonl⟧⟧\n  ⟦hint: ⟦pass --data FILE⟧⟧"
    status = job.status()
    assert (status.reason, status.shown_reason(PSEUDO), status.shown_hint(PSEUDO)) == (
        "no file /data/x.jsonl", "⟦no file /data/x.jsonl⟧", "⟦pass --data FILE⟧")


def test_events_written_before_phrases_and_library_messages_are_shown_as_they_are(job: FakeJob) -> None:
    old = parse_event('{"event": "status", "time": 1.0, "state": "failed", "reason": "OSError: disk full", "hint": ""}')
    assert EventFormatter(PSEUDO).format(old) == "⟦[⟦failed⟧] OSError: disk full⟧"
    log = Log.said(phrase("checkpoint saved at step {step}", step=3))
    assert '"phrase": {"msgid": "checkpoint saved at step {step}", "values": {"step": 3}}' in log.to_json()
    assert EventFormatter(PSEUDO).format(parse_event(log.to_json())) == "⟦checkpoint saved at step 3⟧"
    assert "phrase" not in Log("pid 1").to_json()  # a plain message writes the line it always wrote


def test_an_exports_stage_progress_keeps_its_phrase() -> None:
    progress = Progress.said(40, 100, PERCENT, phrase("F16 GGUF written"))
    assert parse_event(progress.to_json()) == progress and progress.message == "F16 GGUF written"
    assert EventFormatter(PSEUDO).format(parse_event(progress.to_json())) == "  ⟦F16 GGUF written⟧: 40%"
