"""Run folders: the state of every long operation, readable by any process (CLI, TUI)."""

from engine.runs.rundir import RunDir, create_run, list_runs, open_run

__all__ = ["RunDir", "create_run", "list_runs", "open_run"]
