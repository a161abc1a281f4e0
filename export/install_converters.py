"""Install llama.cpp's converters from the source distribution of the installed llama-cpp-python.

    python -m export.install_converters [--sdist FILE]

The set-up runs this after installing llama-cpp-python. pip fetches the sdist of exactly that
version (from its cache when it built the wheel from it); the converter scripts, `conversion/`
and `gguf-py` are copied into the environment, and the list of architectures the converter
registers is recorded beside them. A second run with the same version does nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from engine.atomic import atomic_directory
from engine.child import failure_summary
from engine.errors import ExportError, TanrenError
from engine.arguments import TanrenParser
from engine.i18n import Catalog, load_catalog
from engine.paths import Home
from engine.phrases import phrase
from engine.settings import user_catalog
from export.converters import (
    ARCHITECTURES_FILE,
    HF_SCRIPT,
    LORA_SCRIPT,
    QWEN2_VOCAB,
    TEMPLATES,
    VERSION_FILE,
    default_folder,
    installed_converters,
    llama_cpp_version,
)

_MEMBERS = (HF_SCRIPT, LORA_SCRIPT, "conversion/", "gguf-py/", f"{TEMPLATES}/", QWEN2_VOCAB)
_VENDORED = PurePosixPath("vendor/llama.cpp")
# Run inside the converter's folder: the registry is a plain dict in conversion/__init__.py
_LIST_ARCHITECTURES = ("import json, sys; sys.path[:0] = ['.', 'gguf-py']; "
                       "from conversion import TEXT_MODEL_MAP; print(json.dumps(sorted(TEXT_MODEL_MAP)))")


def install(sdist: Path | None = None) -> Path:
    """Install the converters for the installed llama-cpp-python; returns their folder."""
    version = llama_cpp_version()
    try:
        return installed_converters().folder
    except ExportError:
        pass
    folder = default_folder(version)
    with tempfile.TemporaryDirectory(prefix="tanren-sdist-") as scratch:
        archive = sdist or _download_sdist(version, Path(scratch))
        with atomic_directory(folder) as tmp:
            _extract(archive, tmp)
            (tmp / ARCHITECTURES_FILE).write_text(_architectures(tmp) + "\n", encoding="utf-8")
            (tmp / VERSION_FILE).write_text(version + "\n", encoding="utf-8")
    return folder


def _download_sdist(version: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
               "--disable-pip-version-check", "--quiet", "-d", str(into), f"llama-cpp-python=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if not found:  # pip may fail after fetching, while preparing metadata: the archive is all we need
        raise TanrenError(phrase("pip could not fetch the source of llama-cpp-python {version}: {error}",
                                 version=version, error=failure_summary(result)),
                          hint=phrase("check the connection to the package index and run the set-up again, or give a "
                                      "downloaded source archive: {command}",
                                      command="python -m export.install_converters --sdist FILE"))
    return found[0]


def _extract(archive: Path, out: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            wanted = [m for m in tar.getmembers() if _target(m.name) is not None]
            if not any(_target(m.name) == PurePosixPath(HF_SCRIPT) for m in wanted):
                raise TanrenError(phrase("{archive} does not carry llama.cpp's {script}", archive=archive.name,
                                         script=HF_SCRIPT), where=str(archive))
            for member in wanted:
                member.name = str(_target(member.name))
                tar.extract(member, out, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise TanrenError(phrase("{archive} cannot be unpacked: {error}", archive=archive.name, error=exc),
                          where=str(archive)) from None


def _target(name: str) -> PurePosixPath | None:
    """`llama_cpp_python-X/vendor/llama.cpp/conversion/base.py` -> `conversion/base.py`; None for the rest."""
    parts = PurePosixPath(name).parts
    inner = PurePosixPath(*parts[1:]) if len(parts) > 1 else PurePosixPath()
    if not inner.is_relative_to(_VENDORED):
        return None
    relative = inner.relative_to(_VENDORED)
    text = relative.as_posix()
    wanted = any(text == m.rstrip("/") or (m.endswith("/") and text.startswith(m)) for m in _MEMBERS)
    return relative if wanted else None


def _architectures(folder: Path) -> str:
    result = subprocess.run([sys.executable, "-c", _LIST_ARCHITECTURES], cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise TanrenError(phrase("llama.cpp's converter does not load: {error}", error=failure_summary(result)),
                          where=str(folder), hint=phrase("its Python dependencies may be missing; run the set-up again"))
    return json.dumps(json.loads(result.stdout))


def main(argv: list[str] | None = None) -> int:
    _ = _catalog().gettext
    parser = TanrenParser(prog="python -m export.install_converters", gettext=_, description=_(
        "Install llama.cpp's converters from the source distribution of the installed llama-cpp-python."))
    parser.add_argument("--sdist", type=Path, help=_("use this llama-cpp-python source archive instead of fetching it"))
    args = parser.parse_args(argv)
    try:
        folder = install(args.sdist)
    except TanrenError as exc:
        print(exc.render(_), file=sys.stderr)
        return 1
    print(_("llama.cpp's converters: {folder}", folder=folder))
    return 0


def _catalog() -> Catalog:
    """The user's language; English where the settings name one tanren cannot speak, since the set-up
    must not stop over it (tanren itself reports that setting when it starts)."""
    try:
        return user_catalog(Home.from_env())
    except TanrenError:
        return load_catalog("en")


if __name__ == "__main__":
    sys.exit(main())
