"""An evaluation report as a before/after table: the CLI prints it, the workbench shows it.

The report is the plain dict `tanren eval` keeps in a run folder (see engine.model_card).
"""

from __future__ import annotations

from engine.textwidth import format_table

# How each metric of an evaluation report is headed, in column order (the model card too)
METRIC_HEADERS = {"perplexity": "perplexity", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                  "preference_accuracy": "pref. accuracy", "preference_margin": "pref. margin"}


def format_results(results: dict) -> str:
    """The before/after table as text: what was measured, then one row per model, with its change against the base."""
    headers, rows = results_table(results)
    return "\n".join([describe_data(results), "", format_table(headers, rows)])


def describe_data(results: dict) -> str:
    """One line: how many examples of which file (and split) were measured, and on which tokens."""
    dataset, rows = results["dataset"], results["results"]
    split = f" ({dataset['split']} split)" if dataset["split"] else ""
    count = f"{dataset['pairs']} preference pairs" if dataset.get("pairs") else f"{dataset['examples']} examples"
    line = f"{count} of {dataset['path']}{split}, sha256 {dataset['sha256'][:12]}"
    if any("perplexity" in row["metrics"] for row in rows):
        tokens = "all tokens" if not results["settings"]["assistant_only"] else "assistant tokens"
        line += f"; perplexity on the {'chosen answers' if dataset.get('pairs') else tokens}"
    measured = {row["metrics"]["pairs"] for row in rows if "pairs" in row["metrics"]}
    if measured and measured != {dataset.get("pairs")}:
        window = results["settings"].get("max_length")
        line += (f"; preference on the {min(measured)} pairs that fit the "
                 + (f"{window}-token window (--max-length)" if window else "context"))
    return line


def results_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one row per model, a fine-tuned one with its change against the base."""
    rows = results["results"]
    base = next((row["metrics"] for row in rows if row["role"] == "base"), None)
    columns = [key for key in METRIC_HEADERS if any(key in r["metrics"] for r in rows)]
    table = []
    for row in rows:
        name = f"{row['label']} (fine-tuned)" if row["role"] == "tuned" else row["label"]
        cells = [_cell(key, row["metrics"], base if row["role"] == "tuned" else None) for key in columns]
        table.append([name, row["backend"], *cells])
    return ["model", "backend", *[METRIC_HEADERS[key] for key in columns]], table


def _cell(key: str, metrics: dict, base: dict | None) -> str:
    """The value and its change against the base: perplexity in percent, the margin (in nats) as a
    difference, shares (ROUGE, preference accuracy) in points."""
    value = metrics.get(key)
    if value is None:
        return "-"
    text = f"{value:.3f}" if key in ("perplexity", "preference_margin") else f"{value:.4f}"
    before = None if base is None else base.get(key)
    if before is None or (key == "perplexity" and not before):
        return text
    if key == "perplexity":
        return f"{text} ({(value / before - 1) * 100:+.1f}%)"
    if key == "preference_margin":
        return f"{text} ({value - before:+.3f})"
    return f"{text} ({(value - before) * 100:+.1f} pt)"
