"""Trainer callbacks: progress events for the run folder, and graceful stop at the next step."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable

from transformers import TrainerCallback

from engine.events import EventLog, Log, Metrics, Progress
from engine.phrases import Phrase, phrase

_TRAINING_KEYS = {"loss", "eval_loss"}
_LOG_KEYS = {"loss": "loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm", "eval_loss": "eval_loss",
             "epoch": "epoch"}
# The preference trainers' metrics (DPO, KTO, ORPO): the implicit rewards beta * log(policy / reference)
# of the chosen and rejected answers, the share of pairs ranked right, and KTO's KL estimate.
PREFERENCE_KEYS = {"rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected",
                   "rewards/accuracies": "reward_accuracy", "rewards/margins": "reward_margin", "kl": "kl"}
_LOG_KEYS.update(PREFERENCE_KEYS)
_LOG_KEYS.update({f"eval_{key}": f"eval_{name}" for key, name in PREFERENCE_KEYS.items()})


def peak_memory_mb() -> float:
    """Peak accelerator memory if there is one, else the process's peak resident memory."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak_kb / 1024 if sys.platform != "darwin" else peak_kb / 2**20


def start_message(args, state) -> Phrase:
    """The steps and the effective batch size (per device x accumulation x processes) at the start."""
    processes = max(1, args.world_size)
    values = dict(steps=state.max_steps, per_device=args.per_device_train_batch_size,
                  accumulation=args.gradient_accumulation_steps, processes=processes,
                  batch=args.per_device_train_batch_size * args.gradient_accumulation_steps * processes)
    if state.global_step:
        return phrase("training {steps} steps; effective batch size {batch} ({per_device} per device x "
                      "{accumulation} accumulation x {processes} processes); resuming at step {step}",
                      step=state.global_step, **values)
    return phrase("training {steps} steps; effective batch size {batch} ({per_device} per device x "
                  "{accumulation} accumulation x {processes} processes)", **values)


class EventsCallback(TrainerCallback):
    """Writes metrics and progress lines (LLaMA-Factory style) that the CLI and TUI follow."""

    def __init__(self, events: EventLog):
        self.events = events
        self._start_time = 0.0
        self._start_step = 0
        self._start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self._start_time = time.time()
        self._start_step = state.global_step
        self._start_tokens = state.num_input_tokens_seen
        self.events.append(Log.said(start_message(args, state)))
        self.events.append(Progress(state.global_step, state.max_steps))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or not _TRAINING_KEYS & logs.keys():
            return  # the closing summary (runtime, flos) is not a training step
        now = time.time()
        values = {name: float(logs[key]) for key, name in _LOG_KEYS.items() if key in logs}
        tokens = state.num_input_tokens_seen - self._start_tokens
        if tokens > 0 and now > self._start_time:
            # averaged since this process started training, checkpoint saves included
            values["tokens_per_s"] = tokens / (now - self._start_time)
        values["peak_memory_mb"] = peak_memory_mb()
        eta = self._eta(state, now)
        if eta is not None:
            values["eta_s"] = eta
        self.events.append(Metrics(state.global_step, values))
        self.events.append(Progress(state.global_step, state.max_steps, eta_s=eta))

    def _eta(self, state, now: float) -> float | None:
        done = state.global_step - self._start_step
        if done <= 0:
            return None
        return (now - self._start_time) / done * max(0, state.max_steps - state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.events.append(Log.said(phrase("checkpoint saved at step {step}", step=state.global_step)))


class StopCallback(TrainerCallback):
    """Ends training after the current step, saving a checkpoint, when a stop was requested."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if self._agreed(self.should_stop()):
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
        return control

    @staticmethod
    def _agreed(local: bool) -> bool:
        """Under DDP every process must stop at the same step, or the others hang in all-reduce."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return local
        import torch

        flag = torch.tensor([1 if local else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
