"""A detached export process: `python -m export.worker EXPORT_DIR`.

It records how the export ended in the export's folder: done (verified), failed (with the
reason, also when verification failed), or cancelled (`cancel_export`, SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from engine.jobs.process_line import process_line
from engine.phrases import phrase
from export.jobs import ExportDir


class ExportCancelled(BaseException):
    """Raised in the worker by SIGTERM: unwinding removes every temporary file on the way out."""

    message = "cancelled on request"


def _cancel(_signum, _frame) -> None:
    raise ExportCancelled()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.worker")
    parser.add_argument("export_dir", type=Path)
    args = parser.parse_args(argv)
    export = ExportDir(args.export_dir)
    export.pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, _cancel)
    export.set_status("running", phrase("started"))
    export.events.append(process_line())
    try:
        from export.pipeline import run_export

        outcome = run_export(export)
    except ExportCancelled:
        export.set_status("cancelled", phrase("stopped on request; files written completely were kept, nothing "
                                              "half-written"), export.crash_hint)
        return 130
    except BaseException as exc:  # noqa: BLE001 - every crash must end as a recorded failure
        return export.record_failure(exc)
    export.set_status("done" if outcome.passed else "failed", outcome.reason, outcome.hint)
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
