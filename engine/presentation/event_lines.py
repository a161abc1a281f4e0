"""Events as readable lines (`tanren logs`, every --follow, the live views), and the one-line
summary of a run that `tanren runs` lists."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

from engine.events import PERCENT, Artifact, Event, HttpRequest, Log, Metrics, Progress, Status
from engine.i18n import N_, Gettext
from engine.jobs import JobStatus
from engine.phrases import Phrase
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

    def as_json(self) -> dict:
        """What `tanren runs --json` prints: the status as its English text, as before statuses
        kept their phrases (scripts read it; the phrases are for people)."""
        status = self.status
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "status"},
                "status": {"state": status.state, "reason": status.reason, "hint": status.hint,
                           "updated": status.updated}}


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


STATE_NAMES = {"queued": N_("queued"), "running": N_("running"), "done": N_("done"), "failed": N_("failed"),
               "cancelled": N_("cancelled"), "unreadable": N_("unreadable")}


def state_phrase(state: str) -> Phrase:
    """A job's state, to be said in the user's language (the state itself stays English in every file)."""
    return Phrase(STATE_NAMES.get(state, state))


def state_name(state: str, _: Gettext) -> str:
    return state_phrase(state).translate(_)


class EventFormatter:
    """Turns events into the lines `tanren logs` and `tanren train --follow` print."""

    def __init__(self, _: Gettext) -> None:
        self._ = _  # the catalog's gettext: the lines are in the language the user reads
        self.total: int | None = None

    def format(self, event: Event) -> str | None:
        if isinstance(event, Progress):
            if event.unit == PERCENT:
                return f"  {event.shown(self._)}: {event.done}%"
            self.total = event.total
            return None  # metrics lines carry the step; progress alone would double them
        if isinstance(event, Metrics):
            return self._metrics(event)
        if isinstance(event, Status):
            return self._status(event)
        if isinstance(event, Artifact):
            return self._("saved {role}: {path}", role=event.role, path=event.path)
        if isinstance(event, Log):
            return event.shown(self._)
        if isinstance(event, HttpRequest):
            return request_line(event, self._)
        return None

    def _status(self, event: Status) -> str:
        _, state = self._, state_name(event.state, self._)
        line = _("[{state}] {reason}", state=state, reason=event.shown_reason(_)) if event.reason else \
            _("[{state}]", state=state)
        return line + ("\n  " + _("hint: {hint}", hint=event.shown_hint(_)) if event.hint else "")

    def _metrics(self, event: Metrics) -> str:
        step = (self._("step {step}/{total}", step=event.step, total=self.total) if self.total
                else self._("step {step}", step=event.step))
        return " | ".join([step, *format_metrics(event.values, self._)])


def request_line(event: HttpRequest, _: Gettext) -> str:
    """One served request: `12:03:04 POST /v1/chat/completions 200 my-run 25+12 tokens 0.84 s stop, batch 4`."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.time))
    head = f"{clock} {event.method} {event.path} {event.status}"
    if event.error:
        return f"{head} {event.error}"
    line = head + " " + _("{model} {prompt}+{completion} tokens {latency:.2f} s {finish}", model=event.model,
                          prompt=event.prompt_tokens, completion=event.completion_tokens, latency=event.latency_s,
                          finish=event.finish_reason or _("client left"))
    if event.batch_size > 1:
        line += _(", batch {size}", size=event.batch_size)
    return line + (_(", queued {seconds:.2f} s", seconds=event.queue_s) if event.queue_s >= 0.1 else "")


METRIC_FORMATS = (("loss", "loss", "{:.4f}"), ("eval_loss", "eval_loss", "{:.4f}"),
                  ("reward_accuracy", "acc", "{:.2f}"), ("reward_margin", "margin", "{:+.3f}"),
                  ("reward_chosen", "chosen", "{:+.3f}"), ("reward_rejected", "rejected", "{:+.3f}"), ("kl", "kl", "{:.3f}"),
                  ("learning_rate", "lr", "{:.2e}"),
                  ("grad_norm", "grad", "{:.3f}"), ("tokens_per_s", "tok/s", "{:.0f}"), ("peak_memory_mb", "mem MiB", "{:.0f}"))


def format_metrics(values, _: Gettext) -> list[str]:
    """Each known metric present as "label value", in a fixed order (their names as every tool
    writes them), then the time left."""
    parts = [f"{label} {fmt.format(values[key])}" for key, label, fmt in METRIC_FORMATS if key in values]
    if "eta_s" in values:
        parts.append(_("eta {duration}", duration=format_duration(values["eta_s"])))
    return parts
