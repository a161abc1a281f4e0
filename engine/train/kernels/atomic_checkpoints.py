"""The trainer's checkpoints written into a staging folder and renamed into place (engine.train.checkpoints).

transformers' Trainer writes `checkpoint-N` in place, so a kill during a save leaves a folder
that looks like a checkpoint. Its `_save_checkpoint` asks `_get_output_dir` where to write; here
that answer is a staging folder while a checkpoint is saved, which is then published and the
old checkpoints rotated as the Trainer would. Without this safeguard, resume still skips a
checkpoint that has no trainer state, but a half-written one with a state is trusted.
"""

from __future__ import annotations

from pathlib import Path

from engine.train.checkpoints import STAGING_PREFIX, publish


def save_checkpoints_atomically(trainer) -> bool:
    """Make `trainer` (a transformers Trainer) stage and publish each checkpoint; returns True."""
    from transformers.trainer_utils import rotate_checkpoints

    save, output_dir = trainer._save_checkpoint, trainer._get_output_dir
    staging: list[Path] = []  # the folder being written, while a save runs

    def staged_output_dir(trial) -> str:
        return str(staging[0]) if staging else output_dir(trial)

    def save_then_publish(model, trial) -> None:
        root = Path(output_dir(trial))
        name = f"checkpoint-{trainer.state.global_step}"
        staging.append(root / f"{STAGING_PREFIX}{name}")
        try:
            save(model, trial)
        finally:
            staged = staging.pop()
        _wait_for_every_process()
        if not trainer.args.should_save:
            return
        publish(staged, name, root)
        best = trainer.state.best_model_checkpoint
        if best and best.startswith(str(staged)):
            trainer.state.best_model_checkpoint = str(root) + best[len(str(staged)):]
        rotate_checkpoints(output_dir=str(root), save_total_limit=trainer.args.save_total_limit,
                           best_model_checkpoint=trainer.state.best_model_checkpoint, use_mtime=False)

    trainer._get_output_dir = staged_output_dir
    trainer._save_checkpoint = save_then_publish
    return True


def _wait_for_every_process() -> None:
    """Every process writes into the staging folder (its RNG state, last; under FSDP its shards of the
    model and optimizer too), so rank 0 publishes it only once all of them are done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
