"""A detached training process: `python -m engine.train.worker RUN_DIR [--resume]`.

It waits its turn for the device (a second run is queued, not launched into an OOM),
trains, and records how it ended in the run folder, with advice when it fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from engine.config import LaunchRecord, RunConfig, save_yaml
from engine.errors import TanrenError
from engine.events import EventLog, Log
from engine.jobs.process_line import process_line
from engine.locking import HeldLock, try_lock
from engine.paths import Home
from engine.phrases import phrase
from engine.runs.rundir import RunDir, resume_command
from engine.train import memory
from engine.train.hardware import resolve_auto

OOM_ADVICE = phrase(
    "lower training.micro_batch_size and raise training.gradient_accumulation (same effective batch), "
    "shorten data.max_length, keep training.gradient_checkpointing on, or train with --method qlora"
)


class StopSignal:
    """Set by SIGTERM (`tanren stop`) or by the run's stop file."""

    def __init__(self, run: RunDir):
        self.run = run
        self.received = False
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, _signum, _frame) -> None:
        self.received = True

    def __call__(self) -> bool:
        return self.received or self.run.stop_file.exists()


def wait_for_device(run: RunDir, home: Home, stop: StopSignal) -> HeldLock | None:
    """Take the device's lock, queueing behind the run that holds it; None if stopped while queued."""
    lock = home.root / "locks" / f"device-{os.environ.get('CUDA_VISIBLE_DEVICES', 'all')}.lock"
    announced = False
    while (held := try_lock(lock)) is None:
        if not announced:
            run.set_status("queued", phrase("waiting for the device: another run is training"))
            announced = True
        if stop():
            return None
        time.sleep(1.0)
    return held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.train.worker")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    home = run.home
    rank = int(os.environ.get("RANK", "0"))
    stop = StopSignal(run)
    if rank != 0:  # only rank 0 owns the run's status, events and the device queue
        _train(run, run.config(), home, args.resume, stop, EventLog(run.path / f"events.rank{rank}.jsonl"))
        return 0  # not the outcome: sys.exit() of an object prints it and exits 1, which torchrun reports
    run.pid_file.write_text(f"{os.getpid()}\n")
    slot = wait_for_device(run, home, stop)
    if slot is None:
        run.set_status("cancelled", phrase("stopped while queued"))
        return 0
    try:
        return _supervised(run, home, args.resume, stop)
    finally:
        slot.release()


def _supervised(run: RunDir, home: Home, resume: bool, stop: StopSignal) -> int:
    run.set_status("running", phrase("resumed") if resume else phrase("started"))
    try:
        config = _settled_config(run)
        for message, level in memory.log_lines(config, home, _world_size()):
            run.events.append(Log.said(message, level))
        outcome = _train(run, config, home, resume, stop, run.events)
    except TanrenError as exc:
        run.record_error(exc)
        return 1
    except BaseException as exc:  # noqa: BLE001 - every crash must end as a recorded failure
        if _is_oom(exc):
            traceback.print_exc()
            run.set_status("failed", phrase("out of memory"), memory.oom_advice(run.config(), home, _world_size(), OOM_ADVICE))
        else:
            run.record_crash(exc)
        return 1
    if outcome.stopped:
        run.set_status("cancelled", phrase("stopped at step {step}; a checkpoint was saved", step=outcome.global_step),
                       phrase("continue with: {command}", command=resume_command(run.name)))
    elif outcome.final_loss is not None:
        run.set_status("done", phrase("{steps} steps, final loss {loss:.4f}", steps=outcome.global_step,
                                      loss=outcome.final_loss))
    else:
        run.set_status("done", phrase("{steps} steps", steps=outcome.global_step))
    return 0


def _settled_config(run: RunDir) -> RunConfig:
    """The run's config with "auto" settings decided once and written back to its config.yaml: a
    resume then trains as the run began (even on another machine), and evaluations and model
    cards show what the run did."""
    config = run.config()
    resolved = resolve_auto(config)
    if resolved != config:
        save_yaml(resolved, run.config_file)
    return resolved


def _train(run: RunDir, config: RunConfig, home: Home, resume: bool, stop: StopSignal, events: EventLog):
    from engine.train.recipe import run_training

    events.append(process_line())
    return run_training(config, run.path, home, resume=resume, should_stop=stop, events=events,
                        on_record=lambda record: _record_launch(run, config, record))


def _record_launch(run: RunDir, config: RunConfig, record: LaunchRecord) -> None:
    """Keep what this launch trains with in the run's config.yaml (rank 0 only: it owns the folder)."""
    if int(os.environ.get("RANK", "0")) == 0:
        save_yaml(config, run.config_file, record)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower()


if __name__ == "__main__":
    sys.exit(main())
