"""Every run-time patch of peft, trl, transformers, accelerate and torch that training applies, with its
conditions.

A kernel changes how a library computes, never what: each one's result equals the library's
own path up to rounding, and its tests compare the two. Because they reach into the libraries'
internals, each names the releases it was verified against. The lower bound is the release the
suite passes with (scripts/constraints.txt); a later release of the same major (the same minor
for 0.x libraries, whose minors change internals) is trusted because the suite is re-run when
the pins move; anything else turns the kernel off with a log line instead of risking a wrong
result.

This module is only data, cheap to import: the config validates kernel names against it and
`tanren kernels` lists it without loading torch. The patches themselves are imported when applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEVICES = ("cpu", "cuda")
PRECISIONS = ("bf16", "fp16", "fp32")
METHODS = ("lora", "qlora", "full")
ADAPTERS = ("lora", "qlora")
OBJECTIVES = ("sft", "dpo", "kto", "orpo")
STRATEGIES = ("single", "ddp", "fsdp", "deepspeed")  # one process, or training.distributed over several
TARGETS = ("model", "trainer", "accelerate")


@dataclass(frozen=True)
class Kernel:
    name: str
    summary: str
    patch: str                               # "module:function", called with the target, truthy when applied
    verified: dict[str, str] = field(default_factory=dict)  # distribution -> the releases verified (PEP 440)
    devices: tuple[str, ...] = DEVICES
    precisions: tuple[str, ...] = PRECISIONS
    methods: tuple[str, ...] = METHODS
    objectives: tuple[str, ...] = OBJECTIVES
    strategies: tuple[str, ...] = STRATEGIES
    # what the patch takes: the trainer's "model", the "trainer", or accelerate's AcceleratorState class
    # ("accelerate": patched before the trainer is built, since the trainer builds its Accelerator then)
    target: str = "model"
    switchable: bool = True                  # False: `training.kernels: off` keeps it (a safeguard, or a need)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"kernel {self.name}: target must be one of {', '.join(TARGETS)}")


_PACKAGE = "engine.train.kernels"
PEFT = {"peft": ">=0.21,<0.22"}
TRL = {"trl": ">=1.16,<2"}
TRANSFORMERS = {"transformers": ">=5.24,<6"}
TORCH = {"torch": ">=2.13,<3"}
ACCELERATE = {"accelerate": ">=1.16,<2"}

KERNELS: tuple[Kernel, ...] = (
    Kernel("fused_lora_dropout", "LoRA dropout drawn only where it drops, fused into the A projection",
           f"{_PACKAGE}.lora_dropout:fuse_lora_dropout", {**PEFT, **TORCH}, devices=("cpu",), methods=ADAPTERS),
    Kernel("lora_sum_in_product", "LoRA's update added to the frozen layer's output inside B's product",
           f"{_PACKAGE}.lora_sum:sum_lora_in_product", {**PEFT, **TORCH}, methods=ADAPTERS),
    Kernel("cpu_labelled_lm_head", "the loss's LM head scores only positions that carry a label",
           f"{_PACKAGE}.lm_head:score_labelled_positions_on_cpu", {**TRL, **PEFT, **TORCH},
           devices=("cpu",), methods=ADAPTERS),
    Kernel("cpu_varlen_attention", "padding-free rows attend each example alone, causal, in fp32",
           f"{_PACKAGE}.packed_attention:attend_per_example_on_cpu", {**TRANSFORMERS, **TRL, **TORCH},
           devices=("cpu",), objectives=("sft",)),  # trl's preference trainers pad their batches
    Kernel("bf16_adapter_inputs", "LoRA products in bf16 under autocast, without an fp32 copy of each input",
           f"{_PACKAGE}.bf16_inputs:adapters_compute_in_bf16", PEFT, precisions=("bf16",), methods=ADAPTERS),
    Kernel("atomic_checkpoints", "each checkpoint is written to a staging folder and renamed into place",
           f"{_PACKAGE}.atomic_checkpoints:save_checkpoints_atomically", TRANSFORMERS, target="trainer",
           switchable=False),
    Kernel("cpu_fsdp2", "accelerate's FSDP2 engine shards CPU processes too, instead of falling back to DDP",
           f"{_PACKAGE}.cpu_fsdp:train_fsdp2_on_cpu", {**ACCELERATE, **TRANSFORMERS, **TORCH}, devices=("cpu",),
           strategies=("fsdp",), target="accelerate", switchable=False),
)

NAMES = tuple(kernel.name for kernel in KERNELS)
SWITCHABLE = tuple(kernel.name for kernel in KERNELS if kernel.switchable)
CHOICES = ("auto", "off")  # or kernel names
