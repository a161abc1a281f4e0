from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_yaml
from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from tests.cli import tanren
from tui.entry import main


def test_models_lists_the_default(home: Home) -> None:
    result = tanren("models", home=home)
    assert result.returncode == 0, result.stderr
    header, first = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "KIND", "SIZE", "READY", "LOCATION"]
    assert first.split()[:2] == [DEFAULT_MODEL, "built-in"]
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in first  # not converted yet: points at the shipped file


def test_models_json_shows_a_converted_default_as_ready(shared_home: Home, default_model_dir: Path) -> None:
    result = tanren("models", "--json", home=shared_home)
    entry = next(e for e in json.loads(result.stdout) if e["name"] == DEFAULT_MODEL)
    assert entry["ready"] is True and entry["location"] == str(default_model_dir)
    assert entry["size_bytes"] > 100_000_000


def test_help_everywhere(home: Home) -> None:
    for args in (["--help"], ["models", "--help"], ["models", "prepare", "--help"], ["config", "--help"]):
        result = tanren(*args, home=home)
        assert result.returncode == 0 and "usage: tanren" in result.stdout


def test_errors_are_one_screen_without_traceback(home: Home, tmp_path: Path) -> None:
    result = tanren("models", "prepare", str(tmp_path / "missing.gguf"), home=home)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    result = tanren("config", "--set", "training.epochs=-1", home=home)
    assert result.returncode == 1 and "training.epochs" in result.stderr and "Traceback" not in result.stderr


def test_config_output_is_a_loadable_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["config", "--set", "adapter.method=qlora", "--set", "generation.system_prompt=丁寧に答えて"]) == 0
    path = tmp_path / "run.yaml"
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    config = load_yaml(path)
    assert config.adapter.method == "qlora" and config.generation.system_prompt == "丁寧に答えて"
    assert "# LoRA rank r" in path.read_text(encoding="utf-8")


def test_prepare_prints_the_folder(shared_home: Home, default_model_dir: Path) -> None:
    result = tanren("models", "prepare", home=shared_home)
    assert result.returncode == 0 and result.stdout.strip() == str(default_model_dir)
