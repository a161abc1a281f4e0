"""Training data: load, validate, render and split (the data doctor behind `tanren data`)."""

from engine.data.check import Finding, Report, check_file
from engine.data.example import AnyExample, Example, PreferencePair, RatedExample
from engine.data.formats import FORMATS
from engine.data.kinds import DataKind, check_objective, data_kind
from engine.data.lengths import LengthStats
from engine.data.loading import load_examples, load_records
from engine.data.render import Rendered, ensure_chat_template, render_example, render_examples
from engine.data.bundled import SAMPLE_ALPACA, SAMPLE_CHAT, SAMPLE_DOCUMENTS, SAMPLE_HELDOUT, SAMPLE_PREFERENCE, SAMPLES_DIR
from engine.data.split import Splits, load_splits, split_examples

__all__ = [
    "FORMATS",
    "SAMPLES_DIR",
    "SAMPLE_ALPACA",
    "SAMPLE_CHAT",
    "SAMPLE_DOCUMENTS",
    "SAMPLE_HELDOUT",
    "SAMPLE_PREFERENCE",
    "AnyExample",
    "DataKind",
    "Example",
    "Finding",
    "LengthStats",
    "PreferencePair",
    "RatedExample",
    "Rendered",
    "Report",
    "Splits",
    "check_file",
    "check_objective",
    "data_kind",
    "ensure_chat_template",
    "load_examples",
    "load_records",
    "load_splits",
    "render_example",
    "render_examples",
    "split_examples",
]
