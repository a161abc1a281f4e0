"""The README.md model card of a trained adapter or model (YAML front matter + tables): written by
training, refreshed by evaluation, and the base of the export card.

`eval_results` is what `tanren eval` keeps in the run folder (eval_results.json): `dataset`
(path, split, sha256, examples), `settings`, and `results`, one row per model measured, each
with a `label`, a `role` (base or tuned) and its `metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.atomic import atomic_write_text
from engine.config import RunConfig
from engine.models.registry import BUILTIN_MODELS
from engine.presentation.eval_table import METRIC_HEADERS


def base_model_id(config: RunConfig) -> str:
    builtin = BUILTIN_MODELS.get(config.model.base)
    return builtin.hub_id if builtin else config.model.base


def render_model_card(name: str, config: RunConfig, metrics: dict[str, float],
                      eval_results: dict[str, Any] | None = None, *, kernels: tuple[str, ...] = (),
                      trainer: str = "") -> str:
    """The card's text; `kernels` are the run-time kernels training applied (engine.train.kernels),
    `trainer` the trl trainer it ran (marked when experimental)."""
    method, objective = config.adapter.method, config.training.objective
    front = {
        "base_model": base_model_id(config),
        "library_name": "transformers" if method == "full" else "peft",
        "pipeline_tag": "text-generation",
        "tags": ["tanren", objective, method],
        "datasets": _datasets(config),
        "hyperparameters": _hyperparameters(config),
        "kernels": list(kernels),
        "trainer": trainer,
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
    }
    if eval_results:
        front["eval_results"] = _eval_summary(eval_results)
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# {name}", "",
        f"A {method.upper()} {objective.upper()} fine-tune of `{front['base_model']}` trained with tanren on "
        f"`{config.data.path}`.", "",
        "## Training", "", "| setting | value |", "| --- | --- |",
        *[f"| {key} | {value} |" for key, value in front["hyperparameters"].items()],
        f"| kernels | {', '.join(kernels) or 'none'} |",
        *([f"| trainer | {trainer} |"] if trainer else []), "",
        "## Results", "", "| metric | value |", "| --- | --- |",
        *[f"| {key} | {value:.4f} |" for key, value in metrics.items()], "",
    ]
    if eval_results:
        lines += _evaluation(eval_results)
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


def _datasets(config: RunConfig) -> list[str]:
    """The card's `datasets`: a Hub dataset by its id, which the Hub links, a file by its name."""
    from engine.data.hub import is_hub, parse

    path = config.data.path
    if not path:
        return []
    return [parse(path).repo] if is_hub(path) else [Path(path).name]


def _hyperparameters(config: RunConfig) -> dict[str, Any]:
    adapter, training = config.adapter, config.training
    values: dict[str, Any] = {"objective": training.objective, "method": adapter.method}
    if training.objective != "sft":
        values.update(beta=training.beta)
    if adapter.method != "full":
        values.update(lora_rank=adapter.rank, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
                      target_modules=",".join(adapter.target_modules), rslora=adapter.use_rslora,
                      dora=adapter.use_dora)
    values.update(
        learning_rate=training.learning_rate, epochs=training.epochs, max_steps=training.max_steps,
        micro_batch_size=training.micro_batch_size, gradient_accumulation=training.gradient_accumulation,
        effective_batch_size=training.effective_batch_size, max_length=config.data.max_length,
        packing=training.packing, precision=training.precision, lr_scheduler=training.lr_scheduler,
        seed=training.seed,
    )
    return values


def refresh_model_card(folder: Path, name: str, config: RunConfig, eval_results: dict[str, Any]) -> None:
    """Rewrite the card in `folder` with new evaluation results, keeping its training metrics."""
    card = folder / "README.md"
    front = read_card_front_matter(card) if card.is_file() else {}
    metrics = front.get("metrics") or {}
    kernels = tuple(front.get("kernels") or ())
    atomic_write_text(card, render_model_card(name, config, metrics, eval_results, kernels=kernels,
                                              trainer=str(front.get("trainer") or "")))


def read_card_front_matter(card: Path) -> dict[str, Any]:
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        return {}
    front = yaml.safe_load(text[4:text.index("\n---\n", 4)])
    return front if isinstance(front, dict) else {}



def _eval_summary(eval_results: dict[str, Any]) -> dict[str, Any]:
    dataset = eval_results.get("dataset", {})
    return {
        "dataset": dataset.get("path"), "split": dataset.get("split"), "examples": dataset.get("examples"),
        **({"pairs": dataset["pairs"]} if dataset.get("pairs") else {}),
        "dataset_sha256": dataset.get("sha256"), "time": eval_results.get("time"),
        "results": {row["label"]: {k: round(v, 6) for k, v in row["metrics"].items() if k in METRIC_HEADERS}
                    for row in eval_results.get("results", [])},
    }


def _evaluation(eval_results: dict[str, Any]) -> list[str]:
    dataset, rows = eval_results.get("dataset", {}), eval_results.get("results", [])
    columns = [key for key in METRIC_HEADERS if any(key in row["metrics"] for row in rows)]
    split = f" ({dataset['split']} split)" if dataset.get("split") else ""
    tokens = "assistant" if eval_results.get("settings", {}).get("assistant_only", True) else "all"
    tokens = "the chosen answers'" if dataset.get("pairs") else tokens
    measured = [f"perplexity on {tokens} tokens"] * ("perplexity" in columns)
    measured += ["ROUGE F1 of greedy answers"] * ("rouge1" in columns)
    measured += ["preference accuracy (the share of pairs whose chosen answer is likelier than the rejected one) "
                 "and margin (the mean difference of their summed log-probabilities)"] * ("preference_accuracy" in columns)
    return [
        "## Evaluation", "",
        f"Measured by `tanren eval` on {_count(dataset)} of `{dataset.get('path')}`{split}, "
        f"{eval_results.get('time')}: {', '.join(measured)}.", "",
        "| model | " + " | ".join(METRIC_HEADERS[key] for key in columns) + " |",
        "| --- |" + " --- |" * len(columns),
        *["| " + " | ".join([_row_name(row), *[_metric(row["metrics"].get(key)) for key in columns]]) + " |"
          for row in rows],
        "",
    ]


def _count(dataset: dict[str, Any]) -> str:
    return f"{dataset['pairs']} preference pairs" if dataset.get("pairs") else f"{dataset.get('examples')} examples"


def _row_name(row: dict[str, Any]) -> str:
    return {"base": "base", "tuned": f"{row['label']} (fine-tuned)"}.get(row.get("role"), row["label"])


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
