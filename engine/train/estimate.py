"""How much memory a training run needs per process, from the model's shape alone.

Pure arithmetic over frozen dataclasses (no torch, no weights): the parts are the weights, the
trainable parameters, their gradients, AdamW's state and the activations, each sharded as the
strategy shards it. The numbers mirror what the recipe builds (engine/train/recipe.py): which
dtype the base is loaded in, that peft keeps LoRA weights in fp32, that bitsandbytes stores NF4
in blocks of 64 with fp32 (or, double-quantized, 8-bit) block scales.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
PRECISION_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
STRATEGIES = ("ddp", "fsdp", "zero2", "zero3")
OFFLOADS = ("none", "optimizer", "all")
NF4_BLOCK = 64           # bitsandbytes' 4-bit blocksize: one scale per 64 weights
NESTED_BLOCK = 256       # double quantization: one fp32 scale per 256 8-bit scales
LORA_BYTES = 4           # peft keeps adapter weights in fp32 under a 16-bit or 4-bit base
ADAM_STATES = 2          # exp_avg and exp_avg_sq, each shaped and typed like its parameter
ADAM_STEP_BYTES = 4      # plus one fp32 step counter per parameter tensor
PREFETCHED_LAYERS = 2    # a sharded strategy gathers the layer it computes and prefetches the next


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer of the Llama family (Llama, Mistral, Qwen2/3, SmolLM...)."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    head_dim: int
    tied: bool = False       # the output head shares the embedding matrix
    qkv_bias: bool = False   # Qwen2: biases on q, k and v
    qk_norm: bool = False    # Qwen3: an RMSNorm over each head of q and k
    dtype: str = "float32"   # what the checkpoint is stored in (what model.dtype: auto loads)

    def linears(self) -> dict[str, tuple[int, int]]:
        """One layer's linear projections: name -> (in features, out features)."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        """Weights of every layer's linear projections: what QLoRA quantizes."""
        return self.layers * sum(fan_in * fan_out for fan_in, fan_out in self.linears().values())

    def other_params(self) -> int:
        """Everything else: embeddings, output head, norms and biases (kept in 16/32 bits by QLoRA)."""
        per_layer = 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        if self.qkv_bias:
            per_layer += (self.heads + 2 * self.kv_heads) * self.head_dim
        head = 0 if self.tied else self.vocab * self.hidden
        return self.vocab * self.hidden + head + self.hidden + self.layers * per_layer

    def tensors(self) -> int:
        """How many parameter tensors the model has (each gets its own optimizer step counter)."""
        per_layer = len(self.linears()) + 2 + (2 if self.qk_norm else 0) + (3 if self.qkv_bias else 0)
        return self.layers * per_layer + 2 + (0 if self.tied else 1)

    def params(self) -> int:
        return self.linear_params() + self.other_params()

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> ModelShape:
        """From a model's config.json fields (or AutoConfig's to_dict()); KeyError names a missing one."""
        heads = values["num_attention_heads"]
        model_type = values.get("model_type", "")
        return cls(
            hidden=values["hidden_size"], layers=values["num_hidden_layers"],
            intermediate=values["intermediate_size"], heads=heads,
            kv_heads=values.get("num_key_value_heads") or heads, vocab=values["vocab_size"],
            head_dim=values.get("head_dim") or values["hidden_size"] // heads,
            tied=bool(values.get("tie_word_embeddings", False)),
            qkv_bias=model_type == "qwen2" or bool(values.get("attention_bias", False)),
            qk_norm=model_type == "qwen3",
            dtype=str(values.get("dtype") or values.get("torch_dtype") or "float32").removeprefix("torch."),
        )


@dataclass(frozen=True)
class Setup:
    """The settings of a run that decide its memory (RunConfig's, with precision already decided)."""

    method: str = "lora"               # qlora | lora | full
    precision: str = "bf16"            # bf16 | fp16 | fp32
    model_dtype: str = "auto"          # model.dtype: auto loads the checkpoint's dtype
    rank: int = 16
    targets: tuple[str, ...] = ("all-linear",)
    dora: bool = False
    lora_dropout: bool = True          # dropout > 0 keeps a dropped copy of each adapted input
    double_quant: bool = True
    micro_batch: int = 4
    max_length: int = 1024
    checkpointing: bool = True
    strategy: str = "ddp"              # ddp | fsdp | zero2 | zero3
    processes: int = 1
    offload: str = "none"              # none | optimizer | all

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES or self.offload not in OFFLOADS or self.processes < 1:
            raise ValueError(f"bad sharding: {self.strategy}, offload {self.offload}, {self.processes} processes")

    @property
    def tokens(self) -> int:
        """Tokens in one micro-batch: its rows are concatenated without padding, each up to max_length."""
        return self.micro_batch * self.max_length


@dataclass(frozen=True)
class Estimate:
    """Bytes one process holds on its device; `offloaded` is what offload moved to CPU RAM instead."""

    weights: int
    trainable: int
    gradients: int
    optimizer: int
    gathered: int          # whole layers a sharded strategy gathers while it computes them
    activations: int
    offloaded: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.trainable + self.gradients + self.optimizer + self.gathered + self.activations


def weight_bytes(shape: ModelShape, setup: Setup) -> float:
    """The base model as the recipe loads it (for full fine-tuning: the trained weights themselves)."""
    if setup.method == "qlora":
        # the recipe computes QLoRA in bf16 when training is bf16, else in fp32 (fp16 included)
        other = 2 if setup.precision == "bf16" else 4
        return shape.linear_params() * nf4_bytes_per_weight(setup.double_quant) + shape.other_params() * other
    return shape.params() * base_dtype_bytes(shape, setup)


def nf4_bytes_per_weight(double_quant: bool) -> float:
    if double_quant:
        return 0.5 + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NESTED_BLOCK)
    return 0.5 + 4 / NF4_BLOCK


