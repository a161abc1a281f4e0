"""An evaluation report as a before/after table: the CLI prints it, the workbench shows it.

The report is the plain dict `tanren eval` keeps in a run folder (see engine.model_card).
"""

from __future__ import annotations

from engine.i18n import N_, Gettext
from engine.textwidth import format_table

# How each metric of an evaluation report is headed, in column order. The model card (a published
# document, in English) shows them as they are; the table translates the words among them.
METRIC_HEADERS = {"perplexity": N_("perplexity"), "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                  "preference_accuracy": N_("pref. accuracy"), "preference_margin": N_("pref. margin")}
METRIC_NAMES = ("rouge1", "rouge2", "rougeL")  # headed the same in every language
LEADING_HEADERS = {"model": N_("model"), "backend": N_("backend")}  # the columns before the metrics
SPLIT_NAMES = {"test": N_("test"), "validation": N_("validation")}  # a run's held-out splits
TEXT_FORMAT = "text"  # engine.data.formats: raw text, every token of which is trained and measured


def format_results(results: dict, _: Gettext) -> str:
    """The before/after table as text: what was measured, then one row per model, with its change against the base."""
    headers, rows = results_table(results, _)
    return "\n".join([describe_data(results, _), "", format_table(headers, rows)])


def describe_data(results: dict, _: Gettext) -> str:
    """One line: how many examples of which file (and split) were measured, and on which tokens."""
    dataset, rows = results["dataset"], results["results"]
    clauses = [_measured_file(dataset, _)]
    if any("perplexity" in row["metrics"] for row in rows):
        clauses.append(_(_perplexity_tokens(results)))
    measured = {row["metrics"]["pairs"] for row in rows if "pairs" in row["metrics"]}
    if measured and measured != {dataset.get("pairs")}:
        window = results["settings"].get("max_length")
        clauses.append(_("preference on the {n} pairs that fit the {window}-token window (--max-length)",
                         n=min(measured), window=window) if window
                       else _("preference on the {n} pairs that fit the context", n=min(measured)))
    return "; ".join(clauses)


def _measured_file(dataset: dict, _: Gettext) -> str:
    """How many examples (or pairs) of which file and split, and the hash of those measured."""
    count = (_("{n} preference pairs", n=dataset["pairs"]) if dataset.get("pairs")
             else _("{n} examples", n=dataset["examples"]))
    values = dict(count=count, path=dataset["path"], sha256=dataset["sha256"][:12])
    split = dataset["split"]
    if not split:
        return _("{count} of {path}, sha256 {sha256}", **values)
    return _("{count} of {path} ({split} split), sha256 {sha256}", split=_(SPLIT_NAMES.get(split, split)), **values)


def _perplexity_tokens(results: dict) -> str:
    """Which tokens perplexity was measured on: of pairs the chosen answers; of text, all of them
    (text has no assistant turns); of conversations, the assistant's unless --all-tokens."""
    dataset = results["dataset"]
    if dataset.get("pairs"):
        return N_("perplexity on the chosen answers")
    if dataset.get("format") == TEXT_FORMAT or not results["settings"]["assistant_only"]:
        return N_("perplexity on all tokens")
    return N_("perplexity on the assistant tokens")


def results_table(results: dict, _: Gettext) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one row per model, a fine-tuned one with its change against the base."""
    rows = results["results"]
    base = next((row["metrics"] for row in rows if row["role"] == "base"), None)
    columns = [key for key in METRIC_HEADERS if any(key in r["metrics"] for r in rows)]
    table = []
    for row in rows:
        name = _("{name} (fine-tuned)", name=row["label"]) if row["role"] == "tuned" else row["label"]
        cells = [_cell(key, row["metrics"], base if row["role"] == "tuned" else None) for key in columns]
        table.append([name, row["backend"], *cells])
    return [header(key, _) for key in [*LEADING_HEADERS, *columns]], table


def header(key: str, _: Gettext) -> str:
    """The heading of the column `key` (model, backend or a metric) in the user's language."""
    text = LEADING_HEADERS.get(key) or METRIC_HEADERS[key]
    return text if key in METRIC_NAMES else _(text)


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
