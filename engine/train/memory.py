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
from engine.events import Said
from engine.i18n import N_
from engine.models.resolve import resolve_model
from engine.paths import Home
from engine.phrases import Phrase, Translate, joined, phrase
from engine.textwidth import display_width, human_bytes, pad
from engine.train.estimate import Change, Estimate, ModelShape, Setup, estimate, first_change
from engine.train.hardware import resolve_auto

STRATEGY = {"ddp": "ddp", "fsdp": "fsdp", "deepspeed": "zero3"}  # training.distributed -> the estimate's


@dataclass(frozen=True)
class DeviceMemory:
    name: str | Phrase
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
        raise TanrenError(phrase("no memory estimate: transformers cannot read the model's config ({error})",
                                 error=str(exc)), where=folder) from None
    if values.get("num_local_experts") or values.get("num_experts"):
        raise TanrenError(phrase("no memory estimate for {model_type}: mixture-of-experts models are not covered yet",
                                 model_type=values.get("model_type")), where=folder)
    try:
        return ModelShape.from_config(values)
    except KeyError as missing:
        raise TanrenError(phrase("no memory estimate for {model_type}: its config has no {key}",
                                 model_type=values.get("model_type"), key=str(missing)), where=folder) from None


def device_memory(gpus: int) -> tuple[DeviceMemory, ...]:
    """Free memory of the first `gpus` GPUs (asking opens a CUDA context on each), or of the RAM."""
    import torch

    if torch.cuda.is_available():
        count = min(gpus, torch.cuda.device_count())
        return tuple(DeviceMemory(f"GPU {i} ({torch.cuda.get_device_name(i)})", *torch.cuda.mem_get_info(i), gpu=True)
                     for i in range(count))
    import psutil

    ram = psutil.virtual_memory()
    return (DeviceMemory(phrase("CPU RAM (no CUDA GPU)"), ram.available, ram.total, gpu=False),)


def check(config: RunConfig, home: Home, processes: int = 1, *, gpus: int | None = None) -> MemoryCheck:
    """The estimate of `config` against the GPUs its processes would use (`gpus`: fewer, e.g. a
    running rank's own); the change is named even when the run fits, since an out-of-memory error
    says the estimate fell short."""
    shape = model_shape(config.model.base, home)
    setup = run_setup(resolve_auto(config), processes)
    result = MemoryCheck(setup, estimate(shape, setup), device_memory(gpus or processes))
    return dataclasses.replace(result, change=first_change(shape, setup, result.fits))


def _fits(fits: bool) -> Phrase:
    return phrase("fits") if fits else phrase("does NOT fit")


def summary_phrase(result: MemoryCheck) -> Phrase:
    """One line: the total, its parts and the verdict."""
    parts = [phrase("{part} {size}", part=Phrase(name), size=human_bytes(size))
             for name, size in _parts(result.estimate) if size]
    values = dict(need=human_bytes(result.need()), parts=joined(parts, N_("{first}, {second}")),
                  devices=joined([phrase("{device} {free} free", device=d.name, free=human_bytes(d.free))
                                  for d in result.devices], N_("{first} + {second}")),
                  verdict=_fits(result.fits()))
    processes = result.setup.processes
    if processes == 1:
        return phrase("memory estimate: {need} ({parts}); {devices}: {verdict}", **values)
    if result.devices[0].gpu:
        return phrase("memory estimate per process: {need} ({parts}); {devices}: {verdict}", **values)
    return phrase("memory estimate for {processes} processes: {need} ({parts}); {devices}: {verdict}",
                  processes=processes, **values)


def summary(result: MemoryCheck, _: Translate = str) -> str:
    """The summary line in gettext's language (the new-run form)."""
    return summary_phrase(result).translate(_)


