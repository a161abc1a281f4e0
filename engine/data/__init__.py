"""Training data: load, validate, render and split (the data doctor behind `tanren data`)."""

from engine.data.check import Finding, Report, check_file
from engine.data.example import Example
from engine.data.formats import FORMATS
from engine.data.lengths import LengthStats
from engine.data.loading import load_examples
from engine.data.render import Rendered, ensure_chat_template, render_example, render_examples
from engine.data.bundled import SAMPLE_ALPACA, SAMPLE_CHAT, SAMPLE_HELDOUT, SAMPLES_DIR
from engine.data.split import Splits, load_splits, split_examples

__all__ = [
    "FORMATS",
    "SAMPLES_DIR",
    "SAMPLE_ALPACA",
    "SAMPLE_CHAT",
    "SAMPLE_HELDOUT",
    "Example",
    "Finding",
    "LengthStats",
    "Rendered",
    "Report",
    "Splits",
    "check_file",
    "ensure_chat_template",
    "load_examples",
    "load_splits",
    "render_example",
    "render_examples",
    "split_examples",
]
