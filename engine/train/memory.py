"""The memory estimate of a run as people see it: read the model's shape from its config (no
weights loaded), measure what each device has free, and say whether the run fits and, if not,
which setting to change first. `tanren train --estimate`, the start of a run, the new-run form
and the out-of-memory advice all use it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from engine.config import RunConfig
from engine.errors import TanrenError
from engine.models.resolve import resolve_model
from engine.paths import Home
from engine.textwidth import human_bytes
from engine.train.estimate import Change, Estimate, ModelShape, Setup, estimate, first_change
from engine.train.hardware import resolve_auto

STRATEGY = {"ddp": "ddp", "fsdp": "fsdp", "deepspeed": "zero3"}  # training.distributed -> the estimate's


@dataclass(frozen=True)
class DeviceMemory:
    name: str
    free: int
    total: int
    gpu: bool


@dataclass(frozen=True)
class MemoryCheck:
    """A run's estimate against the devices it would train on."""

    setup: Setup
    estimate: Estimate
    devices: tuple[DeviceMemory, ...]
    change: Change | None = None  # the first setting to change, and the estimate after it

    def need(self, estimate: Estimate | None = None) -> int:
        """Bytes asked of each device: on a CPU every process of this machine shares the same RAM."""
        total = (estimate or self.estimate).total
        return total * (1 if self.devices[0].gpu else self.setup.processes)

    def fits(self, estimate: Estimate | None = None) -> bool:
        return all(self.need(estimate) <= device.free for device in self.devices)


def run_setup(config: RunConfig, processes: int) -> Setup:
    """The estimate's view of `config`, whose training.precision is decided (resolve_auto)."""
    adapter, training = config.adapter, config.training
    return Setup(
        method=adapter.method, precision=training.precision, model_dtype=config.model.dtype, rank=adapter.rank,
        targets=adapter.target_modules, dora=adapter.use_dora, lora_dropout=adapter.dropout > 0,
        double_quant=adapter.double_quant, micro_batch=training.micro_batch_size,
        max_length=config.data.max_length, checkpointing=training.gradient_checkpointing,
        strategy=STRATEGY[training.distributed], processes=processes, offload=training.offload,
    )


def model_shape(base: str, home: Home) -> ModelShape:
    """The shape of `model.base` from its config alone; a GGUF not yet converted is read in place."""
    resolved = resolve_model(base, home)
    if resolved.needs_materializing:
        assert resolved.gguf_source is not None
        return _shape(str(resolved.gguf_source.parent), resolved.gguf_source.name)
    return _shape(str(resolved.folder), None)


@functools.lru_cache(maxsize=8)  # the new-run form asks again at each Ctrl+G
def _shape(folder: str, gguf_file: str | None) -> ModelShape:
    from engine.imports import transformers_loading

    try:  # never with the model's own code: an estimate is not worth running it
        with transformers_loading("AutoConfig") as (AutoConfig,):
            values = AutoConfig.from_pretrained(folder, gguf_file=gguf_file, local_files_only=True).to_dict()
    except (OSError, ValueError) as exc:
        raise TanrenError(f"no memory estimate: transformers cannot read the model's config ({exc})",
                          where=folder) from None
    if values.get("num_local_experts") or values.get("num_experts"):
        raise TanrenError(f"no memory estimate for {values.get('model_type')}: mixture-of-experts models "
                          "are not covered yet", where=folder)
    try:
        return ModelShape.from_config(values)
    except KeyError as missing:
        raise TanrenError(f"no memory estimate for {values.get('model_type')}: its config has no {missing}",
                          where=folder) from None


def device_memory(gpus: int) -> tuple[DeviceMemory, ...]:
    """Free memory of the first `gpus` GPUs (asking opens a CUDA context on each), or of the RAM."""
    import torch

    if torch.cuda.is_available():
        count = min(gpus, torch.cuda.device_count())
        return tuple(DeviceMemory(f"GPU {i} ({torch.cuda.get_device_name(i)})", *torch.cuda.mem_get_info(i), gpu=True)
                     for i in range(count))
    import psutil

    ram = psutil.virtual_memory()
    return (DeviceMemory("CPU RAM (no CUDA GPU)", ram.available, ram.total, gpu=False),)


