"""The sample data shipped with tanren, for the demo and the evals (see samples/README.md)."""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_CHAT = SAMPLES_DIR / "ja_en_chat.jsonl"  # messages format
SAMPLE_ALPACA = SAMPLES_DIR / "ja_en_alpaca.json"  # Alpaca format, a JSON array
SAMPLE_HELDOUT = SAMPLES_DIR / "heldout.jsonl"  # messages format, never trained on
SAMPLE_PREFERENCE = SAMPLES_DIR / "ja_en_preference.jsonl"  # preference pairs, trl's conversational form
SAMPLE_DOCUMENTS = SAMPLES_DIR / "ja_documents.jsonl"  # text records, for continued pretraining
