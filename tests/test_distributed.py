"""What each strategy hands the trainer: FSDP2's arguments and QLoRA storage, and the DeepSpeed config a run
gives accelerate (deepspeed itself needs CUDA; the FSDP runs are in test_training.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import LaunchRecord, RunConfig, TrainingConfig, load_record, save_yaml
from engine.errors import ConfigError, TanrenError
from engine.train import distributed
from engine.train.deepspeed_config import deepspeed_config, write_deepspeed_config


def test_a_model_left_unsharded_under_fsdp_stops_the_run(tmp_path) -> None:
    import torch

    from engine.events import EventLog
    from engine.train.sharding_record import ShardingRecord

    record = ShardingRecord(tmp_path, EventLog(tmp_path / "events.jsonl"))
    with pytest.raises(TanrenError) as refused:  # FSDP asked for must never train as DDP
        record.on_train_begin(None, None, None, model=torch.nn.Linear(4, 4))
    assert refused.value.where == "training.distributed" and not (tmp_path / "sharding").exists()


def test_fsdp_arguments_and_qlora_storage(monkeypatch) -> None:
    import torch

    config = RunConfig(training=TrainingConfig(distributed="fsdp", offload="all"))
    assert distributed.strategy(config) == "single" and distributed.trainer_arguments(config, Path()) == {}
    assert distributed.quant_storage(config, torch.bfloat16) == torch.uint8  # bitsandbytes' own, in one process
    monkeypatch.setenv("WORLD_SIZE", "2")
    arguments = distributed.trainer_arguments(config, Path())
    assert arguments["fsdp"] is True and arguments["fsdp_config"]["version"] == 2
    assert arguments["fsdp_config"]["cpu_offload"] is True
    assert distributed.quant_storage(config, torch.bfloat16) == torch.bfloat16  # FSDP-QLoRA: the compute dtype
    with pytest.raises(ConfigError) as refused:
        TrainingConfig(distributed="fsdp", offload="optimizer")
    assert refused.value.where == "training.offload" and "offload: all" in refused.value.hint


@pytest.mark.parametrize(("offload", "optimizer", "weights"), [
    ("none", None, None), ("optimizer", "cpu", None), ("all", "cpu", "cpu"),
])
def test_the_deepspeed_config_is_zero3_with_the_offload_asked_for(tmp_path, monkeypatch, offload, optimizer,
                                                                  weights) -> None:
    training = TrainingConfig(distributed="deepspeed", offload=offload)
    generated = deepspeed_config(training)
    zero = generated["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero.get("offload_optimizer", {}).get("device") == optimizer
    assert zero.get("offload_param", {}).get("device") == weights
    # what the trainer's arguments decide is left to them, so the two cannot disagree
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                "gradient_clipping"):
        assert generated[key] == "auto"
    assert generated["bf16"] == {"enabled": "auto"} and generated["fp16"] == {"enabled": "auto"}
    assert json.loads(write_deepspeed_config(training, tmp_path).read_text()) == generated

    monkeypatch.setenv("WORLD_SIZE", "2")
    config = RunConfig(training=training)
    arguments = distributed.trainer_arguments(config, tmp_path)
    assert arguments == {"deepspeed": str(tmp_path / "deepspeed.json")}
    # and config.yaml's record of the launch holds it
    record = LaunchRecord(kernels=("atomic_checkpoints",), deepspeed=distributed.deepspeed_record(config))
    save_yaml(config, tmp_path / "config.yaml", record)
    assert load_record(tmp_path / "config.yaml").deepspeed == generated
