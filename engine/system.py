"""How busy the machine is: CPU, memory, GPUs and free disk, cheaply and without torch.

GPUs are read through `nvidia-smi` (present wherever the NVIDIA driver is), never through
torch.cuda, which would cost seconds of import and a CUDA context in the caller.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.paths import Home
from engine.phrases import Phrase, phrase

NVIDIA_SMI_QUERY = ("--query-gpu=name,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits")


@dataclass(frozen=True)
class GpuSample:
    name: str
    util_percent: float | None
    memory_used: int  # bytes
    memory_total: int


@dataclass(frozen=True)
class SystemSample:
    cpu_percent: float  # since the previous sample
    cpu_count: int
    ram_used: int
    ram_total: int
    disk_free: int  # on the file system holding the home folder
    disk_total: int
    gpus: tuple[GpuSample, ...]
    gpu_note: str | Phrase = ""  # why no GPU is listed, translated where it is shown (engine.phrases.in_language)


def sample_system(home: Home) -> SystemSample:
    import psutil

    memory = psutil.virtual_memory()
    disk = shutil.disk_usage(_existing(home.root))
    gpus, note = read_gpus()
    return SystemSample(psutil.cpu_percent(interval=None), psutil.cpu_count() or 1, memory.total - memory.available,
                        memory.total, disk.free, disk.total, gpus, note)


def read_gpus() -> tuple[tuple[GpuSample, ...], str | Phrase]:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return (), phrase("no NVIDIA GPU (nvidia-smi not found)")
    try:
        result = subprocess.run([tool, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (), phrase("nvidia-smi did not answer ({why})", why=type(exc).__name__)
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or [phrase("no message")])[0]
        return (), phrase("nvidia-smi failed: {why}", why=why)
    return tuple(parse_gpu_line(line) for line in result.stdout.splitlines() if line.strip()), ""


def parse_gpu_line(line: str) -> GpuSample:
    """One line of the CSV query above; memory comes in MiB, utilization may be "[N/A]"."""
    name, util, used, total = (part.strip() for part in line.rsplit(",", 3))
    mib = 2**20
    return GpuSample(name, _number(util), int((_number(used) or 0) * mib), int((_number(total) or 0) * mib))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _existing(path: Path) -> Path:
    """The folder itself, or its nearest existing parent (the home folder may not exist yet)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
