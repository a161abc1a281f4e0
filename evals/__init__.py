"""Evaluation: perplexity and ROUGE with before/after tables.

Headless: never imports Textual or the `tui` package.
"""
