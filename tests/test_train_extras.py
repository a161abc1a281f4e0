"""What a run asks for beyond DDP: the memory estimate before the start, the distributed strategy
and its optional packages, and experiment tracking (training.report_to)."""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import asdict
from pathlib import Path

import pytest

from engine.config import RunConfig, TrainingConfig, apply_overrides
from engine.errors import ConfigError
from engine.events import Log
from engine.runs.rundir import create_run
from engine.train import worker
from engine.train.reporting import reporting_callbacks, trainer_report_to
from tests.cli import tanren
from tests.data_files import write_chat_data


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    return write_chat_data(tmp_path / "chat.jsonl", examples=20)


def test_estimate_prints_the_parts_and_starts_nothing(home, tiny_model_dir) -> None:
    result = tanren("train", "--estimate", "--base", str(tiny_model_dir), "--method", "qlora", "--nproc", "2",
                    "--distributed", "fsdp", home=home)
    assert result.returncode == 0, result.stderr
    assert "memory estimate per process: qlora" in result.stdout and "fsdp x 2" in result.stdout
    for part in ("weights", "adapter", "gradients", "optimizer", "activations", "total"):
        assert f"  {part} " in result.stdout
    assert not home.runs.exists() or not any(home.runs.iterdir())


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(("--distributed", "deepspeed"), "pip install 'tanren[deepspeed]'", id="deepspeed",
                 marks=pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="installed")),
    pytest.param(("--set", "training.report_to=[wandb]"), "pip install 'tanren[wandb]'", id="wandb",
                 marks=pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="installed")),
    pytest.param(("--distributed", "fsdp"), "but --nproc is 1", id="fsdp-in-one-process"),
])
def test_what_cannot_run_is_refused_before_launch(home, tiny_model_dir, chat_file, args, expected) -> None:
    result = tanren("train", "--base", str(tiny_model_dir), "--data", str(chat_file), *args, home=home)
    assert result.returncode == 1 and expected in result.stderr and "Traceback" not in result.stderr
    assert not home.runs.exists() or not any(home.runs.iterdir())


def test_bad_strategy_settings_name_the_field() -> None:
    with pytest.raises(ConfigError) as offload:
        TrainingConfig(offload="optimizer")
    assert offload.value.where == "training.offload"
    with pytest.raises(ConfigError) as tracker:
        TrainingConfig(report_to=("comet",))
    assert tracker.value.where == "training.report_to"


def test_trackers_report_from_rank_zero_only(monkeypatch) -> None:
    training = TrainingConfig(report_to=("tensorboard", "wandb", "mlflow"))
    assert trainer_report_to(training) == ["wandb", "mlflow"]  # TensorBoard is tanren's own callback
    assert trainer_report_to(TrainingConfig()) == []  # nothing is contacted unless named
    monkeypatch.setenv("RANK", "1")
    assert trainer_report_to(training) == []


def test_trackers_get_the_run_config(monkeypatch, tmp_path) -> None:
    """wandb's integration logs the trainer's arguments; the run's own config is added to them."""
    updates: list[dict] = []
    wandb = types.SimpleNamespace(config=types.SimpleNamespace(update=lambda values, **_: updates.append(values)))
    config = RunConfig(name="tracked", training=TrainingConfig(report_to=("wandb",)))
    [callback] = reporting_callbacks(config, tmp_path)
    monkeypatch.setitem(sys.modules, "wandb", wandb)  # as the integration has imported it by then
    callback.on_train_begin(types.SimpleNamespace(report_to=["wandb"]), None, None)
    assert updates == [{"tanren": asdict(config)}]


def test_report_to_tensorboard_writes_event_files_after_the_estimate(home, tiny_model_dir, chat_file) -> None:
    config = apply_overrides(RunConfig(), [
        f"model.base={tiny_model_dir}", f"data.path={chat_file}", "data.max_length=64", "training.max_steps=2",
        "training.report_to=[tensorboard]", "name=tb",
    ])
    run = create_run(config, home)
    assert worker.main([str(run.path)]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.path / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    assert "tanren_config/text_summary" in events.Tags()["tensors"]
    messages = [e.message for e in run.events.read() if isinstance(e, Log)]
    assert any(m.startswith("memory estimate: ") and m.endswith(": fits") for m in messages)
