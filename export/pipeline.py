"""One export, start to finish: merge -> F16 GGUF -> quantize -> verify -> Modelfile -> Ollama -> manifest.

Each stage writes its artifact atomically and reports progress as events in the export's folder.
The manifest comes last. The old manifest is removed before anything else is written, so a
folder never pairs new, unverified files with an old "passed"; a failure writes a manifest
saying "failed" and why. A quantized file that fails verification is excluded on its own: the
Modelfile runs a file that passed, and the manifest says "passed with exclusions".
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.config import RunConfig
from engine.data import SAMPLE_HELDOUT, Example, load_examples, load_splits
from engine.errors import DataError, ExportError
from engine.events import PERCENT, STAGES, Artifact, EventLog, Log, Progress, Said
from engine.i18n import N_
from engine.locking import try_lock
from engine.models.catalog import folder_size
from engine.phrases import Phrase, joined, phrase
from engine.runs.rundir import RunDir, open_run
from export.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterInput
from export.jobs import OUT_LOCK, ExportDir, ExportRequest, run_adapters
from export.manifest import FAILED, MANIFEST, records, write_manifest
from export.chat_formats import UnknownChatFormat, writes_reasoning
from export.modelfile import MODELFILE, Modelfile, build_modelfile, ollama_command, ollama_create
from export.quantize import default_quants
from export.safetensors_files import parameter_count
from export.verify import Verdict, Verification

MERGED = "merged"
README = "README.md"
MAX_HELDOUT = 48  # examples; enough to see a 1 % perplexity change on chat answers, quick on a CPU


@dataclass(frozen=True)
class ExportOutcome:
    passed: bool
    reason: Said
    hint: Said = ""


class _Stages:
    """Numbered progress events and a log line per stage; the seconds each took."""

    def __init__(self, events: EventLog, total: int):
        self.events, self.total, self.done = events, total, 0
        self.seconds: dict[str, float] = {}

    def plan(self, total: int) -> None:
        self.total = total

    @contextlib.contextmanager
    def stage(self, key: str, message: Phrase) -> Iterator[None]:
        self.events.append(Progress.said(self.done, self.total, STAGES, message))
        self.log(phrase("[{stage}/{stages}] {what}", stage=self.done + 1, stages=self.total, what=message))
        started = time.perf_counter()
        yield
        self.seconds[key] = round(time.perf_counter() - started, 2)
        self.done += 1

    def log(self, message: Said, level: str = "info") -> None:
        self.events.append(Log.said(message, level))

    def artifact(self, path: Path, role: str) -> None:
        self.events.append(Artifact(str(path), role, _size(path)))

    def percent(self, message: Phrase) -> Callable[[int], None]:
        """A callback that records how far a long step inside the current stage has come."""
        return lambda done: self.events.append(Progress.said(done, 100, PERCENT, message))


def run_export(export: ExportDir) -> ExportOutcome:
    request = export.request()
    run = open_run(request.run, export.home)
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    held = try_lock(out / OUT_LOCK)
    if held is None:
        raise ExportError(phrase("another export is writing to {folder}", folder=out), where=str(out),
                          hint=phrase("wait for it to finish"))
    try:
        for stale in (MANIFEST, MODELFILE):  # never beside new files that they do not describe
            (out / stale).unlink(missing_ok=True)
        return _Export(export, run, request, out).run()
    finally:
        held.release()


class _Export:
    def __init__(self, export: ExportDir, run: RunDir, request: ExportRequest, out: Path):
        self.export, self.run_dir, self.request, self.out = export, run, request, out
        self.config: RunConfig = run.config()
        self.adapters: list[AdapterInput] = run_adapters(run, request)
        self.quants: tuple[str, ...] = request.quants  # () until the base's size chooses them
        self.stages = _Stages(export.events, self._stage_count())
        self.written: list[Path] = []
        self.inputs: dict = {}
        self.merge: dict | None = None
        self.modelfile: Modelfile | None = None
        self.no_modelfile = ""  # why there is none, when the chat format has no Go template
        self.verdict: Verdict | None = None

    def run(self) -> ExportOutcome:
        try:
            return self._run()
        except BaseException as exc:
            self._failed_manifest(exc)
            raise

    def _run(self) -> ExportOutcome:
        base = self._base()
        hf = self._merge(base) if self.adapters else base
        ggufs = self._ggufs(hf)
        verification = self._verify(hf, ggufs)
        self.verdict = Verdict.of(verification, self.quants)
        self._modelfile(hf, ggufs)
        ollama = self._ollama()
        self._card(hf, ggufs, verification)
        with self.stages.stage("manifest", phrase("writing the manifest")):
            self._manifest(verification, ggufs, ollama)
        return self._outcome(verification)

    def _stage_count(self) -> int:
        # before the base's size chooses the types, count one (what small models get)
        quantized = [q for q in self.quants if q != "f16"] if self.quants else ["q8_0"]
        return 5 + len(quantized) + bool(self.adapters) + bool(self.request.ollama)

    def _choose_quants(self, base: Path) -> None:
        """The GGUF types asked for, or those that suit the model's size."""
        if self.quants:
            return
        parameters = parameter_count(base)
        self.quants = default_quants(parameters)
        self.stages.plan(self._stage_count())
        self.stages.log(phrase("GGUF types for a model of {billions:.2f}B parameters: {types} (choose others with "
                               "--quant)", billions=parameters / 1e9, types=", ".join(q.upper() for q in self.quants)))

    def _base(self) -> Path:
        from engine.models.loading import model_folder

        with self.stages.stage("base", phrase("locating the base model {base}", base=self.config.model.base)):
            base = self.run_dir.model if self.run_dir.is_full_fine_tune else model_folder(
                self.config.model, self.export.home, on_status=self.stages.log)
            self.inputs = {"run": self.run_dir.name, "base": {"spec": self.config.model.base, "folder": str(base),
                                                              "files": records(_model_files(base), base)},
                           "adapters": [{**a.to_json(), "files": records(_adapter_files(a.folder), a.folder)}
                                        for a in self.adapters]}
            self._choose_quants(base)
        return base

    def _merge(self, base: Path) -> Path:
        from export.merge import merge_adapters

        names = ", ".join(a.name + (f" x {a.weight:g}" if a.weight != 1 else "") for a in self.adapters)
        with self.stages.stage("merge", phrase("merging {adapters} into {base} in full precision", adapters=names,
                                               base=base.name)):
            result = merge_adapters(base, self.adapters, self.out / MERGED, model_config=self.config.model,
                                    on_log=self.stages.log)
            self.merge = {"max_logit_diff": result.max_logit_diff, "probe_tokens": result.probe_tokens,
                          "dtype": result.dtype}
            self._wrote(result.folder, "merged model")
        return result.folder

    def _ggufs(self, hf: Path) -> dict[str, Path]:
        from export.gguf import write_gguf
        from export.quantize import quantize_gguf

        files: dict[str, Path] = {}
        with self.stages.stage("convert", phrase("converting to an F16 GGUF with llama.cpp's converter")):
            files["f16"] = write_gguf(hf, self.out / self._gguf_name("f16"), dtype="f16",
                                      on_progress=self.stages.percent(phrase("F16 GGUF written")),
                                      on_log=self.stages.log)
            self._wrote(files["f16"], "gguf f16")
        for quant in (q for q in self.quants if q != "f16"):
            with self.stages.stage(f"quantize {quant}", phrase("quantizing to {type}", type=quant.upper())):
                files[quant] = quantize_gguf(files["f16"], self.out / self._gguf_name(quant), quant)
                self._wrote(files[quant], f"gguf {quant}")
        return files

    def _verify(self, hf: Path, ggufs: dict[str, Path]) -> Verification:
        from export.verify import verify_export

        examples, source = self._heldout()
        with self.stages.stage("verify", phrase("verifying against the merged model ({n} held-out examples)",
                                                n=len(examples))):
            # the Modelfile's stops are part of what is verified; which file it runs is decided after
            planned = self._plan_modelfile(hf)
            # without a chat format, an answer ends at the tokenizer's EOS, as llama-server --jinja ends it
            end_of_turn, stops = ((planned.chat_format.end_of_turn, planned.stops) if planned
                                  else (_tokenizer(hf).eos_token, ()))
            verification = verify_export(hf, ggufs, examples, data=source, end_of_turn=end_of_turn,
                                         stop_strings=stops, model_config=self.config.model, on_log=self.stages.log)
            for note in verification.notes:
                self.stages.log(note, "warning")
        return verification

    def _plan_modelfile(self, hf: Path) -> Modelfile | None:
        """The Modelfile for the first requested type; None for a chat format tanren does not know,
        which is said once, with how to run the GGUF with its own template instead."""
        try:
            return self._build_modelfile(hf, self.quants[0])
        except UnknownChatFormat as exc:
            self.no_modelfile = exc.message
            self.stages.log(phrase("no Ollama Modelfile: {why}", why=exc.phrases[0]), "warning")
            return None

    def _build_modelfile(self, hf: Path, runs: str) -> Modelfile:
        return build_modelfile(hf, self._gguf_name(runs), self.config.generation, title=self.run_dir.name)

    def _modelfile(self, hf: Path, ggufs: dict[str, Path]) -> None:
        """The Modelfile, FROM the first requested type that passed; none when nothing passed or the
        chat format is not one a Go template can say."""
        runs = self.verdict.runs
        if runs is None or self.no_modelfile:
            if runs is None:
                why = phrase("no GGUF file passed verification")
                self.no_modelfile = str(why)
                self.stages.log(phrase("no Modelfile: {why}", why=why), "warning")
            self.stages.plan(self.stages.total - 1 - bool(self.request.ollama))  # neither stage runs
            return
        with self.stages.stage("modelfile", phrase("writing the Ollama Modelfile (FROM the {type} file)",
                                                   type=runs.upper())):
            modelfile = self._build_modelfile(hf, runs)
            atomic_write_text(self.out / MODELFILE, modelfile.text)
            self.stages.log(phrase("{format} template; stops: {stops}", format=modelfile.chat_format.name,
                                   stops=", ".join(modelfile.stops)))
            if runs != self.quants[0]:
                self.stages.log(phrase("the Modelfile runs {file}: {type} failed verification", file=ggufs[runs].name,
                                       type=self.quants[0].upper()), "warning")
            self._wrote(self.out / MODELFILE, "modelfile")
        self.modelfile = modelfile

    def _heldout(self) -> tuple[list[Example], str]:
        """The run's test split; the bundled held-out sample when the run has none (or its data moved)."""
        try:
            test = list(load_splits(self.config.data).test) if self.config.data.path else []
        except DataError as exc:
            self.stages.log(phrase("the run's data cannot be read ({why}); using the bundled held-out sample",
                                   why=exc.phrases[0]), "warning")
            test = []
        if test:
            return test[:MAX_HELDOUT], f"the test split of {self.config.data.path}"
        return list(load_examples(SAMPLE_HELDOUT))[:MAX_HELDOUT], f"the bundled sample {SAMPLE_HELDOUT.name}"

    def _ollama(self) -> dict:
        """`ollama create` from the Modelfile when asked for; otherwise the command to run."""
        name = self._ollama_name()
        if self.modelfile is None:
            if self.request.ollama:
                self.stages.log(phrase("the Ollama model {name} was not created: there is no Modelfile", name=name),
                                "warning")
            return {"name": name, "created": False, "command": None}
        command = ollama_command(name, self.out / MODELFILE)
        if not self.request.ollama:
            self.stages.log(phrase("to run it in Ollama: {command}", command=command))
            return {"name": name, "created": False, "command": command}
        with self.stages.stage("ollama", phrase("creating the Ollama model {name}", name=name)):
            created = ollama_create(name, self.out / MODELFILE)
            self.stages.log(phrase("created the Ollama model {name}: {command}", name=name, command="ollama run " + name)
                            if created else
                            phrase("ollama is not installed here; create the model with: {command}", command=command))
        return {"name": name, "created": created, "command": command}

    def _card(self, hf: Path, ggufs: dict[str, Path], verification: Verification) -> None:
        from export.model_card import CardFile, render_export_card

        files = [CardFile(f"{MERGED}/", "merged HF folder", _size(self.out / MERGED))] if self.adapters else []
        files += [CardFile(path.name, kind, path.stat().st_size) for kind, path in ggufs.items()]
        runs = self.verdict.runs
        card = render_export_card(self.run_dir.name, self.config, [(a.name, a.weight) for a in self.adapters], files,
                                  verification, self.verdict, runs_file=ggufs[runs].name if runs else None,
                                  ollama_name=self._ollama_name() if self.modelfile else None,
                                  reasoning=writes_reasoning(_tokenizer(hf).chat_template))
        atomic_write_text(self.out / README, card)
        self._wrote(self.out / README, "model card")

    def _manifest(self, verification: Verification, ggufs: dict[str, Path], ollama: dict) -> None:
        verdict = self.verdict
        failures = {model.name: list(map(str, model.failures)) for model in verification.models}
        modelfile = self.modelfile and {"from": verdict.runs, "chat_format": self.modelfile.chat_format.name,
                                        "stops": list(self.modelfile.stops), "system": self.modelfile.system}
        path = write_manifest(
            self.out, status=verdict.status,
            error="; ".join(map(str, verification.failures)) if verdict.status == FAILED else None,
            export=self._export_section(), inputs=self.inputs, merge=self.merge,
            outputs=records(self.written, self.out),
            excluded=[{"type": kind, "file": ggufs[kind].name, "failures": failures[kind]} for kind in verdict.excluded],
            modelfile=modelfile, no_modelfile=self.no_modelfile or None, verification=verification.to_json(),
            ollama=ollama, timings_s=self.stages.seconds,
        )
        self.stages.artifact(path, "manifest")

    def _failed_manifest(self, exc: BaseException) -> None:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}".strip(": ")
        with contextlib.suppress(Exception):  # a full disk may refuse this too; status.json still says why
            write_manifest(self.out, status="failed", error=message, export=self._export_section(),
                           inputs=self.inputs, outputs=records(self.written, self.out), timings_s=self.stages.seconds)

    def _export_section(self) -> dict:
        return {"name": self.request.name, "run": self.run_dir.name, "state": str(self.export.path),
                "quants": list(self.quants)}

    def _outcome(self, verification: Verification) -> ExportOutcome:
        verdict = self.verdict
        if verdict.status == FAILED:
            hint = phrase("details in {path}; the Ollama model was not created", path=self.out / MANIFEST)
            return ExportOutcome(False, phrase("verification failed: {why}", why=verification.failures[0]), hint)
        checks = {m.name: m for m in verification.models}
        deltas = ", ".join(f"{name.upper()} {checks[name].perplexity_delta:+.2%}" for name in verdict.passed)
        if not verdict.excluded:
            return ExportOutcome(True, phrase("verified (perplexity {deltas}); files in {folder}", deltas=deltas,
                                              folder=self.out))
        excluded = joined([checks[name].failures[0] for name in verdict.excluded], N_("{first}; {second}"))
        reason = phrase("passed with exclusions: {excluded}. Verified: {deltas}; files in {folder}", excluded=excluded,
                        deltas=deltas, folder=self.out)
        hint = (phrase("the excluded files stay in the folder, marked in {manifest}, and are not published; the "
                       "Modelfile runs {type}", manifest=MANIFEST, type=verdict.runs.upper()) if self.modelfile else
                phrase("the excluded files stay in the folder, marked in {manifest}, and are not published",
                       manifest=MANIFEST))
        return ExportOutcome(True, reason, hint)

    def _wrote(self, path: Path, role: str) -> None:
        self.written.append(path)
        self.stages.artifact(path, role)

    def _gguf_name(self, kind: str) -> str:
        return f"{self.run_dir.name}-{kind}.gguf"

    def _ollama_name(self) -> str:
        return self.request.ollama or re.sub(r"[^a-z0-9._-]", "-", self.run_dir.name.lower()).strip("-._") or "model"


def _tokenizer(hf: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf, local_files_only=True)


def _size(path: Path) -> int:
    """A file's size, or the total of the files in a folder."""
    return folder_size(path) if path.is_dir() else path.stat().st_size


def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".json", ".jinja"))


def _adapter_files(folder: Path) -> list[Path]:
    return [p for p in (folder / ADAPTER_WEIGHTS, folder / ADAPTER_CONFIG) if p.is_file()]
