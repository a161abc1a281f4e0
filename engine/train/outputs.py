"""The finished run's output folder, written atomically: what peft users expect to find."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.atomic import atomic_directory
from engine.config import LaunchRecord, RunConfig, save_yaml
from engine.events import Artifact, EventLog
from engine.models.tokenizer_files import save_tokenizer
from engine.model_card import render_model_card


def output_dir(run_path: Path, config: RunConfig) -> Path:
    """`adapter/` for LoRA and QLoRA runs, `model/` for full fine-tuning."""
    return run_path / ("model" if config.adapter.method == "full" else "adapter")


def final_metrics(log_history: list[dict]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for entry in log_history:
        for key in ("loss", "eval_loss"):
            if key in entry:
                metrics[f"final_{key}" if key == "loss" else key] = float(entry[key])
        if "train_runtime" in entry:
            metrics["train_runtime_s"] = float(entry["train_runtime"])
    return metrics


REFERENCE_ADAPTER = "ref"


def _drop_reference_adapter(model) -> None:
    """trl's DPO and KTO keep a frozen copy of a starting adapter (adapter.init_adapter) as their
    reference, named "ref", beside the one they train; peft would save both, and the result is
    the trained one alone."""
    if REFERENCE_ADAPTER in (getattr(model, "peft_config", None) or {}):
        model.delete_adapter(REFERENCE_ADAPTER)


def save_outputs(trainer, tokenizer, config: RunConfig, run_path: Path, events: EventLog,
                 record: LaunchRecord) -> Path:
    """Called by every process: the others only take part in gathering a sharded model, which
    trainer.save_model does on all of them and writes from rank 0 alone."""
    final = output_dir(run_path, config)
    _drop_reference_adapter(trainer.accelerator.unwrap_model(trainer.model))
    if not trainer.args.should_save:
        trainer.save_model(str(final))
        return final
    with atomic_directory(final) as tmp:
        trainer.save_model(str(tmp))
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; training_config.yaml says it all
        save_tokenizer(tokenizer, tmp)
        save_yaml(config, tmp / "training_config.yaml", record)
        metrics = final_metrics(trainer.state.log_history)
        card = render_model_card(run_path.name, config, metrics, kernels=record.kernels,
                                   trainer=record.trainer)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if events.path.is_file():
            shutil.copyfile(events.path, tmp / "events.jsonl")
    size = sum(p.stat().st_size for p in final.rglob("*") if p.is_file())
    events.append(Artifact(str(final), final.name, size))
    return final
