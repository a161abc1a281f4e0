"""Headless core of tanren: models, data, training and generation.

Nothing in here imports Textual or the `tui` package; the import-linter contract in
pyproject.toml and tests/test_import_contract.py keep it that way.
"""
