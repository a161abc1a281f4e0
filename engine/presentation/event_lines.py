"""Events as readable lines (`tanren logs`, every --follow, the live views), and the one-line
summary of a run that `tanren runs` lists."""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.events import PERCENT, Artifact, Event, HttpRequest, Log, Metrics, Progress, Status
from engine.i18n import Gettext
from engine.jobs import JobStatus
from engine.runs.rundir import RunDir


@dataclass(frozen=True)
class RunSummary:
    name: str
    status: JobStatus
    step: int
    total_steps: int | None
    loss: float | None
    base: str
    method: str
    disk_bytes: int


def summarize(run: RunDir) -> RunSummary:
    step, total, loss = 0, None, None
    for event in run.events.read():
        if isinstance(event, Progress):
            step, total = event.done, event.total
        elif isinstance(event, Metrics) and "loss" in event.values:
            loss = event.values["loss"]
    config = run.config()
    return RunSummary(run.name, run.status(), step, total, loss, config.model.base, config.adapter.method,
                      run.disk_bytes())


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class EventFormatter:
    """Turns events into the lines `tanren logs` and `tanren train --follow` print."""

    def __init__(self, _: Gettext) -> None:
        self._ = _  # the catalog's gettext: the lines are in the language the user reads
        self.total: int | None = None

    def format(self, event: Event) -> str | None:
        if isinstance(event, Progress):
            if event.unit == PERCENT:
                return f"  {event.message}: {event.done}%"
            self.total = event.total
            return None  # metrics lines carry the step; progress alone would double them
        if isinstance(event, Metrics):
            return self._metrics(event)
        if isinstance(event, Status):
            line = f"[{event.state}]" + (f" {event.reason}" if event.reason else "")
            return line + (f"\n  hint: {event.hint}" if event.hint else "")
        if isinstance(event, Artifact):
            return f"saved {event.role}: {event.path}"
        if isinstance(event, Log):
            return event.message
        if isinstance(event, HttpRequest):
            return request_line(event)
        return None

    def _metrics(self, event: Metrics) -> str:
        step = f"step {event.step}" + (f"/{self.total}" if self.total else "")
        return " | ".join([step, *format_metrics(event.values)])


def request_line(event: HttpRequest) -> str:
    """One served request: `12:03:04 POST /v1/chat/completions 200 my-run 25+12 tokens 0.84 s stop, batch 4`."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.time))
    head = f"{clock} {event.method} {event.path} {event.status}"
    if event.error:
        return f"{head} {event.error}"
    line = (f"{head} {event.model} {event.prompt_tokens}+{event.completion_tokens} tokens "
            f"{event.latency_s:.2f} s {event.finish_reason or 'client left'}")
    if event.batch_size > 1:
        line += f", batch {event.batch_size}"
    return line + (f", queued {event.queue_s:.2f} s" if event.queue_s >= 0.1 else "")


METRIC_FORMATS = (("loss", "loss", "{:.4f}"), ("eval_loss", "eval_loss", "{:.4f}"),
                  ("reward_accuracy", "acc", "{:.2f}"), ("reward_margin", "margin", "{:+.3f}"),
                  ("reward_chosen", "chosen", "{:+.3f}"), ("reward_rejected", "rejected", "{:+.3f}"), ("kl", "kl", "{:.3f}"),
                  ("learning_rate", "lr", "{:.2e}"),
                  ("grad_norm", "grad", "{:.3f}"), ("tokens_per_s", "tok/s", "{:.0f}"), ("peak_memory_mb", "mem MiB", "{:.0f}"))


def format_metrics(values) -> list[str]:
    """Each known metric present as "label value", in a fixed order, then the ETA."""
    parts = [f"{label} {fmt.format(values[key])}" for key, label, fmt in METRIC_FORMATS if key in values]
    if "eta_s" in values:
        parts.append(f"eta {format_duration(values['eta_s'])}")
    return parts
