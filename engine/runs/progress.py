"""What a live view of a run shows, folded from its events as they are read.

A `Follower` (engine.jobs) feeds it, so a view that reattaches folds the whole history once
and then only what is appended; a resumed run re-logs the steps after its checkpoint, and those
replace the earlier values for the same steps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.events import Event, Metrics, Progress, Status
from engine.presentation.event_lines import EventFormatter

LOG_LINES = 500


@dataclass
class RunProgress:
    done: int = 0
    total: int | None = None
    eta_s: float | None = None
    state: str = "queued"
    reason: str = ""
    hint: str = ""
    losses: dict[int, float] = field(default_factory=dict)  # step -> training loss
    eval_losses: dict[int, float] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)  # the newest value of every metric
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    events: int = 0
    formatter: EventFormatter = field(repr=False, kw_only=True)  # EventFormatter(the catalog's gettext)

    def add(self, events: Iterable[Event]) -> list[str]:
        """Fold events in; returns the log lines they produced."""
        lines = []
        for event in events:
            self.events += 1
            if isinstance(event, Progress):
                self.done, self.total, self.eta_s = event.done, event.total, event.eta_s
            elif isinstance(event, Metrics):
                self._metrics(event)
            elif isinstance(event, Status):
                self.state, self.reason, self.hint = event.state, event.reason, event.hint
                if event.state != "running":
                    self.eta_s = None
            line = self.formatter.format(event)
            if line:
                lines.append(line)
        self.log.extend(lines)
        return lines

    def _metrics(self, event: Metrics) -> None:
        values = event.values
        self.latest.update(values)
        if "loss" in values:
            self.losses[event.step] = values["loss"]
        if "eval_loss" in values:
            self.eval_losses[event.step] = values["eval_loss"]
