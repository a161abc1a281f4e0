"""Exports as detached jobs: start one, find it again, follow it, cancel it - from the CLI or the TUI.

An export's state lives in `runs/<RUN>/exports/<NAME>/`, a detached job's folder (events,
status, lock, pid, log: engine.jobs) holding the export's request; its artifacts go to
`artifacts/` inside it, or to the folder the user chose with --out. Everything a user needs is checked here,
before anything is launched, so a wrong name or an unwritable folder is an instant error.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.errors import ExportError
from engine.events import Said
from engine.jobs import JobDir, launch_detached, request_stop
from engine.locking import file_lock
from engine.paths import Home, validate_name
from engine.phrases import phrase
from engine.presentation.event_lines import state_phrase
from engine.runs.rundir import RunDir, open_run
from export.adapters import AdapterInput, adapter_settings, parse_adapter
from export.modelfile import check_ollama_name
from export.output import writable_folder
from export.quantize import normalize_quant

WORKER = "export.worker"
EXPORTS = "exports"
ARTIFACTS = "artifacts"
OUT_LOCK = ".tanren-export.lock"  # held by the worker writing a folder: one export per folder at a time


@dataclass(frozen=True)
class ExportRequest:
    """What to export: a run's adapter (weighted), more adapters, the GGUF types, where to, Ollama."""

    run: str
    name: str
    out: str  # absolute folder for the artifacts
    quants: tuple[str, ...] = ()  # none given: the export chooses by the model's size (quantize.default_quants)
    weight: float = 1.0  # of the run's own adapter
    extra_adapters: tuple[AdapterInput, ...] = field(default=())
    ollama: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["extra_adapters"] = [a.to_json() for a in self.extra_adapters]
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ExportRequest:
        data = json.loads(text)
        adapters = tuple(AdapterInput(a["name"], Path(a["folder"]), float(a["weight"])) for a in data["extra_adapters"])
        return cls(**{**data, "quants": tuple(data["quants"]), "extra_adapters": adapters})


