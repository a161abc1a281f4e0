from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.paths import Home
from tests.tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """An empty TANREN_HOME for one test; the real user's home is never touched."""
    monkeypatch.setenv("TANREN_HOME", str(tmp_path / "home"))
    return Home.from_env()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def shared_home() -> Home:
    """A home kept between test sessions, so the default model is converted once per machine.

    Set TANREN_TEST_HOME to place it elsewhere; it holds only converted models, no runs.
    """
    root = Path(os.environ.get("TANREN_TEST_HOME", REPO / ".tanren-test-home"))
    return Home(root)


@pytest.fixture(scope="session")
def default_model_dir(shared_home: Home) -> Path:
    from engine.config import ModelConfig
    from engine.models.loading import model_folder

    return model_folder(ModelConfig(), shared_home)
