"""Where tanren keeps its state: the home folder, runs and the model cache.

Layout under `$TANREN_HOME` (default: the user's data folder, e.g. ~/.local/share/tanren):

    runs/<run-name>/        one folder per run; the run is named by this folder everywhere
    models/<model-name>/    materialized base models (ordinary HF folders)
    chats/                  saved chat sessions
    datasets/<name>/        data collected by judging answers in chat (engine.chat.collect)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidNameError
from engine.i18n import N_
from engine.phrases import Phrase, phrase

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# What a name names, as callers of validate_name say it; each is a message id, so the error
# about an invalid name is translated whole where it is shown.
NAME, RUN_NAME, MODEL_NAME, DATASET_NAME = N_("name"), N_("run name"), N_("model name"), N_("dataset name")
CHAT_NAME, SERVER_NAME = N_("chat name"), N_("server name")


def validate_name(name: str, *, what: str = NAME) -> str:
    """Accept a run or model name only if it is a single safe path component."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            phrase("invalid {what} {name!r}", what=Phrase(what), name=name),
            hint=phrase("use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit "
                        "(no '/', no '..')"),
        )
    return name


def default_home() -> Path:
    env = os.environ.get("TANREN_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tanren", appauthor=False))


@dataclass(frozen=True)
class Home:
    """The home folder and the paths inside it; every path it hands out stays inside it."""

    root: Path

    @classmethod
    def from_env(cls) -> Home:
        return cls(default_home())

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def chats(self) -> Path:
        return self.root / "chats"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def run_dir(self, name: str) -> Path:
        return self._inside(self.runs, validate_name(name, what=RUN_NAME))

    def model_dir(self, name: str) -> Path:
        return self._inside(self.models, validate_name(name, what=MODEL_NAME))

    def dataset_dir(self, name: str) -> Path:
        return self._inside(self.datasets, validate_name(name, what=DATASET_NAME))

    @staticmethod
    def _inside(parent: Path, name: str) -> Path:
        path = (parent / name).resolve()
        if path.parent != parent.resolve():
            raise InvalidNameError(phrase("{name!r} would leave {folder}", name=name, folder=parent))
        return parent / name
