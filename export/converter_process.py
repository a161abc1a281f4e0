"""Run one of llama.cpp's converters as a child process: its progress as callbacks, its failure as
one ExportError.

The converter is a script with its own imports and its own `gguf-py`, so it runs apart from
tanren's process; its log lines and progress bar are read as they come, and the line that says
why it stopped becomes the error's message.
"""

from __future__ import annotations

import collections
import errno
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from engine.errors import ExportError
from engine.phrases import Phrase, phrase

OnProgress = Callable[[int], None]  # percent of the file written
OnLog = Callable[[str | Phrase, str], None]  # message, level

_TAIL_LINES = 40
_PERCENT_STEP = 10  # report every tenth of the file: a line each in `tanren export --follow`
_PERCENT = re.compile(r"^Writing:\s+(\d+)%\|")
_LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.-]+:(.*)$")
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Exit))(?::\s*(.*))?$")
_PRE_TOKENIZER = "BPE pre-tokenizer was not recognized"
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}
_SHORT_WRITE = re.compile(r"^OSError: (\d+ requested and \d+ written)")
_ERRNO = re.compile(r"^(?:OSError|IOError|PermissionError|FileNotFoundError)\S*: \[Errno (\d+)\] ([^:']*)")


def run_converter(script: Path, args: Sequence[str], *, on_progress: OnProgress | None = None,
                  on_log: OnLog | None = None) -> None:
    """Run `python script args...`; raise ExportError with the converter's own reason if it fails."""
    command = [sys.executable, str(script), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "0.5"}
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use the gguf-py it was written with
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    with subprocess.Popen(command, cwd=script.parent, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env) as process:
        try:
            _read_output(process, tail, on_progress, on_log)
        finally:
            if process.poll() is None:  # cancelled: the converter must not write on after us
                process.kill()
    if process.returncode != 0:
        raise converter_error(list(tail), script.name, process.returncode)


def _os_error(output: list[str]) -> OSError | None:
    """A failed write in the converter (full disk, no permission) as the OSError it was, so the
    caller reports it the way it reports its own writes."""
    for line in reversed(output):
        match = _ERRNO.search(line)
        if match and int(match.group(1)) in _WRITE_ERRNOS:
            return OSError(int(match.group(1)), match.group(2).strip())
        short = _SHORT_WRITE.search(line)
        if short:  # numpy's tofile, which gguf-py writes tensors with, stops short on a full disk
            return OSError(short.group(1))
    return None


def _read_output(process: subprocess.Popen, tail: collections.deque[str], on_progress: OnProgress | None,
                 on_log: OnLog | None) -> None:
    last_percent = -_PERCENT_STEP
    assert process.stdout is not None
    # tqdm redraws its bar with carriage returns, so lines end with either \r or \n
    for line in _lines(process.stdout):
        percent = _PERCENT.match(line)
        if percent:
            value = int(percent.group(1))
            if on_progress and (value >= last_percent + _PERCENT_STEP or (value == 100 and last_percent < 100)):
                on_progress(value)
                last_percent = value
            continue
        tail.append(line)
        logged = _LOG_LINE.match(line)
        if on_log and logged and logged.group(1) in ("WARNING", "ERROR", "CRITICAL") and logged.group(2).strip("* "):
            on_log(phrase("converter: {line}", line=logged.group(2).strip()), "warning")


def _lines(stream) -> Iterator[str]:
    buffer = b""
    while chunk := stream.read1(65536):
        buffer += chunk
        *complete, buffer = re.split(rb"[\r\n]", buffer)
        for raw in complete:
            if raw.strip():
                yield raw.decode("utf-8", errors="replace").rstrip()
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace").rstrip()


def converter_error(output: list[str], script: str, returncode: int) -> ExportError | OSError:
    """The converter's own reason for stopping, as one clear error."""
    if returncode < 0:  # no traceback to read: the kernel's out-of-memory killer, or a user
        return ExportError(phrase("llama.cpp's converter was killed by signal {number} ({name})",
                                  number=-returncode, name=signal.Signals(-returncode).name),
                           where=script, hint=phrase("a SIGKILL while converting usually means memory ran out: close "
                                                     "other programs, or export on a machine with more memory"))
    failed_write = _os_error(output)
    if failed_write is not None:
        return failed_write
    reason = _reason(output)
    if _PRE_TOKENIZER in str(reason):
        return ExportError(
            phrase("llama.cpp's converter does not know this tokenizer's pre-tokenizer, so llama.cpp would split "
                   "text differently from the model's training"), where=script,
            hint=phrase("export with the base model's own tokenizer (a retrained or extended BPE tokenizer has no "
                        "llama.cpp twin yet), or add it to llama.cpp's convert_hf_to_gguf_update.py"))
    return ExportError(phrase("llama.cpp's converter failed: {reason}", reason=reason), where=script,
                       hint=phrase("the model folder may be incomplete or of a kind the converter cannot read"))


def _reason(output: list[str]) -> str | Phrase:
    for line in reversed(output):
        exception = _EXCEPTION.match(line.strip())
        if exception and exception.group(2):
            return f"{exception.group(2)} ({exception.group(1)})"
    for line in reversed(output):
        logged = _LOG_LINE.match(line)
        if logged and logged.group(1) in ("ERROR", "CRITICAL") and logged.group(2).strip("* "):
            return logged.group(2).strip()
    return output[-1] if output else phrase("it stopped without a message")