def check(config: RunConfig, home: Home, processes: int = 1, *, gpus: int | None = None) -> MemoryCheck:
    """The estimate of `config` against the GPUs its processes would use (`gpus`: fewer, e.g. a
    running rank's own); the change is named even when the run fits, since an out-of-memory error
    says the estimate fell short."""
    shape = model_shape(config.model.base, home)
    setup = run_setup(resolve_auto(config), processes)
    result = MemoryCheck(setup, estimate(shape, setup), device_memory(gpus or processes))
    return dataclasses.replace(result, change=first_change(shape, setup, result.fits))


def summary(result: MemoryCheck) -> str:
    """One line: the total, its parts and the verdict (the run's log, the new-run form)."""
    parts = ", ".join(f"{name} {human_bytes(size)}" for name, size in _parts(result.estimate) if size)
    where = " + ".join(f"{d.name} {human_bytes(d.free)} free" for d in result.devices)
    processes = result.setup.processes
    who = "" if processes == 1 else " per process" if result.devices[0].gpu else f" for {processes} processes"
    verdict = "fits" if result.fits() else "does NOT fit"
    return f"memory estimate{who}: {human_bytes(result.need())} ({parts}); {where}: {verdict}"


def advice(result: MemoryCheck) -> str | None:
    """What to change first when the run does not fit, or None when it does."""
    if result.fits():
        return None
    if result.change is None:
        return "the run will not fit, and no setting tanren knows brings it in"
    after = result.change.estimate
    then = "fits" if result.fits(after) else "still too much: change more"
    return f"the run will not fit: change {result.change.setting} first (then {human_bytes(result.need(after))}: {then})"


def table(result: MemoryCheck) -> list[str]:
    """The estimate part by part, for `tanren train --estimate`."""
    s = result.setup
    lines = [f"memory estimate per process: {s.method} in {s.precision}, micro-batch {s.micro_batch} x max_length "
             f"{s.max_length} = {s.tokens} tokens, checkpointing {'on' if s.checkpointing else 'off'}, "
             f"{s.strategy} x {s.processes}, offload {s.offload}"]
    lines += [f"  {name:<12}{human_bytes(size):>12}" for name, size in _parts(result.estimate) if size]
    lines.append(f"  {'total':<12}{human_bytes(result.estimate.total):>12}")
    if result.estimate.offloaded:
        lines.append(f"  {'offloaded':<12}{human_bytes(result.estimate.offloaded):>12}  (in CPU RAM instead)")
    need = result.need()
    for device in result.devices:
        label = device.name if device.gpu else f"{device.name}, shared by {s.processes} process(es)"
        lines.append(f"{label}: {human_bytes(device.free)} free of {human_bytes(device.total)}; "
                     f"needs {human_bytes(need)}: {'fits' if need <= device.free else 'does NOT fit'}")
    return lines


def _parts(e: Estimate) -> list[tuple[str, int]]:
    return [("weights", e.weights), ("adapter", e.trainable), ("gradients", e.gradients),
            ("optimizer", e.optimizer), ("gathered", e.gathered), ("activations", e.activations)]


def verdict(result: MemoryCheck) -> list[str]:
    """The summary line, and the advice when the run does not fit (the new-run form, the run's log)."""
    warning = advice(result)
    return [summary(result), *([warning] if warning else [])]


def log_lines(config: RunConfig, home: Home, processes: int) -> list[tuple[str, str]]:
    """(message, level) pairs for a running run's events, measured on rank 0's GPU only (the others
    belong to the other ranks); an architecture it cannot read is said, not fatal."""
    try:
        result = check(config, home, processes, gpus=1)
    except TanrenError as exc:
        return [(exc.message, "info")]
    return [(line, "warning" if i else "info") for i, line in enumerate(verdict(result))]


def oom_advice(config: RunConfig, home: Home, processes: int, generic: str) -> str:
    """The out-of-memory hint: what the estimate says to change first, then the generic advice."""
    try:
        result = check(config, home, processes, gpus=1)
    except TanrenError:
        return generic
    first = f"change {result.change.setting} first; " if result.change else ""
    return f"the estimate was {human_bytes(result.need())}; {first}{generic}"
