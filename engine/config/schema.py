"""Run configuration, one frozen dataclass per concern (model, data, adapter, training, generation).

Every field carries help text; `__post_init__` rejects bad values with a message that names the
field, so a typo in a YAML file is caught before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config.fields import param
from engine.errors import ConfigError
from engine.i18n import N_
from engine.models.registry import DEFAULT_MODEL
from engine.phrases import Phrase, phrase


def _check_choice(section: str, name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        field = f"{section}.{name}"
        raise ConfigError(phrase("{field} is {value!r}; expected one of: {options}",
                                 field=field, value=value, options=", ".join(options)), where=field)


def _check_range(section: str, name: str, value: float, low: float, high: float | None = None,
                 *, low_open: bool = False) -> None:
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        field = f"{section}.{name}"
        raise ConfigError(phrase("{field} is {value}; it must be {bound}", field=field, value=value,
                                 bound=_bound(low, high, low_open)), where=field)


def _bound(low: float, high: float | None, low_open: bool) -> Phrase:
    """The range a value must lie in, as words a translation can reorder."""
    if high is None:
        return phrase("> {low}", low=low) if low_open else phrase(">= {low}", low=low)
    if low_open:
        return phrase("> {low} and <= {high}", low=low, high=high)
    return phrase(">= {low} and <= {high}", low=low, high=high)


def _example(example: str) -> Phrase:
    return phrase("for example {example}", example=example)


@dataclass(frozen=True)
class ModelConfig:
    base: str = param(DEFAULT_MODEL, N_("base model: a built-in name, a local HF folder, a .gguf file or a cached hub id"))
    dtype: str = param("auto", N_("weights dtype for training and chat: auto, float32, bfloat16 or float16"))
    trust_remote_code: bool = param(False, N_("run Python code shipped with the model (only for models you trust)"))
    allow_pickle: bool = param(False, N_("allow pickle-based .bin/.pt weights (they can run code when loaded)"))

    def __post_init__(self) -> None:
        _check_choice("model", "dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        if not self.base.strip():
            raise ConfigError(phrase("{field} is empty", field="model.base"), where="model.base",
                              hint=_example(DEFAULT_MODEL))


# SFT formats, then the preference formats (engine.data.formats, engine.data.preference)
DATA_FORMATS = ("auto", "text", "alpaca", "instruction", "sharegpt", "messages",
                "preference", "implicit_preference", "sharegpt_preference", "kto")


@dataclass(frozen=True)
class DataConfig:
    path: str | None = param(None, N_("training data: .jsonl, .json, .csv or .parquet, or hf:ORG/NAME[:SPLIT] from the HF cache"))
    format: str = param("auto", N_("record format: auto, text, alpaca, instruction, sharegpt, messages, preference, "
                                   "implicit_preference, sharegpt_preference, kto"))
    validation_path: str | None = param(None, N_("explicit validation file (otherwise split from `path`)"))
    split: tuple[float, ...] = param((0.8, 0.1, 0.1), N_("train/validation/test fractions"))
    seed: int = param(42, N_("seed of the deterministic split"))
    max_length: int = param(1024, N_("longest example in tokens; longer conversations are cut, longer text records become windows"))
    window_stride: int | None = param(None, N_("tokens between the starts of a long text record's windows (default max_length: no overlap)"))
    assistant_only_loss: bool = param(True, N_("train only on assistant/response tokens (raw text trains on all)"))

    def __post_init__(self) -> None:
        _check_choice("data", "format", self.format, DATA_FORMATS)
        if len(self.split) != 3 or any(part < 0 for part in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(
                phrase("data.split is {split}; give three non-negative fractions that add up to 1",
                       split=list(self.split)),
                where="data.split", hint=_example("0.8,0.1,0.1"),
            )
        _check_range("data", "max_length", self.max_length, 16)
        if self.window_stride is not None:
            _check_range("data", "window_stride", self.window_stride, 1, self.max_length)


METHODS = ("qlora", "lora", "full")


@dataclass(frozen=True)
class AdapterConfig:
    method: str = param("lora", N_("qlora (4-bit NF4 base + LoRA), lora (16/32-bit base) or full fine-tuning"))
    rank: int = param(16, N_("LoRA rank r"))
    alpha: int = param(32, N_("LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rsLoRA)"))
    dropout: float = param(0.05, N_("dropout on the LoRA path"))
    target_modules: tuple[str, ...] = param(("all-linear",), N_("modules to adapt; all-linear detects every linear layer but the output head"))
    use_rslora: bool = param(False, N_("rank-stabilized LoRA scaling"))
    use_dora: bool = param(False, N_("weight-decomposed LoRA (DoRA)"))
    double_quant: bool = param(True, N_("qlora: quantize the quantization constants too"))
    init_adapter: str | None = param(None, N_("continue training from this existing adapter folder"))

    def __post_init__(self) -> None:
        _check_choice("adapter", "method", self.method, METHODS)
        _check_range("adapter", "rank", self.rank, 1)
        _check_range("adapter", "alpha", self.alpha, 1)
        _check_range("adapter", "dropout", self.dropout, 0.0, 1.0)
        if not self.target_modules:
            raise ConfigError(phrase("{field} is empty", field="adapter.target_modules"), where="adapter.target_modules",
                              hint=phrase("use all-linear, or names such as q_proj,v_proj"))


PRECISIONS = ("auto", "bf16", "fp16", "fp32")
OBJECTIVES = ("sft", "dpo", "kto", "orpo")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
DISTRIBUTED = ("ddp", "fsdp", "deepspeed")
OFFLOADS = ("none", "optimizer", "all")
REPORTERS = ("tensorboard", "wandb", "mlflow")


@dataclass(frozen=True)
class TrainingConfig:
    objective: str = param("sft", N_("what the run learns: sft (imitate answers), dpo (prefer chosen over rejected "
                                     "answers), kto (thumbs up/down ratings) or orpo (SFT and preference in one stage)"))
    beta: float = param(0.1, N_("dpo/kto: strength of the pull towards the reference model (β); orpo: weight of the "
                                "odds-ratio preference term (λ)"))
    learning_rate: float = param(2e-4, N_("peak learning rate"))
    epochs: float = param(3.0, N_("passes over the training split (ignored when max_steps > 0)"))
    max_steps: int = param(-1, N_("stop after this many optimizer steps (-1: use epochs)"))
    micro_batch_size: int = param(4, N_("examples per forward pass on one device"))
    gradient_accumulation: int = param(4, N_("micro-batches per optimizer step"))
    lr_scheduler: str = param("cosine", N_("learning-rate schedule: cosine, linear, constant, constant_with_warmup"))
    warmup_ratio: float = param(0.03, N_("fraction of steps spent warming up the learning rate"))
    weight_decay: float = param(0.0, N_("AdamW weight decay"))
    max_grad_norm: float = param(1.0, N_("gradient clipping norm"))
    packing: bool = param(False, N_("pack examples into full rows of max_length (fewer, fuller steps; pays with "
                                    "a variable-length attention kernel such as flash-attention); off: each "
                                    "micro-batch is one row. Never any padding"))
    gradient_checkpointing: bool = param(True, N_("recompute activations to save memory"))
    precision: str = param("auto", N_("auto (bf16 where it is fast: a GPU with native bf16, a CPU with AMX or "
                                      "AVX-512 BF16), bf16, fp16 or fp32"))
    save_steps: int = param(50, N_("checkpoint every N steps (and always at the end)"))
    save_total_limit: int = param(3, N_("keep the last K checkpoints"))
    eval_steps: int = param(0, N_("evaluate on the validation split every N steps (0: off)"))
    early_stopping_patience: int = param(0, N_("stop after N evaluations without improvement (0: off)"))
    logging_steps: int = param(1, N_("write a metrics event every N steps"))
    seed: int = param(42, N_("seed for initialization, shuffling and dropout"))
    tensorboard: bool = param(False, N_("also write TensorBoard event files into the run folder (as report_to: "
                                        "[tensorboard])"))
    report_to: tuple[str, ...] = param((), N_("experiment trackers, from rank 0: tensorboard (into the run folder), "
                                              "wandb, mlflow (each an optional extra; none is contacted unless named)"))
    distributed: str = param("ddp", N_("several processes (--nproc): ddp (each holds the whole model), fsdp or "
                                       "deepspeed (ZeRO-3: weights, gradients and optimizer state sharded)"))
    offload: str = param("none", N_("deepspeed: move to CPU RAM the optimizer state (optimizer) or the weights too "
                                    "(all); fsdp: all (weights, gradients and the optimizer step on the CPU)"))
    # YAML reads a bare `off` as false (and `on` as true), so a bool is taken as off (or auto)
    kernels: tuple[str, ...] | bool = param(("auto",), N_("run-time kernels (see `tanren kernels`): auto (each where its "
                                                          "conditions hold), off (the libraries as they ship), or names"))

    def __post_init__(self) -> None:
        if isinstance(self.kernels, bool):
            object.__setattr__(self, "kernels", ("auto",) if self.kernels else ("off",))
        _check_kernels(self.kernels)
        _check_range("training", "learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        _check_range("training", "epochs", self.epochs, 0.0, low_open=True)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(phrase("training.max_steps must be -1 (use epochs) or a positive number"),
                              where="training.max_steps")
        for name in ("micro_batch_size", "gradient_accumulation", "save_steps", "save_total_limit", "logging_steps"):
            _check_range("training", name, getattr(self, name), 1)
        for name in ("eval_steps", "early_stopping_patience"):
            _check_range("training", name, getattr(self, name), 0)
        _check_range("training", "warmup_ratio", self.warmup_ratio, 0.0, 0.5)
        _check_choice("training", "lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _check_choice("training", "precision", self.precision, PRECISIONS)
        _check_choice("training", "objective", self.objective, OBJECTIVES)
        _check_range("training", "beta", self.beta, 0.0, low_open=True)
        if self.objective == "kto" and self.micro_batch_size < 2:
            # trl estimates KTO's KL term from the other answers of the same micro-batch
            raise ConfigError(phrase("training.micro_batch_size must be at least 2 for KTO"),
                              where="training.micro_batch_size",
                              hint=phrase("KTO estimates its KL term from the other examples of each micro-batch"))
        _check_launch(self)

    @property
    def effective_batch_size(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation


def _check_launch(training: TrainingConfig) -> None:
    _check_choice("training", "distributed", training.distributed, DISTRIBUTED)
    _check_choice("training", "offload", training.offload, OFFLOADS)
    for name in training.report_to:
        _check_choice("training", "report_to", name, REPORTERS)
    if training.offload != "none" and training.distributed == "ddp":
        raise ConfigError(phrase("training.offload needs a sharded strategy; DDP keeps everything on each GPU"),
                          where="training.offload",
                          hint=phrase("set training.distributed: deepspeed, or offload: none"))
    if training.offload == "optimizer" and training.distributed == "fsdp":
        raise ConfigError(phrase("training.offload: optimizer is DeepSpeed's; FSDP2 offloads the weights, "
                                 "gradients and optimizer step together"), where="training.offload",
                          hint=phrase("set offload: all (FSDP2's CPU offload), or training.distributed: deepspeed"))


def _check_kernels(kernels: tuple[str, ...]) -> None:
    from engine.train.kernels.catalog import CHOICES, NAMES

    if kernels in tuple((choice,) for choice in CHOICES):
        return
    unknown = [name for name in kernels if name not in NAMES]
    if not kernels or unknown:
        message = (phrase("training.kernels names {names}, which are not kernels", names=", ".join(unknown))
                   if unknown else phrase("{field} is empty", field="training.kernels"))
        raise ConfigError(message, where="training.kernels",
                          hint=phrase("use auto, off, or some of: {names}", names=", ".join(NAMES)))


@dataclass(frozen=True)
class GenerationConfig:
    temperature: float = param(0.7, N_("sampling temperature (0: greedy)"))
    top_p: float = param(0.9, N_("nucleus sampling mass"))
    top_k: int = param(50, N_("sample among the k likeliest tokens (0: off)"))
    repetition_penalty: float = param(1.1, N_("penalty for repeating tokens (1.0: off)"))
    max_new_tokens: int = param(256, N_("longest answer in tokens"))
    seed: int | None = param(None, N_("seed for reproducible sampling"))
    system_prompt: str = param("", N_("system prompt placed before the conversation"))

    def __post_init__(self) -> None:
        _check_range("generation", "temperature", self.temperature, 0.0, 5.0)
        _check_range("generation", "top_p", self.top_p, 0.0, 1.0, low_open=True)
        _check_range("generation", "top_k", self.top_k, 0)
        _check_range("generation", "repetition_penalty", self.repetition_penalty, 0.0, low_open=True)
        _check_range("generation", "max_new_tokens", self.max_new_tokens, 1)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; saved as the run folder's resolved config."""

    name: str | None = param(None, N_("run name (the run's folder under $TANREN_HOME/runs)"))
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": N_("base model")})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": N_("training data")})
    adapter: AdapterConfig = field(default_factory=AdapterConfig, metadata={"help": N_("adapter and quantization")})
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"help": N_("optimization")})
    generation: GenerationConfig = field(default_factory=GenerationConfig, metadata={"help": N_("chat and eval sampling")})

    def __post_init__(self) -> None:
        if self.name is not None:
            from engine.paths import RUN_NAME, validate_name

            validate_name(self.name, what=RUN_NAME)


SECTIONS = ("model", "data", "adapter", "training", "generation")