def base_dtype_bytes(shape: ModelShape, setup: Setup) -> int:
    """engine/train/hardware.py base_dtype: a LoRA base computing in bf16 is loaded in bf16."""
    if setup.model_dtype != "auto":
        return DTYPE_BYTES[setup.model_dtype]
    if setup.method == "lora" and setup.precision == "bf16":
        return 2
    return DTYPE_BYTES[shape.dtype]


def adapted(shape: ModelShape, targets: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """The linears LoRA adapts; all-linear is every projection (the output head is never adapted)."""
    linears = shape.linears()
    return linears if "all-linear" in targets else {n: dims for n, dims in linears.items() if n in targets}


def trainable_params(shape: ModelShape, setup: Setup) -> tuple[int, int]:
    """(parameters, tensors) the optimizer trains."""
    if setup.method == "full":
        return shape.params(), shape.tensors()
    linears = adapted(shape, setup.targets).values()
    per_layer = sum(setup.rank * (fan_in + fan_out) + (fan_out if setup.dora else 0) for fan_in, fan_out in linears)
    return shape.layers * per_layer, shape.layers * len(linears) * (3 if setup.dora else 2)


def trainable_bytes_each(shape: ModelShape, setup: Setup) -> int:
    return base_dtype_bytes(shape, setup) if setup.method == "full" else LORA_BYTES


def optimizer_bytes(params: int, tensors: int, element: int) -> int:
    """AdamW's state: two moments like each parameter, and a step counter per tensor."""
    return ADAM_STATES * params * element + tensors * ADAM_STEP_BYTES


def activation_bytes(shape: ModelShape, setup: Setup) -> int:
    """Saved activations of one micro-batch, and the fp32 logits with their gradient.

    Each layer saves its input, both norms' inputs and outputs, q, k, v before and after the
    rotary embedding, the attention output, and the MLP's gate, up, activation and product
    (attention itself is memory-efficient: no sequence x sequence matrix). LoRA adds a dropped
    copy of each adapted input. Checkpointing keeps only each layer's input and recomputes one
    layer at a time in the backward pass.
    """
    h, q, kv, i = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    per_token = 4 * h + 3 * q + 3 * kv + 4 * i
    if setup.method != "full" and setup.lora_dropout:
        per_token += sum(fan_in for fan_in, _ in adapted(shape, setup.targets).values())
    element = PRECISION_BYTES[setup.precision]
    layer = setup.tokens * per_token * element
    layers = shape.layers * setup.tokens * h * element + layer if setup.checkpointing else shape.layers * layer
    logits = setup.tokens * shape.vocab * (element + 2 * 4)  # computed, cast to fp32, log-softmax kept
    return layers + logits


def estimate(shape: ModelShape, setup: Setup) -> Estimate:
    """Per-process bytes for `setup`: ZeRO-2 shards gradients and optimizer state, FSDP and ZeRO-3
    shard the weights too; offload moves the optimizer state (and with `all` the weights) to CPU."""
    shards_weights = setup.strategy in ("fsdp", "zero3")
    weight_share = setup.processes if shards_weights else 1
    rest_share = 1 if setup.strategy == "ddp" else setup.processes
    params, tensors = trainable_params(shape, setup)
    element = trainable_bytes_each(shape, setup)
    weights = weight_bytes(shape, setup)
    trainable = 0 if setup.method == "full" else params * element  # full: the weights are what trains
    optimizer = optimizer_bytes(params, tensors, element) / rest_share
    # DDP with several processes also keeps a flat copy of the gradients in its all-reduce buckets
    gradients = params * element / rest_share * (2 if setup.strategy == "ddp" and setup.processes > 1 else 1)
    moves_optimizer, moves_weights = setup.offload != "none", setup.offload == "all"
    offloaded = optimizer * moves_optimizer + (weights + trainable) / weight_share * moves_weights
    return Estimate(
        weights=0 if moves_weights else round(weights / weight_share),
        trainable=0 if moves_weights else round(trainable / weight_share),
        gradients=round(gradients), optimizer=0 if moves_optimizer else round(optimizer),
        gathered=round(PREFETCHED_LAYERS * weights / shape.layers) if shards_weights else 0,
        activations=activation_bytes(shape, setup), offloaded=round(offloaded),
    )


@dataclass(frozen=True)
class Change:
    """One setting to change, and what the run would then need per process."""

    setting: str
    estimate: Estimate


def changes(setup: Setup) -> Iterator[tuple[str, Setup]]:
    """The settings to try, in the order worth trying them: the cheapest loss of anything first."""
    replace = dataclasses.replace
    if setup.method != "qlora":
        yield "adapter.method: qlora", replace(setup, method="qlora")
    if setup.processes > 1 and setup.strategy in ("ddp", "zero2"):
        yield "training.distributed: fsdp", replace(setup, strategy="fsdp")
    if not setup.checkpointing:
        yield "training.gradient_checkpointing: true", replace(setup, checkpointing=True)
    if setup.micro_batch > 1:
        yield (f"training.micro_batch_size: 1 (and gradient_accumulation x{setup.micro_batch}, same effective "
               "batch)"), replace(setup, micro_batch=1)
    if setup.max_length > 256:
        yield f"data.max_length: {setup.max_length // 2}", replace(setup, max_length=setup.max_length // 2)
    for offload in OFFLOADS[OFFLOADS.index(setup.offload) + 1:]:
        strategy = "zero3" if setup.strategy == "ddp" else setup.strategy
        if strategy == "fsdp" and offload == "optimizer":
            continue  # FSDP2 offloads the weights and the optimizer together, or nothing
        prefix = "training.distributed: deepspeed, " if strategy != setup.strategy else ""
        yield f"{prefix}training.offload: {offload}", replace(setup, strategy=strategy, offload=offload)


def first_change(shape: ModelShape, setup: Setup, fits: Callable[[Estimate], bool]) -> Change | None:
    """The first single change after which the run fits; failing that, the one that saves most."""
    tried = [Change(setting, estimate(shape, changed)) for setting, changed in changes(setup)]
    return next((c for c in tried if fits(c.estimate)), min(tried, key=lambda c: c.estimate.total, default=None))
