"""Deciding which kernels run, applying them to a trainer, and saying why each one did or did not."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion

from engine.phrases import Phrase, phrase
from engine.train.kernels.catalog import KERNELS, Kernel


@dataclass(frozen=True)
class Setting:
    """What a kernel's conditions are checked against: where and how this run trains."""

    device: str     # "cpu" or "cuda"
    precision: str  # resolved: bf16, fp16 or fp32
    method: str     # lora, qlora or full
    objective: str = "sft"  # sft, dpo, kto or orpo
    strategy: str = "single"  # one process, or training.distributed (ddp, fsdp, deepspeed) over several

    @classmethod
    def of(cls, config) -> Setting:
        import torch

        from engine.train.distributed import strategy

        return cls("cuda" if torch.cuda.is_available() else "cpu", config.training.precision, config.adapter.method,
                   config.training.objective, strategy(config))


@dataclass(frozen=True)
class KernelResult:
    name: str
    applied: bool
    reason: str = ""  # why not, when not applied
    quiet: bool = False  # a safeguard whose conditions this run does not meet: not logged


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def unverified(kernel: Kernel, version_of: Callable[[str], str | None] | None = None) -> str | None:
    """Why the installed libraries (or `version_of`'s) are not the ones `kernel` was verified against, or None."""
    version_of = version_of or installed_version
    for distribution, releases in kernel.verified.items():
        version = version_of(distribution)
        if version is None:
            return f"{distribution} is not installed"
        try:
            verified = SpecifierSet(releases).contains(version)
        except InvalidVersion:
            verified = False
        if not verified:
            return f"verified with {distribution}{releases}, found {version}"
    return None


def unmet(kernel: Kernel, setting: Setting) -> str | None:
    """Why `kernel` does not apply to this setting (device, precision, method, objective, strategy), or None."""
    for what, value, allowed in (("device", setting.device, kernel.devices),
                                 ("precision", setting.precision, kernel.precisions),
                                 ("method", setting.method, kernel.methods),
                                 ("objective", setting.objective, kernel.objectives),
                                 ("strategy", setting.strategy, kernel.strategies)):
        if value not in allowed:
            return f"{what} {value} (it applies to {', '.join(allowed)})"
    return None


NOT_CHOSEN = "not chosen in training.kernels"


def chosen(kernel: Kernel, choice: tuple[str, ...]) -> str | None:
    """Why training.kernels leaves `kernel` out, or None."""
    if not kernel.switchable or choice == ("auto",) or kernel.name in choice:
        return None
    return NOT_CHOSEN


def apply(trainer, config, *, setting: Setting | None = None,
          version_of: Callable[[str], str | None] | None = None) -> list[KernelResult]:
    """Apply every kernel that `config` (its precision resolved) asks for and whose conditions hold.

    With `trainer` None, the kernels that must be in place before the trainer is built (target
    "accelerate"); with a trainer, the others. The trainer's model is patched in place; a kernel
    that finds nothing to patch in this model (no LoRA dropout, a head that scales its logits...)
    reports itself not applied.
    """
    setting = setting or Setting.of(config)
    results = []
    for kernel in KERNELS:
        if (kernel.target == "accelerate") != (trainer is None):
            continue
        condition = unmet(kernel, setting)
        reason = chosen(kernel, config.training.kernels) or condition or unverified(kernel, version_of)
        if reason is None and not _patch(kernel)(_target(kernel, trainer)):
            reason = "nothing in this model for it to change"
        # a safeguard for another kind of run (FSDP's, in a single process) is not news in the log
        quiet = not kernel.switchable and condition is not None
        results.append(KernelResult(kernel.name, reason is None, reason or "", quiet))
    return results


def _target(kernel: Kernel, trainer):
    if kernel.target == "accelerate":
        return importlib.import_module("accelerate.state").AcceleratorState
    return trainer if kernel.target == "trainer" else trainer.model


def _patch(kernel: Kernel) -> Callable:
    module, _, function = kernel.patch.partition(":")
    return getattr(importlib.import_module(module), function)


def applied_names(results: list[KernelResult]) -> tuple[str, ...]:
    return tuple(result.name for result in results if result.applied)


def describe(results: list[KernelResult], choice: tuple[str, ...]) -> list[Phrase]:
    """Log lines: the kernels applied (and the choice, unless auto), then each one that the
    choice wanted but that stayed off, with its reason (in English: libraries, versions, settings)."""
    names = ", ".join(applied_names(results)) or phrase("none")
    lines = [phrase("kernels: {names}", names=names) if choice == ("auto",)
             else phrase("kernels: {names} (training.kernels: {choice})", names=names, choice=", ".join(choice))]
    lines += [phrase("kernel {name} off: {reason}", name=r.name, reason=r.reason) for r in results
              if not r.applied and r.reason != NOT_CHOSEN and not r.quiet]
    return lines

