"""One folder per training run under $TANREN_HOME/runs, holding everything about it.

The run is a detached job (engine.jobs: events, status, lock, pid, log); this module adds
what only training has: the config, checkpoints, the adapter or whole model it saved.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from engine.config import RunConfig, load_yaml, save_yaml
from engine.errors import InvalidNameError
from engine.events import Said
from engine.jobs.jobdir import JobDir, JobError
from engine.paths import Home, validate_name
from engine.phrases import phrase


class RunError(JobError):
    """A run cannot be found, started or removed."""


def resume_command(name: str, *options: str) -> str:
    return " ".join(["tanren", "resume", name, *options])


@dataclass(frozen=True)
class RunDir(JobDir):
    """A training run's folder: the job's mechanics, its config, checkpoints and what it trained."""

    @property
    def home(self) -> Home:
        """The home folder the run belongs to (runs/<name> inside it)."""
        return Home(self.path.parent.parent)

    @property
    def crash_hint(self) -> Said:
        return phrase("continue from the last checkpoint with: {command}", command=resume_command(self.name))

    @property
    def follow_command(self) -> str:
        return f"tanren logs {self.name} -f"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

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
        raise RunError(phrase("a run named {name} already exists", name=name), where=str(path),
                       hint=phrase("choose another --name, continue it with `{resume}`, or delete it with `{rm}`",
                                   resume=resume_command(name), rm="tanren runs rm " + name)) from None
    if config.name != name:
        from dataclasses import replace

        config = replace(config, name=name)
    run = RunDir(path)
    save_yaml(config, run.config_file)
    run.set_status("queued", phrase("waiting to start"))
    return run


def open_run(name: str, home: Home) -> RunDir:
    path = home.run_dir(validate_name(name, what="run name"))
    if not (path / "config.yaml").is_file():
        raise RunError(phrase("no run named {name}", name=name), where=str(path),
                       hint=phrase("see `tanren runs` for the runs there are"))
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
        raise RunError(phrase("{name} is still running", name=run.name), where=str(run.path),
                       hint=phrase("stop it first with `{command}`", command="tanren stop " + run.name))
    shutil.rmtree(run.path)
