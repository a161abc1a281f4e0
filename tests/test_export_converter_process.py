"""How tanren reads llama.cpp's converter as a child process: progress, warnings, and each way it can
fail turned into one clear error. Stand-in scripts print what the converter prints."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from engine.errors import ExportError
from export.converter_process import run_converter
from export.output import artifact_file
from export.quantize import SMALL_MODEL_PARAMETERS, default_quants


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "convert_hf_to_gguf.py"
    path.write_text("import os, sys, time\n" + body, encoding="utf-8")
    return path


def test_progress_comes_in_tenths_and_warnings_as_log_lines(tmp_path: Path) -> None:
    script = _script(tmp_path, """
print("INFO:hf-to-gguf:Loading model: m", flush=True)
print("WARNING:hf-to-gguf:Unknown RoPE type: default", flush=True)
for p in range(0, 101, 3):
    sys.stderr.write(f"\\rWriting: {p:3d}%|##| {p}/100 [00:00<00:00]")
sys.stderr.write("\\rWriting: 100%|##| 100/100 [00:00<00:00]\\n")
""")
    progress: list[int] = []
    logs: list[tuple[str, str]] = []
    run_converter(script, [], on_progress=progress.append, on_log=lambda m, level: logs.append((str(m), level)))
    assert progress == [0, 12, 24, 36, 48, 60, 72, 84, 96, 100]
    assert logs == [("converter: Unknown RoPE type: default", "warning")]


def test_the_converters_own_reason_becomes_the_message(tmp_path: Path) -> None:
    script = _script(tmp_path, """
print("INFO:hf-to-gguf:Exporting model...")
raise KeyError("could not find any of: ['rms_norm_eps']")
""")
    with pytest.raises(ExportError) as caught:
        run_converter(script, [])
    assert caught.value.message == ("llama.cpp's converter failed: \"could not find any of: ['rms_norm_eps']\" "
                                    "(KeyError)")


@pytest.mark.parametrize("line", [f"OSError: [Errno {errno.ENOSPC}] No space left on device",
                                  "OSError: 100000 requested and 16134 written"])  # numpy's tofile on a full disk
def test_a_full_disk_in_the_converter_is_reported_as_a_full_disk(line: str, tmp_path: Path) -> None:
    script = _script(tmp_path, f"print('Traceback (most recent call last):'); print({line!r}); sys.exit(1)")
    out = tmp_path / "out"
    with pytest.raises(ExportError) as caught, artifact_file(out / "m.gguf", expected_bytes=0):
        run_converter(script, [])
    assert caught.value.message == "the disk filled up while writing m.gguf; nothing was left behind"
    assert list(out.iterdir()) == []


def test_a_killed_converter_says_so_instead_of_quoting_its_last_line(tmp_path: Path) -> None:
    script = _script(tmp_path, "print('INFO:hf-to-gguf:blk.3.ffn_down.weight', flush=True)\n"
                               "os.kill(os.getpid(), 9)")
    with pytest.raises(ExportError) as caught:
        run_converter(script, [])
    assert caught.value.message == "llama.cpp's converter was killed by signal 9 (SIGKILL)"
    assert "memory" in caught.value.hint


def test_stopping_the_reader_kills_the_converter(tmp_path: Path) -> None:
    """A cancelled export (SIGTERM raises in the worker while it reads) must not leave the child writing."""
    marker = tmp_path / "still-running"
    script = _script(tmp_path, f"""
sys.stderr.write("\\rWriting:  10%|#| 10/100\\r"); sys.stderr.flush()  # tqdm's next redraw ends the line
time.sleep(3)
open({str(marker)!r}, "w").write("wrote after the cancel")
""")

    def cancel(_percent: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_converter(script, [], on_progress=cancel)
    time.sleep(4)
    assert not marker.exists()


def test_default_types_follow_the_model_size() -> None:
    assert default_quants(135_000_000) == ("q8_0",)
    assert default_quants(SMALL_MODEL_PARAMETERS - 1) == ("q8_0",)
    assert default_quants(SMALL_MODEL_PARAMETERS) == ("q4_k_m", "q8_0")
    assert default_quants(32_000_000_000) == ("q4_k_m", "q8_0")


def test_the_install_takes_the_converters_and_nothing_else_from_the_source_archive(tmp_path: Path) -> None:
    import io
    import tarfile

    from export.install_converters import _extract

    archive = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    vendored = "llama_cpp_python-9.9.9/vendor/llama.cpp/"
    names = ["convert_hf_to_gguf.py", "convert_hf_to_gguf.py.orig", "convert_lora_to_gguf.py", "conversion/base.py",
             "gguf-py/gguf/__init__.py", "models/templates/Qwen.jinja", "models/ggml-vocab-qwen2.gguf",
             "models/ggml-vocab-qwen2.gguf.out", "src/llama.cpp"]
    with tarfile.open(archive, "w:gz") as tar:
        for name in [*(vendored + n for n in names), "llama_cpp_python-9.9.9/setup.py"]:
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    out = tmp_path / "out"
    _extract(archive, out)
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert found == ["conversion/base.py", "convert_hf_to_gguf.py", "convert_lora_to_gguf.py",
                     "gguf-py/gguf/__init__.py", "models/ggml-vocab-qwen2.gguf", "models/templates/Qwen.jinja"]
