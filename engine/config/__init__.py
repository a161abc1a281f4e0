"""Typed run configuration, split by concern, with YAML round-trip and CLI overrides."""

from engine.config.schema import (
    AdapterConfig,
    DataConfig,
    GenerationConfig,
    ModelConfig,
    RunConfig,
    TrainingConfig,
)
from engine.config.record import LaunchRecord
from engine.config.yaml_io import apply_overrides, dump_yaml, load_record, load_yaml, save_yaml

__all__ = [
    "AdapterConfig",
    "DataConfig",
    "GenerationConfig",
    "LaunchRecord",
    "ModelConfig",
    "RunConfig",
    "TrainingConfig",
    "apply_overrides",
    "dump_yaml",
    "load_record",
    "load_yaml",
    "save_yaml",
]
