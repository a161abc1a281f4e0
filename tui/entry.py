"""The `tanren` console command: the workbench with no arguments, the CLI otherwise.

This module is the composition root: it gathers every package's subcommands. It imports
Textual only when the workbench opens, so CLI commands start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def registrars():
    from engine.cli import (chat_cmd, config_cmd, data_cmd, kernels_cmd, models_cmd, serve_cmd, settings_cmd, train_cmd,
                            version_cmd)
    from evals import cli as eval_cmd
    from export import cli as export_cli

    return [models_cmd.register, config_cmd.register, data_cmd.register, train_cmd.register, chat_cmd.register,
            eval_cmd.register, export_cli.register, serve_cmd.register, kernels_cmd.register,
            settings_cmd.register, version_cmd.register]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from tui.app import run_app

        return run_app()
    from engine.cli import run

    return run(argv, registrars())


if __name__ == "__main__":
    sys.exit(main())
