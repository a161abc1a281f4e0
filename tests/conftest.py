from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.paths import Home
from tests.tiny_model import build_tiny_model, make_adapter

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """An empty TANREN_HOME for one test; the real user's home is never touched. The tests read
    English whatever the machine's locale (LANG=ja_JP.UTF-8 would choose Japanese)."""
    monkeypatch.setenv("TANREN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TANREN_LANG", "en")
    return Home.from_env()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def gguf_model_dir(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path) -> Path:
    """The tiny Llama with the built-in model's tokenizer: llama.cpp's converter recognizes the
    pre-tokenizers of published tokenizers only, by a hash of their token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama-gguf", tokenizer=tokenizer)


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: on a busy 2-core machine the OpenMP barrier between
    two threads makes every layer wait for a time slice (tiny models: 30x slower, the default
    model's training: 10x, measured). Modules ask for it with pytest.mark.usefixtures."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model on transformers with one random adapter, `tuned`, loaded once per module."""
    from engine.chat.transformers_backend import TransformersBackend
    from engine.config import ModelConfig

    adapter = make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "tuned", seed=1)
    with TransformersBackend.load(tiny_model_dir, ModelConfig(base=str(tiny_model_dir)),
                                  adapters={"tuned": adapter}) as backend:
        yield backend
