"""The README.md model card written next to a trained adapter (YAML front matter + tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.config import RunConfig
from engine.models.registry import BUILTIN_MODELS


def base_model_id(config: RunConfig) -> str:
    builtin = BUILTIN_MODELS.get(config.model.base)
    return builtin.hub_id if builtin else config.model.base


def render_model_card(name: str, config: RunConfig, metrics: dict[str, float],
                      eval_results: dict[str, Any] | None = None) -> str:
    method = config.adapter.method
    front = {
        "base_model": base_model_id(config),
        "library_name": "transformers" if method == "full" else "peft",
        "pipeline_tag": "text-generation",
        "tags": ["tanren", "sft", method],
        "datasets": [Path(config.data.path).name] if config.data.path else [],
        "hyperparameters": _hyperparameters(config),
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
    }
    if eval_results:
        front["eval_results"] = eval_results
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# {name}", "",
        f"A {method.upper()} fine-tune of `{front['base_model']}` trained with tanren on "
        f"`{config.data.path}`.", "",
        "## Training", "", "| setting | value |", "| --- | --- |",
        *[f"| {key} | {value} |" for key, value in front["hyperparameters"].items()], "",
        "## Results", "", "| metric | value |", "| --- | --- |",
        *[f"| {key} | {value:.4f} |" for key, value in metrics.items()], "",
    ]
    if method != "full":
        lines += [
            "## Use", "", "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM",
            f"base = AutoModelForCausalLM.from_pretrained({front['base_model']!r})",
            "model = PeftModel.from_pretrained(base, 'path/to/this/folder')",
            "```", "",
        ]
    return "\n".join(lines)


def _hyperparameters(config: RunConfig) -> dict[str, Any]:
    adapter, training = config.adapter, config.training
    values: dict[str, Any] = {"method": adapter.method}
    if adapter.method != "full":
        values.update(lora_rank=adapter.rank, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
                      target_modules=",".join(adapter.target_modules), rslora=adapter.use_rslora,
                      dora=adapter.use_dora)
    values.update(
        learning_rate=training.learning_rate, epochs=training.epochs, max_steps=training.max_steps,
        micro_batch_size=training.micro_batch_size, gradient_accumulation=training.gradient_accumulation,
        effective_batch_size=training.effective_batch_size, max_length=config.data.max_length,
        packing=training.packing, lr_scheduler=training.lr_scheduler, seed=training.seed,
    )
    return values
