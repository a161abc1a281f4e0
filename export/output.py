"""Write one export artifact safely: a writable folder, enough free space, temp name, rename.

Every writer in `export` goes through `artifact_file` or `artifact_directory`, so a full disk or
an unwritable folder always ends in the same clear `ExportError`, and never in a file or folder
that looks complete but is not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from engine.atomic import atomic_directory, atomic_file
from engine.errors import ExportError
from engine.phrases import phrase
from engine.textwidth import human_bytes

# Headroom over the estimate: metadata, alignment padding, and other writers on the same disk.
_SPACE_MARGIN = 1.05
_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_ACCESS_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
_SHORT_WRITE = "requested and"
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how safetensors (Rust) reports an OS error
_ANOTHER_FOLDER = phrase("choose another output folder")
_FREE_SPACE = phrase("free some space, or write the export to another disk")
_FIX_PERMISSIONS = phrase("choose a folder you can write to, or fix its permissions")


def artifact_file(out: Path, *, expected_bytes: int) -> contextlib.AbstractContextManager[Path]:
    """A temporary path to write `out` through; it is renamed to `out` only on success."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(phrase("the output path {path} is a folder", path=out), where=str(out),
                          hint=phrase("give a file name ending in .gguf"))
    return _artifact(out, expected_bytes, atomic_file, what=out.name)


def artifact_directory(out: Path, *, expected_bytes: int) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder to write `out` into; it replaces `out` in one rename on success."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(phrase("the output path {path} is a file", path=out), where=str(out), hint=_ANOTHER_FOLDER)
    return _artifact(out, expected_bytes, atomic_directory, what=f"{out.name}/")


@contextlib.contextmanager
def _artifact(out: Path, expected_bytes: int, atomic, *, what: str) -> Iterator[Path]:
    folder = writable_folder(out.parent)
    check_free_space(folder, expected_bytes, what=what)
    try:
        with atomic(out) as tmp:
            yield tmp
    except Exception as exc:
        error = _write_failure(exc, out)
        if error is None:
            raise
        raise error from None


def check_free_space(folder: Path, needed_bytes: int, *, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed_bytes * _SPACE_MARGIN:
        raise ExportError(
            phrase("not enough free disk space to write {what}: it needs about {needed}, {free} is free",
                   what=what, needed=human_bytes(needed_bytes), free=human_bytes(free)),
            where=str(folder), hint=_FREE_SPACE,
        )


def writable_folder(folder: Path) -> Path:
    """Create `folder` if needed and check it can be written, or raise a clear ExportError."""
    folder = Path(folder)
    blocking_file = next((parent for parent in (folder, *folder.parents) if parent.is_file()), None)
    if blocking_file is not None:
        raise ExportError(phrase("cannot create the output folder {folder}: {file} is a file", folder=folder,
                                 file=blocking_file), where=str(blocking_file), hint=_ANOTHER_FOLDER)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(phrase("cannot create the output folder {folder}: {error}", folder=folder, error=exc.strerror),
                          where=str(folder), hint=phrase("choose a folder you can write to")) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(phrase("the output folder {folder} is not writable", folder=folder), where=str(folder),
                          hint=_FIX_PERMISSIONS)
    return folder


def _write_failure(exc: Exception, out: Path) -> ExportError | None:
    """A failed write as a clear ExportError; None when `exc` is not an OS error."""
    if isinstance(exc, OSError):
        return _write_error(exc, out)
    match = _RUST_OS_ERROR.search(str(exc))
    if match:
        code = int(match.group(1))
        return _write_error(OSError(code, os.strerror(code)), out)
    return None


def _write_error(exc: OSError, out: Path) -> ExportError:
    # numpy's tofile (gguf-py writes tensors with it) reports a short write without errno; a write
    # stops short when the disk or the allowed file size is exhausted
    if exc.errno in _SPACE_ERRNOS or (exc.errno is None and _SHORT_WRITE in str(exc)):
        return ExportError(phrase("the disk filled up while writing {file}; nothing was left behind", file=out.name),
                           where=str(out.parent), hint=_FREE_SPACE)
    if exc.errno in _ACCESS_ERRNOS:
        return ExportError(phrase("cannot write {file}: {error}", file=out.name, error=exc.strerror),
                           where=str(out.parent), hint=_FIX_PERMISSIONS)
    return ExportError(phrase("writing {file} failed: {error}", file=out.name, error=exc.strerror or exc),
                       where=exc.filename or str(out))