def advice_phrase(result: MemoryCheck) -> Phrase | None:
    """What to change first when the run does not fit, or None when it does."""
    if result.fits():
        return None
    if result.change is None:
        return phrase("the run will not fit, and no setting tanren knows brings it in")
    after = result.change.estimate
    then = _fits(True) if result.fits(after) else phrase("still too much: change more")
    return phrase("the run will not fit: change {setting} first (then {need}: {then})",
                  setting=result.change.setting, need=human_bytes(result.need(after)), then=then)


def advice(result: MemoryCheck, _: Translate = str) -> str | None:
    said = advice_phrase(result)
    return said.translate(_) if said is not None else None


def table(result: MemoryCheck, _: Translate = str) -> list[str]:
    """The estimate part by part, for `tanren train --estimate`."""
    s = result.setup
    lines = [phrase("memory estimate per process: {method} in {precision}, micro-batch {micro_batch} x max_length "
                    "{max_length} = {tokens} tokens, checkpointing {checkpointing}, {strategy} x {processes}, "
                    "offload {offload}", method=s.method, precision=s.precision, micro_batch=s.micro_batch,
                    max_length=s.max_length, tokens=s.tokens, checkpointing="on" if s.checkpointing else "off",
                    strategy=s.strategy, processes=s.processes, offload=s.offload).translate(_)]
    rows = [*((name, size) for name, size in _parts(result.estimate) if size), (N_("total"), result.estimate.total)]
    labels = [_(name) for name, _size in rows] + [_("offloaded")]
    width = max(map(display_width, labels)) + 2  # Japanese names are wider than their English
    lines += [f"  {pad(label, width)}{human_bytes(size):>12}" for label, (_name, size) in zip(labels, rows)]
    if result.estimate.offloaded:
        lines.append(f"  {pad(labels[-1], width)}{human_bytes(result.estimate.offloaded):>12}  "
                     + _("(in CPU RAM instead)"))
    need = result.need()
    for device in result.devices:
        label = device.name if device.gpu else phrase("{device}, shared by {processes} process(es)",
                                                      device=device.name, processes=s.processes)
        lines.append(phrase("{device}: {free} free of {total}; needs {need}: {verdict}", device=label,
                            free=human_bytes(device.free), total=human_bytes(device.total), need=human_bytes(need),
                            verdict=_fits(need <= device.free)).translate(_))
    return lines


def _parts(e: Estimate) -> list[tuple[str, int]]:
    return [(N_("weights"), e.weights), (N_("adapter"), e.trainable), (N_("gradients"), e.gradients),
            (N_("optimizer"), e.optimizer), (N_("gathered"), e.gathered), (N_("activations"), e.activations)]


def verdict_phrases(result: MemoryCheck) -> list[Phrase]:
    """The summary line, and the advice when the run does not fit (the new-run form, the run's log)."""
    warning = advice_phrase(result)
    return [summary_phrase(result), *([warning] if warning else [])]


def verdict(result: MemoryCheck, _: Translate = str) -> list[str]:
    return [line.translate(_) for line in verdict_phrases(result)]


def log_lines(config: RunConfig, home: Home, processes: int) -> list[tuple[Said, str]]:
    """(message, level) pairs for a running run's events, measured on rank 0's GPU only (the others
    belong to the other ranks); an architecture it cannot read is said, not fatal."""
    try:
        result = check(config, home, processes, gpus=1)
    except TanrenError as exc:
        return [(exc.phrases[0], "info")]
    return [(line, "warning" if i else "info") for i, line in enumerate(verdict_phrases(result))]


def oom_advice(config: RunConfig, home: Home, processes: int, generic: Phrase) -> Phrase:
    """The out-of-memory hint: what the estimate says to change first, then the generic advice."""
    try:
        result = check(config, home, processes, gpus=1)
    except TanrenError:
        return generic
    need = human_bytes(result.need())
    if result.change:
        return phrase("the estimate was {need}; change {setting} first; {advice}", need=need,
                      setting=result.change.setting, advice=generic)
    return phrase("the estimate was {need}; {advice}", need=need, advice=generic)
