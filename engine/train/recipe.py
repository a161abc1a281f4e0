"""The training recipe: model + adapter + data + the objective's trl trainer (SFT, DPO, KTO, ORPO),
configured from a RunConfig."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import LaunchRecord, RunConfig, TrainingConfig
from engine.errors import ConfigError
from engine.events import EventLog, Log
from engine.models.loading import load_model, load_tokenizer, model_folder
from engine.paths import Home
from engine.phrases import Phrase, phrase
from engine.versions import library_versions
from engine.train import distributed
from engine.train.checkpoints import latest_checkpoint, remove_staging
from engine.train.hardware import base_dtype, resolve_auto
from engine.train.kernels import layer as kernels
from engine.train.objectives import objective_of, reference_line
from engine.train.reporting import reporting_callbacks, trainer_report_to


@dataclass(frozen=True)
class TrainOutcome:
    stopped: bool          # stopped early on request (a checkpoint was saved)
    global_step: int
    final_loss: float | None
    runtime_s: float       # time inside trainer.train(), as the trainer measured it
    kernels: tuple[str, ...] = ()  # the kernels applied


def build_model(folder: Path, config: RunConfig):
    import torch

    method = config.adapter.method
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if config.training.precision == "bf16" else torch.float32
        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=config.adapter.double_quant, bnb_4bit_compute_dtype=compute,
            bnb_4bit_quant_storage=distributed.quant_storage(config, compute),
        )
        device_map = {"": torch.cuda.current_device()} if torch.cuda.is_available() else {"": "cpu"}
        return load_model(folder, config.model, quantization_config=quant, device_map=device_map, dtype=compute)
    dtype = base_dtype(config)
    return load_model(folder, config.model, **({"dtype": dtype} if dtype else {}))


def build_trainable(folder: Path, config: RunConfig):
    """The model to train, and the LoRA config the trainer wraps it with (None: already wrapped, or full)."""
    model = build_model(folder, config)
    if config.adapter.method == "full":
        return model, None
    if config.adapter.init_adapter:
        return attach_existing_adapter(model, config.adapter.init_adapter), None
    return model, lora_config(config)


def start_line(config: RunConfig) -> Phrase:
    objective, precision = objective_of(config), config.training.precision
    if objective.preference:
        return phrase("computing in {precision}; {objective} with {trainer}, beta {beta}; each micro-batch padded "
                      "to its longest answer", precision=precision, objective=objective.name.upper(),
                      trainer=objective.describe(), beta=config.training.beta)
    if config.training.packing:
        return phrase("computing in {precision}; examples packed into rows, no padding", precision=precision)
    return phrase("computing in {precision}; one row per micro-batch, no padding", precision=precision)


def training_data(config: RunConfig, tokenizer, events: EventLog, cache: Path | None = None):
    from engine.train.dataset import build_datasets
    from engine.train.preference_data import build_preference_datasets

    objective = objective_of(config)
    if objective.preference:
        return build_preference_datasets(config, tokenizer, events, objective.kind)
    return build_datasets(config, tokenizer, events, cache=cache)


def lora_config(config: RunConfig):
    from peft import LoraConfig

    adapter = config.adapter
    targets = adapter.target_modules
    return LoraConfig(
        r=adapter.rank, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        use_rslora=adapter.use_rslora, use_dora=adapter.use_dora, task_type="CAUSAL_LM",
    )


def attach_existing_adapter(model, path: str):
    from peft import PeftModel

    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(phrase("adapter.init_adapter {folder} holds no adapter_config.json", folder=str(folder)),
                          where="adapter.init_adapter",
                          hint=phrase("point at a folder written by peft (a run's adapter/)"))
    return PeftModel.from_pretrained(model, folder, is_trainable=True)


def trainer_arguments(config: RunConfig, output_dir: Path, *, has_eval: bool):
    """The objective's trl config: the arguments all objectives share, and its own."""
    objective = objective_of(config)
    training = config.training
    evaluating = has_eval and training.eval_steps > 0
    if evaluating and training.save_steps % training.eval_steps:
        raise ConfigError(phrase(
            "training.save_steps ({save_steps}) must be a multiple of training.eval_steps ({eval_steps}) to keep "
            "the best checkpoint", save_steps=training.save_steps, eval_steps=training.eval_steps),
            where="training.save_steps")
    return objective.arguments_class()(
        output_dir=str(output_dir),
        learning_rate=training.learning_rate,
        num_train_epochs=training.epochs,
        max_steps=training.max_steps,
        per_device_train_batch_size=training.micro_batch_size,
        per_device_eval_batch_size=training.micro_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation,
        lr_scheduler_type=training.lr_scheduler,
        warmup_steps=training.warmup_ratio,  # transformers 5: a float below 1 is a ratio of total steps
        weight_decay=training.weight_decay,
        max_grad_norm=training.max_grad_norm,
        activation_checkpointing=training.gradient_checkpointing,
        activation_checkpointing_kwargs=checkpointing_kwargs(training),
        bf16=training.precision == "bf16",
        fp16=training.precision == "fp16",
        save_strategy="steps",
        save_steps=training.save_steps,
        save_total_limit=training.save_total_limit,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=training.eval_steps if evaluating else None,
        load_best_model_at_end=evaluating,
        metric_for_best_model="eval_loss" if evaluating else None,
        logging_steps=training.logging_steps,
        logging_first_step=True,
        report_to=trainer_report_to(training),  # only what training.report_to names, from rank 0
        run_name=config.name,
        seed=training.seed,
        data_seed=training.seed,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not _has_cuda(),
        ddp_backend="gloo" if _distributed() and not _has_cuda() else None,
        **distributed.trainer_arguments(config, output_dir.parent),  # output_dir is the run's checkpoints/
        **objective.extra_arguments(config),
    )


