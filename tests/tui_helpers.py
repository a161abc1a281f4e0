"""Helpers for driving the workbench in tests: waiting on conditions, typing, fixed data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

from textual.pilot import Pilot

from engine.config import RunConfig, apply_overrides
from engine.events import Log, Metrics, Progress, Status
from engine.jobs import JobStatus
from engine.paths import Home
from engine.phrases import Phrase, phrase
from engine.runs.rundir import RunDir, create_run
from engine.system import GpuSample, SystemSample

async def wait_until(pilot: Pilot, condition, what: str, timeout: float = 300.0) -> None:
    """Let the app run until `condition()` holds; the machine may be busy, so the timeout is generous."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            notes = "; ".join(n.message for n in pilot.app._notifications)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (notifications: {notes or 'none'})")
        await pilot.pause(0.1)


def pace(monkeypatch, owner: type, name: str, seconds: float) -> None:
    """Slow `owner.name` down by `seconds` per call, or per item when it returns an iterator.

    The tiny model writes 400 tokens in under a second on a quiet machine: faster than a screen
    can be seen answering, and than Esc can reach it. Pacing the real engine call keeps the test
    about streaming and stopping, whatever the machine's speed."""
    original = getattr(owner, name)

    def paced_items(items: Iterator) -> Iterator:
        for item in items:
            time.sleep(seconds)
            yield item

    def paced(*args, **kwargs):
        result = original(*args, **kwargs)
        if isinstance(result, Iterator):
            return paced_items(result)
        time.sleep(seconds)
        return result

    monkeypatch.setattr(owner, name, paced)


async def type_text(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)


async def fill(pilot: Pilot, field_id: str, text: str) -> None:
    """Put the cursor in a field by keyboard (Tab, as a user would) and type over its value."""
    for _ in range(32):  # more than any screen has fields; it stops at the field
        if pilot.app.focused is not None and pilot.app.focused.id == field_id:
            break
        await pilot.press("tab")
    assert pilot.app.focused is not None and pilot.app.focused.id == field_id
    await pilot.press("ctrl+a", "ctrl+k")  # start of field, delete to the end
    await type_text(pilot, text)


def fixed_system(_home: Home) -> SystemSample:
    """A machine that never changes, so screenshots of the dashboard are the same every time."""
    gib = 2**30
    return SystemSample(cpu_percent=37.0, cpu_count=16, ram_used=21 * gib, ram_total=128 * gib,
                        disk_free=412 * gib, disk_total=1024 * gib,
                        gpus=(GpuSample("NVIDIA H100 80GB HBM3", 93.0, int(61.5 * gib), 80 * gib),))


def start_line(steps: int) -> Phrase:
    """The line a run logs at its start: 4 per device x 4 accumulation on one process."""
    from engine.train.callbacks import start_message

    arguments = SimpleNamespace(world_size=1, per_device_train_batch_size=4, gradient_accumulation_steps=4)
    return start_message(arguments, SimpleNamespace(max_steps=steps, global_step=0))


def finished_run(home: Home, name: str, *, steps: int = 30, state: str = "done", eval_every: int = 10,
                 base: str = "smollm2-135m-instruct", data: str = "chat.jsonl") -> RunDir:
    """A run folder with a fixed history (no clock, no pid), as the worker would have written it."""
    config = apply_overrides(RunConfig(), [f"name={name}", f"model.base={base}", f"data.path={data}",
                                           f"training.max_steps={steps}"])
    run = create_run(config, home)
    events = [Status.said("running", phrase("started"), time=1.0),
              Log.said(start_line(steps), time=1.0),
              Progress(0, steps, time=1.0)]
    for step in range(1, steps + 1):
        values = {"loss": 2.0 / (1 + step / 8) + 0.4, "learning_rate": 2e-4 * (1 - step / steps), "grad_norm": 0.8,
                  "tokens_per_s": 1520.0, "peak_memory_mb": 5321.0, "eta_s": float(steps - step) * 2}
        if step % eval_every == 0:
            values["eval_loss"] = 2.0 / (1 + step / 8) + 0.55
        events += [Metrics(step, values, time=1.0 + step), Progress(step, steps, eta_s=values["eta_s"], time=1.0 + step)]
    reason = phrase("{steps} steps, final loss {loss:.4f}", steps=steps, loss=events[-2].values["loss"])
    events.append(Status.said(state, reason, time=99.0))
    run.events.path.write_text("".join(e.to_json() + "\n" for e in events), encoding="utf-8")
    run.status_file.write_text(JobStatus.said(state, reason, "", 99.0).to_json())
    return run
