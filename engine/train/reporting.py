"""Experiment tracking (training.report_to): what the trainer reports to, and from which process.

TensorBoard writes into the run folder through tanren's own callback (as `training.tensorboard:
true` always did); wandb and mlflow go through transformers' integrations, which read the run
name from the trainer's arguments. Only rank 0 reports, and nothing is reported unless named:
the trainer's default would report to every tracker it finds installed.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.config import RunConfig, TrainingConfig, dump_yaml

# trackers transformers' integrations run (TensorBoard is ours, below)
INTEGRATIONS = ("wandb", "mlflow")


def _rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def wants_tensorboard(training: TrainingConfig) -> bool:
    return training.tensorboard or "tensorboard" in training.report_to


def trainer_report_to(training: TrainingConfig) -> list[str]:
    """The trainer's `report_to`: the integrations asked for, on rank 0; none anywhere else."""
    return [name for name in training.report_to if name in INTEGRATIONS] if _rank_zero() else []


def reporting_callbacks(config: RunConfig, run_path: Path) -> list[Any]:
    """The callbacks to add to the trainer: TensorBoard into the run folder, and the run's own
    config handed to each tracker (the integrations log only the trainer's arguments)."""
    if not _rank_zero():
        return []
    callbacks: list[Any] = []
    if wants_tensorboard(config.training):
        callbacks.append(tensorboard_callback(run_path / "tensorboard", config))
    if trainer_report_to(config.training):
        callbacks.append(_config_callback(config))
    return callbacks


def tensorboard_callback(log_dir: Path, config: RunConfig):
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    writer = SummaryWriter(log_dir=str(log_dir))
    writer.add_text("tanren_config", f"```\n{dump_yaml(config)}\n```")
    return TensorBoardCallback(tb_writer=writer)


def _config_callback(config: RunConfig):
    from transformers import TrainerCallback

    class RunConfigCallback(TrainerCallback):
        """Records tanren's config in each tracker once the integrations have opened their runs
        (they come first in the trainer's callbacks, so their on_train_begin has run)."""

        def on_train_begin(self, args, state, control, **kwargs):
            values = asdict(config)
            if "wandb" in args.report_to:
                import wandb

                wandb.config.update({"tanren": values}, allow_val_change=True)
            if "mlflow" in args.report_to:
                import mlflow

                mlflow.log_dict(values, "tanren_config.json")

    return RunConfigCallback()
