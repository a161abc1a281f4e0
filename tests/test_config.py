from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.config import RunConfig, apply_overrides, dump_yaml, load_yaml, save_yaml
from engine.config.fields import field_help
from engine.config.schema import (DATA_FORMATS, SCHEDULERS, SECTIONS, AdapterConfig, DataConfig, GenerationConfig,
                                  TrainingConfig)
from engine.config.yaml_io import from_dict
from engine.errors import ConfigError, InvalidNameError


def _custom_config() -> RunConfig:
    return apply_overrides(
        RunConfig(),
        [
            "name=jp-faq-v1",
            "model.base=/models/my-llama",
            "data.path=data/日本語.jsonl",
            "data.split=0.9,0.05,0.05",
            "adapter.method=qlora",
            "adapter.target_modules=[q_proj, v_proj]",
            "adapter.use_dora=true",
            "training.learning_rate=1e-4",
            "training.max_steps=120",
            "generation.system_prompt=あなたは親切なアシスタントです。\n簡潔に答えてください。",
            "generation.seed=7",
        ],
    )


def test_yaml_round_trip_keeps_every_value(tmp_path: Path) -> None:
    config = _custom_config()
    path = tmp_path / "run.yaml"
    save_yaml(config, path)
    assert load_yaml(path) == config
    assert "あなたは親切なアシスタントです" in path.read_text(encoding="utf-8")  # readable, not \u-escaped


def test_defaults_round_trip(tmp_path: Path) -> None:
    save_yaml(RunConfig(), tmp_path / "d.yaml")
    assert load_yaml(tmp_path / "d.yaml") == RunConfig()


def test_overrides_are_typed() -> None:
    config = _custom_config()
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.adapter.target_modules == ("q_proj", "v_proj")
    assert config.data.split == (0.9, 0.05, 0.05)
    assert config.generation.seed == 7
    assert config.training.effective_batch_size == 16


def test_every_field_has_help() -> None:
    for cls in [RunConfig, *(type(getattr(RunConfig(), s)) for s in SECTIONS)]:
        for field in dataclasses.fields(cls):
            assert field.metadata.get("help"), f"{cls.__name__}.{field.name} has no help"


def test_help_that_lists_the_choices_lists_them_all() -> None:
    # the help is a literal message id (for the catalog), so it must follow the tuple of choices by hand
    assert field_help(DataConfig, "format").endswith(": " + ", ".join(DATA_FORMATS))
    assert field_help(TrainingConfig, "lr_scheduler").endswith(": " + ", ".join(SCHEDULERS))


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().training.learning_rate = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "where", "words"),
    [
        ("training.learning_rat=1e-4", "training.learning_rat", "did you mean training.learning_rate"),
        ("training.micro_batch_size=two", "training.micro_batch_size", "whole number"),
        ("training.micro_batch_size=0", "training.micro_batch_size", ">= 1"),
        ("adapter.method=prefix", "adapter.method", "qlora, lora, full"),
        ("data.split=0.5,0.1", "data.split", "add up to 1"),
        ("generation.top_p=0", "generation.top_p", "> 0.0"),
        ("training.packing=sometimes", "training.packing", "true or false"),
        ("trainer.epochs=1", "trainer.epochs", "sections"),
        ("training", "training", "section.field=value"),
    ],
)
def test_bad_values_name_the_field(override: str, where: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(RunConfig(), [override])
    assert info.value.where == where
    assert words in info.value.render()


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  epochs: 2\n  learning_rate: [1e-4\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert info.value.where is not None and info.value.where.startswith(f"{path}:")


def test_missing_file_and_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        from_dict({"training": 3})


def test_run_name_cannot_escape_home() -> None:
    with pytest.raises(InvalidNameError):
        apply_overrides(RunConfig(), ["name=../../etc"])


def test_section_defaults_match_the_documented_ones() -> None:
    generation = GenerationConfig()
    assert (generation.temperature, generation.top_p, generation.repetition_penalty, generation.max_new_tokens) == (
        0.7, 0.9, 1.1, 256,
    )
    assert AdapterConfig().target_modules == ("all-linear",)
    assert TrainingConfig().max_steps == -1


def test_dump_is_plain_yaml() -> None:
    text = dump_yaml(RunConfig())
    assert "!!python" not in text and text.startswith("name:")
