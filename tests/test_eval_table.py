"""The before/after table of an evaluation report, without a model: the tokens its data line names
(text data has no assistant turns) and the words that go through the catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.i18n import PSEUDO, load_catalog
from engine.presentation.eval_table import describe_data, format_results
from evals.targets import Plan, select_data
from tests.data_files import QA, chat, write_jsonl

ENGLISH = load_catalog("en").gettext


def report(dataset: dict, *, assistant_only: bool = True) -> dict:
    """A report of `dataset` (its describe()) with a base and a fine-tuned row, as eval_results.json holds it."""
    return {"dataset": dataset, "settings": {"assistant_only": assistant_only, "max_length": None},
            "results": [{"label": "base", "role": "base", "backend": "transformers",
                         "metrics": {"perplexity": 12.0, "rouge1": 0.25}},
                        {"label": "tuned", "role": "tuned", "backend": "transformers",
                         "metrics": {"perplexity": 9.0, "rouge1": 0.3}}]}


@pytest.mark.parametrize(("records", "tokens"), [
    ([{"text": "Plain text, a document to learn from."}] * 3, "perplexity on all tokens"),
    ([chat(q, a) for q, a in QA[:3]], "perplexity on the assistant tokens"),
])
def test_the_data_line_names_the_tokens_measured(tmp_path: Path, records: list[dict], tokens: str) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", records)
    line = describe_data(report(select_data(Plan(()), str(data)).describe()), ENGLISH)
    assert line.startswith(f"3 examples of {data}, sha256 ") and line.endswith(f"; {tokens}")


def test_a_report_kept_before_the_format_was_recorded_still_shows() -> None:
    dataset = {"path": "chat.jsonl", "split": "test", "sha256": "0123456789abcdef", "examples": 11}
    assert describe_data(report(dataset), ENGLISH) == (
        "11 examples of chat.jsonl (test split), sha256 0123456789ab; perplexity on the assistant tokens")


def test_every_word_of_the_table_goes_through_the_catalog() -> None:
    dataset = {"path": "chat.jsonl", "split": "test", "format": "messages", "sha256": "0123456789abcdef",
               "examples": 11}
    text = format_results(report(dataset), load_catalog(PSEUDO).gettext)
    while re.search(r"⟦[^⟦⟧]*⟧", text):  # the inner messages first
        text = re.sub(r"⟦[^⟦⟧]*⟧", " ", text)
    # what is left is data (names, numbers, changes), a metric name and the clauses' separator
    assert set(text.split()) == {"base", "transformers", "12.000", "9.000", "(-25.0%)", "0.2500", "0.3000",
                                 "(+5.0", "pt)", "ROUGE-1", ";"}
