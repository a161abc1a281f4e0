"""The Textual workbench: a thin layer over `engine`, `export` and `evals`."""
