"""Atomic checkpoints: written into a staging folder, fsynced, then renamed into place.

A crash mid-save therefore leaves only a `.staging-*` folder, which resume ignores and
removes; every `checkpoint-N` folder that exists is complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from engine.atomic import fsync_tree

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STAGING_PREFIX = ".staging-"
TRAINER_STATE = "trainer_state.json"


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints that finished saving, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name))]
    return [p for _step, p in sorted(found) if (p / TRAINER_STATE).is_file()]


def latest_checkpoint(folder: Path) -> Path | None:
    checkpoints = complete_checkpoints(folder)
    return checkpoints[-1] if checkpoints else None


def remove_staging(folder: Path) -> None:
    if folder.is_dir():
        for leftover in folder.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def publish(staging_root: Path, name: str, final_root: Path) -> Path:
    """Move a fully written checkpoint from its staging root into place, durably."""
    staged = staging_root / name
    _repoint_state(staged / TRAINER_STATE, str(staging_root), str(final_root))
    fsync_tree(staged)
    final = final_root / name
    if final.exists():  # re-saving the same step (e.g. stop right after a periodic save)
        shutil.rmtree(final)
    os.replace(staged, final)
    shutil.rmtree(staging_root, ignore_errors=True)
    fd = os.open(final_root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


def _repoint_state(state_file: Path, old: str, new: str) -> None:
    """The trainer records best-checkpoint paths; they must name the final, not the staging, folder."""
    if not state_file.is_file():
        return
    state = json.loads(state_file.read_text(encoding="utf-8"))
    best = state.get("best_model_checkpoint")
    if isinstance(best, str) and best.startswith(old):
        state["best_model_checkpoint"] = new + best[len(old):]
        state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")
