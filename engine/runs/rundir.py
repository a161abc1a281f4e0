"""One folder per run under $TANREN_HOME/runs, holding everything about it.

The folder is the single source of truth: the detached process writes it, and every CLI or
TUI instance reads it, so a closed terminal or a second SSH session loses nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.config import RunConfig, load_yaml, save_yaml
from engine.errors import InvalidNameError, TanrenError
from engine.events import FINAL_STATES, EventLog, Status
from engine.locking import file_lock
from engine.paths import Home, validate_name


class RunError(TanrenError):
    """A run cannot be found, started, stopped or removed."""


@dataclass(frozen=True)
class RunStatus:
    state: str
    reason: str = ""
    hint: str = ""
    updated: float = 0.0


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def home(self) -> Home:
        """The home folder the run belongs to (runs/<name> inside it)."""
        return Home(self.path.parent.parent)

    @property
    def crash_hint(self) -> str:
        """What to do when the process died without recording why."""
        return f"continue from the last checkpoint with: tanren resume {self.name}"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def events(self) -> EventLog:
        return EventLog(self.path / "events.jsonl")

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def log_file(self) -> Path:
        return self.path / "run.log"

    @property
    def pid_file(self) -> Path:
        return self.path / "pid"

    @property
    def lock_file(self) -> Path:
        return self.path / "lock"

    @property
    def stop_file(self) -> Path:
        return self.path / "stop-requested"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def model(self) -> Path:
        """Where full fine-tuning saves the whole model (LoRA runs save `adapter` instead)."""
        return self.path / "model"

    @property
    def has_adapter(self) -> bool:
        return (self.adapter / "adapter_config.json").is_file()

    @property
    def has_model(self) -> bool:
        return (self.model / "config.json").is_file()

    @property
    def is_full_fine_tune(self) -> bool:
        """A run that saved a whole model and no adapter (an export then has nothing to merge)."""
        return self.model.is_dir() and not self.adapter.is_dir()

    def config(self) -> RunConfig:
        return load_yaml(self.config_file)

    def record_crash(self, exc: BaseException) -> None:
        """An unexpected error as the failure: its first line in the status, the traceback in the log."""
        traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        self.set_status("failed", f"{type(exc).__name__}: {first_line}", f"the full traceback is in {self.log_file}")

    def set_status(self, state: str, reason: str = "", hint: str = "") -> None:
        """Record a lifecycle change in both status.json (current) and the events log (history)."""
        status = Status(state, reason, hint)
        self.events.append(status)
        atomic_write_text(self.status_file, json.dumps(asdict(RunStatus(state, reason, hint, status.time))))

    def is_alive(self) -> bool:
        """True while the run's process holds its lock; the kernel frees it when the process dies."""
        if not self.lock_file.exists():
            return False
        with file_lock(self.lock_file, blocking=False) as acquired:
            return not acquired

    def wait_until_released(self, *, timeout_s: float = 120.0, poll_s: float = 0.05) -> bool:
        """Wait until the process lets go of the lock; False if it still holds it after `timeout_s`.

        A process records its final status a moment before it exits (freeing models, flushing
        logs), and the next command on the same folder (export, resume) needs the lock free.
        """
        deadline = time.monotonic() + timeout_s
        while self.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)
        return True

    def status(self) -> RunStatus:
        try:
            status = RunStatus(**json.loads(self.status_file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return RunStatus("queued", "not started yet")
        if status.state not in FINAL_STATES and not self.is_alive():
            return RunStatus("failed", "the run's process ended without saying why (killed, or the machine went down)",
                             self.crash_hint, status.updated)
        return status

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def _default_name(config: RunConfig) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "-", Path(config.model.base).name)[:40].strip("-._") or "run"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_run(config: RunConfig, home: Home) -> RunDir:
    """Make a new run folder holding the resolved config; refuses to reuse a name."""
    name = config.name or _default_name(config)
    path = home.run_dir(name)
    try:
        path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise RunError(f"a run named {name} already exists", where=str(path),
                       hint=f"choose another --name, continue it with `tanren resume {name}`, "
                       f"or delete it with `tanren runs rm {name}`") from None
    if config.name != name:
        from dataclasses import replace

        config = replace(config, name=name)
    run = RunDir(path)
    save_yaml(config, run.config_file)
    run.set_status("queued", "waiting to start")
    return run


def open_run(name: str, home: Home) -> RunDir:
    path = home.run_dir(validate_name(name, what="run name"))
    if not (path / "config.yaml").is_file():
        raise RunError(f"no run named {name}", where=str(path), hint="see `tanren runs` for the runs there are")
    return RunDir(path)


def find_run(name: str, home: Home) -> RunDir | None:
    """The run called `name`, or None if there is none (or `name` cannot be a run's name: a path...)."""
    try:
        return open_run(name, home)
    except (RunError, InvalidNameError):
        return None


def list_runs(home: Home) -> list[RunDir]:
    if not home.runs.is_dir():
        return []
    runs = [RunDir(p) for p in home.runs.iterdir() if (p / "config.yaml").is_file()]
    return sorted(runs, key=lambda r: r.config_file.stat().st_mtime, reverse=True)


def trained_run_names(home: Home) -> list[str]:
    """Runs with something to chat with, evaluate or export: an adapter or a whole model; newest first."""
    return [run.name for run in list_runs(home) if run.has_adapter or run.has_model]


def remove_run(run: RunDir) -> None:
    if run.is_alive():
        raise RunError(f"{run.name} is still running", where=str(run.path),
                       hint=f"stop it first with `tanren stop {run.name}`")
    shutil.rmtree(run.path)