@dataclass(frozen=True)
class ExportDir(JobDir):
    """An export's state folder: a job's (events, status, lock, pid, log) with the export's request."""

    @property
    def run_path(self) -> Path:
        return self.path.parent.parent

    @property
    def run_name(self) -> str:
        return self.run_path.name

    @property
    def home(self) -> Home:
        return Home(self.run_path.parent.parent)

    @property
    def crash_hint(self) -> Said:
        return phrase("start it again: {command}", command="tanren export " + self.run_name)

    @property
    def request_file(self) -> Path:
        return self.path / "request.json"

    def request(self) -> ExportRequest:
        try:
            return ExportRequest.from_json(self.request_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ExportError(phrase("the export's request.json cannot be read: {error}", error=exc),
                              where=str(self.request_file)) from None

    @property
    def out(self) -> Path:
        return Path(self.request().out)

    @property
    def follow_command(self) -> str:
        return f"tanren exports {self.run_name} {self.name} -f"


def parse_quants(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`q8_0,q4_k_m` -> the GGUF types to write besides F16 (f16 itself may be listed: no quantization);
    nothing, or `auto`, leaves the choice to the model's size."""
    names = [n for n in ((text or "").split(",") if isinstance(text, str) or text is None else text) if n.strip()]
    if [n.strip().lower() for n in names] in ([], ["auto"]):
        return ()
    return tuple(dict.fromkeys("f16" if n.strip().lower() == "f16" else normalize_quant(n) for n in names))


def prepare_export(run_name: str, home: Home, *, quants: str | Sequence[str] | None = None, weight: float = 1.0,
                   adapters: Sequence[str] = (), ollama: str | None = None, out: str | Path | None = None,
                   name: str | None = None) -> ExportRequest:
    """Check everything that can be checked without loading a model, and describe the export."""
    run = open_run(run_name, home)
    if not math.isfinite(weight) or weight == 0:
        raise ExportError(phrase("the adapter weight {weight} must be a finite number other than 0", weight=weight),
                          where="--weight")
    if run.is_alive():
        raise ExportError(phrase("{run} is still running", run=run.name), where=str(run.path),
                          hint=phrase("wait for it to finish ({command}), then export it",
                                      command=run.follow_command))
    request = ExportRequest(
        run=run.name, name=validate_name(name or time.strftime("%Y%m%d-%H%M%S"), what="export name"),
        out="", quants=parse_quants(quants), weight=weight,
        extra_adapters=tuple(parse_adapter(spec, home) for spec in adapters),
        ollama=check_ollama_name(ollama) if ollama else None,
    )
    for adapter in run_adapters(run, request):
        adapter_settings(adapter)
    folder = export_path(run, request.name)
    if folder.exists():
        raise _name_taken(run, request.name, folder)
    target = Path(out).expanduser().resolve() if out else folder / ARTIFACTS
    if out:
        writable_folder(target)
        _check_not_busy(target)
    return replace(request, out=str(target))


def start_export(request: ExportRequest, home: Home) -> ExportDir:
    """Create the export's folder and launch its detached worker; follow it through its events."""
    export = create_export(request, home)
    launch_detached(export, WORKER)
    return export


def create_export(request: ExportRequest, home: Home) -> ExportDir:
    """The export's state folder with its request, queued (`python -m export.worker FOLDER` runs it)."""
    run = open_run(request.run, home)
    export = ExportDir(export_path(run, request.name))
    try:
        export.path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise _name_taken(run, request.name, export.path) from None
    atomic_write_text(export.request_file, request.to_json())
    export.set_status("queued", phrase("waiting to start"))
    return export


def _name_taken(run: RunDir, name: str, folder: Path) -> ExportError:
    return ExportError(phrase("{run} already has an export named {name}", run=run.name, name=name), where=str(folder),
                       hint=phrase("choose another --name"))


def export_path(run: RunDir, name: str) -> Path:
    return run.path / EXPORTS / validate_name(name, what="export name")


def open_export(run_name: str, name: str, home: Home) -> ExportDir:
    run = open_run(run_name, home)
    export = ExportDir(export_path(run, name))
    if not export.request_file.is_file():
        raise ExportError(phrase("{run} has no export named {name}", run=run.name, name=name), where=str(export.path),
                          hint=phrase("see `{command}` for its exports", command="tanren exports " + run.name))
    return export


def list_exports(run_name: str, home: Home) -> list[ExportDir]:
    """The run's exports, newest first."""
    folder = open_run(run_name, home).path / EXPORTS
    if not folder.is_dir():
        return []
    exports = [ExportDir(p) for p in folder.iterdir() if (p / "request.json").is_file()]
    return sorted(exports, key=lambda e: e.request_file.stat().st_mtime, reverse=True)


def cancel_export(export: ExportDir) -> bool:
    """Ask a running export to stop; what it wrote completely stays, nothing half-written does."""
    return request_stop(export)


def run_adapters(run: RunDir, request: ExportRequest) -> list[AdapterInput]:
    """The run's own adapter (none for full fine-tuning, which saved a whole model), then the extra ones."""
    if run.is_full_fine_tune:
        if request.weight != 1.0:
            raise ExportError(phrase("{run} is a full fine-tune, whose model cannot be weighted", run=run.name),
                              where="--weight")
        return list(request.extra_adapters)
    if not run.adapter.is_dir():
        raise ExportError(phrase("{run} has no adapter yet (status: {state})", run=run.name, state=state_phrase(run.status().state)),
                          where=str(run.adapter), hint=phrase("export a run whose training has finished"))
    own = AdapterInput(run.name, run.adapter.resolve(), request.weight)
    return [own, *request.extra_adapters]


def _check_not_busy(folder: Path) -> None:
    with file_lock(folder / OUT_LOCK, blocking=False) as acquired:
        if not acquired:
            raise ExportError(phrase("another export is writing to {folder}", folder=folder), where=str(folder),
                              hint=phrase("wait for it to finish, or choose another --out"))


def servable_gguf(export: ExportDir) -> Path:
    """What serving an export serves: the smallest GGUF that passed verification (the one people
    ship), through llama.cpp."""
    from export.manifest import PUBLISHABLE, excluded_files, read_manifest

    manifest = read_manifest(export.out) or {}
    if manifest.get("status") not in PUBLISHABLE:
        status = manifest.get("status")
        message = (phrase("{run} / {name} has no verified model to serve ({status})", run=export.run_name,
                          name=export.name, status=status) if status else
                   phrase("{run} / {name} has no verified model to serve (not finished)", run=export.run_name,
                          name=export.name))
        raise ExportError(message, where=str(export.out), hint=phrase("serve the run itself, or export it again"))
    left_out = set(excluded_files(manifest))
    ggufs = [entry for entry in manifest.get("outputs") or []
             if entry["path"].endswith(".gguf") and entry["path"] not in left_out]
    if not ggufs:
        raise ExportError(phrase("{name} wrote no GGUF file to serve", name=export.name), where=str(export.out))
    return export.out / min(ggufs, key=lambda entry: entry["size_bytes"])["path"]