def checkpointing_kwargs(training: TrainingConfig) -> dict | None:
    """How gradient checkpointing recomputes: reentrant in one process, non-reentrant across several.

    Reentrant checkpointing runs the first forward without autograd and records the graph once, in
    the recomputation; the non-reentrant kind records it in both. That makes CPU steps 1.1x faster.
    Several processes keep the non-reentrant kind, which FSDP needs.
    """
    if not training.gradient_checkpointing:
        return None
    return {"use_reentrant": not _distributed()}


def _distributed() -> bool:
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_training(
    config: RunConfig,
    run_path: Path,
    home: Home,
    *,
    resume: bool,
    should_stop: Callable[[], bool],
    events: EventLog,
    on_record: Callable[[LaunchRecord], None] = lambda record: None,
) -> TrainOutcome:
    """Train `config` in `run_path`; `on_record` learns the libraries and kernels before the first step."""
    from transformers import EarlyStoppingCallback

    from engine.train.callbacks import EventsCallback, StopCallback

    config = resolve_auto(config)
    objective = objective_of(config)
    events.append(Log.said(start_line(config)))
    folder = model_folder(config.model, home, on_status=lambda m: events.append(Log.said(m)))
    tokenizer = load_tokenizer(folder, config.model)
    datasets = training_data(config, tokenizer, events, cache=run_path / "dataset")
    model, peft_config = build_trainable(folder, config)
    if (reference := reference_line(config)) is not None:
        events.append(Log.said(reference))

    checkpoints = run_path / "checkpoints"
    remove_staging(checkpoints)
    args = trainer_arguments(config, checkpoints, has_eval=datasets.validation is not None)
    stop = StopCallback(should_stop)
    callbacks: list[Any] = [EventsCallback(events), stop]
    callbacks.extend(reporting_callbacks(config, run_path))
    callbacks.extend(distributed.callbacks(config, run_path, events))
    if args.load_best_model_at_end and config.training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.training.early_stopping_patience))
    early = kernels.apply(None, config)  # before the trainer builds its Accelerator
    trainer = objective.trainer_class()(
        model=model, args=args, train_dataset=datasets.train, eval_dataset=datasets.validation,
        processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
    )
    record = LaunchRecord(library_versions(), apply_kernels(trainer, config, events, early), objective.describe(),
                          distributed.deepspeed_record(config))
    on_record(record)
    start_from = latest_checkpoint(checkpoints) if resume else None
    if start_from:
        events.append(Log.said(phrase("resuming from {checkpoint}", checkpoint=start_from.name)))
    result = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
    if not stop.stopped:  # every process: a sharded model is gathered by all of them
        from engine.train.outputs import save_outputs

        distributed.full_state_dict_for_save(trainer)
        save_outputs(trainer, tokenizer, config, run_path, events, record)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return TrainOutcome(stop.stopped, trainer.state.global_step, losses[-1] if losses else result.training_loss,
                        float(result.metrics.get("train_runtime", 0.0)), record.kernels)


def apply_kernels(trainer, config: RunConfig, events: EventLog,
                  early: list[kernels.KernelResult]) -> tuple[str, ...]:
    """Apply the kernels layer to `trainer` and say in the events what it and the `early` kernels
    (applied before the trainer was built) did; returns the names applied."""
    results = early + kernels.apply(trainer, config)
    for line in kernels.describe(results, config.training.kernels):
        events.append(Log.said(line))
    return kernels.applied_names(results)
