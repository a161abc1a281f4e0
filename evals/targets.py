"""What `tanren eval TARGET` measures: a run (its base, then base + adapter) or a model, and on what data.

A run is measured before and after: its base model, then the base with the run's adapter (or,
for full fine-tuning, the run's own model folder), on the run's held-out split - the test split
of the run's own data config, or its validation split when the test split is empty - unless
another file is given. A model (built-in name, HF folder such as a merged export, .gguf file or
cached hub id) is measured as it is, or before and after the adapters given with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.chat.targets import AdapterRef, resolve_adapter
from engine.config import ModelConfig, RunConfig
from engine.data import AnyExample, DataKind, Example, PreferencePair, RatedExample, data_kind, load_records, load_splits
from engine.errors import ModelNotFoundError
from engine.models.resolve import resolve_model
from engine.paths import Home
from engine.phrases import phrase
from engine.presentation.event_lines import state_phrase
from engine.runs import RunDir
from engine.runs.rundir import find_run
from evals.errors import EvalError


@dataclass(frozen=True)
class Target:
    label: str  # the table's row: base, the run or adapter name, the model's name
    role: str  # base (before), tuned (after), or model (measured alone)
    model: ModelConfig
    adapter: AdapterRef | None = None


@dataclass(frozen=True)
class Plan:
    targets: tuple[Target, ...]
    run: RunDir | None = None
    run_config: RunConfig | None = None


@dataclass(frozen=True)
class Dataset:
    """What is measured: conversations for perplexity and ROUGE (of preference data, the chosen
    and the desirable answers), and the pairs themselves for the preference metric."""

    examples: tuple[Example, ...]
    path: str
    split: str | None  # the run's split it was taken from; None for a whole file
    sha256: str  # of the records measured, in order (not of the file: a split is part of one)
    data: DataKind  # what the file holds
    pairs: tuple[PreferencePair, ...] = ()

    @classmethod
    def of(cls, records: Sequence[AnyExample], path: str, split: str | None, data: DataKind) -> Dataset:
        examples = tuple(example for example in map(_desired, records) if example is not None)
        pairs = tuple(record for record in records if isinstance(record, PreferencePair))
        return cls(examples, path, split, examples_sha256(records), data, pairs)

    def describe(self) -> dict:
        # the format tells the table text (every token measured) from conversations (the assistant's)
        described = {"path": self.path, "split": self.split, "format": self.data.format, "sha256": self.sha256,
                     "examples": len(self.examples)}
        return {**described, "pairs": len(self.pairs)} if self.pairs else described


def _desired(record: AnyExample) -> Example | None:
    """The conversation of the answer the model should write: a pair's chosen answer, a rated
    completion when it is desirable."""
    if isinstance(record, PreferencePair):
        return record.chosen_example()
    if isinstance(record, RatedExample):
        return record.example() if record.label else None
    return record


def plan_targets(spec: str, home: Home, *, adapters: Sequence[str] = (), model: ModelConfig | None = None) -> Plan:
    """The targets named by `spec` and `adapters`; `model` carries loading options for a model spec."""
    run = find_run(spec, home)
    if run is not None:
        if adapters:
            raise EvalError(phrase("--adapter goes with a model, not with a run (a run brings its own adapter)"),
                            hint=phrase("evaluate the run alone: tanren eval {spec}", spec=spec))
        config = run.config()
        return Plan(_run_targets(run, config), run, config)
    try:
        resolve_model(spec, home)
    except ModelNotFoundError as exc:
        raise EvalError(phrase("unknown target {spec!r}: not a run, and {reason}", spec=spec, reason=exc.phrases[0]),
                        where=exc.phrases[1], hint=phrase(
                            "give a run name (see `tanren runs`), a built-in model name, an HF model folder, "
                            "a .gguf file or a hub id in the local cache")) from None
    config = replace(model or ModelConfig(), base=spec)
    label = Path(spec).name if Path(spec).expanduser().exists() else spec
    refs = [resolve_adapter(a, home) for a in adapters]
    if not refs:
        return Plan((Target(label, "model", config),))
    return Plan((Target(label, "base", config), *(Target(ref.name, "tuned", config, ref) for ref in refs)))


def _run_targets(run: RunDir, config: RunConfig) -> tuple[Target, ...]:
    base = Target("base", "base", config.model)
    if config.adapter.method == "full":
        if not run.has_model:
            raise _unfinished(run)
        return base, Target(run.name, "tuned", replace(config.model, base=str(run.model)))
    if not run.has_adapter:
        raise _unfinished(run)
    return base, Target(run.name, "tuned", config.model, AdapterRef(run.name, run.adapter))


def _unfinished(run: RunDir) -> EvalError:
    status = run.status()
    return EvalError(phrase("run {name} has no trained model to evaluate yet (it is {state}: {reason})",
                            name=run.name, state=state_phrase(status.state), reason=status.reason_phrase or status.reason),
                     where=str(run.path),
                     hint=phrase("evaluate it once its training is done (`tanren runs` shows the state)"))


def select_data(plan: Plan, data: str | None, *, limit: int | None = None) -> Dataset:
    """The examples to measure: the file given, or the run's held-out split; the first `limit` of them."""
    if limit is not None and limit < 1:
        raise EvalError(phrase("--limit must be at least 1, not {limit}", limit=limit), where="--limit")
    if data is not None:
        kind, records = load_records(data)
        path, split = data, None
    elif plan.run_config is not None:
        kind, records, path, split = _held_out(plan)
    else:
        raise EvalError(phrase("no data to evaluate on"), where="--data", hint=phrase(
            "give a data file with --data, or evaluate a run (its held-out split is the default)"))
    records = records[:limit] if limit else records
    return Dataset.of(records, str(path), split, kind)


def _held_out(plan: Plan) -> tuple[DataKind, Sequence[AnyExample], str, str]:
    config = plan.run_config.data
    splits = load_splits(config, kind=None)
    for name in ("test", "validation"):
        part = getattr(splits, name)
        if part:
            return data_kind(config.path, config.format), part, config.path, name
    raise EvalError(phrase("run {name} has no held-out examples: its test and validation splits are empty",
                           name=plan.run.name), where="data.split", hint=phrase("evaluate on another file with --data"))


def examples_sha256(examples: Sequence[AnyExample]) -> str:
    """A hash of the examples' contents, the same whatever file format they were read from."""
    digest = hashlib.sha256()
    for example in examples:
        if isinstance(example, (PreferencePair, RatedExample)):
            record = example.to_trl()
        else:
            record = {"text": example.text} if example.is_text else {"messages": [m.as_dict() for m in example.messages]}
        digest.update(json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
    return digest.hexdigest()
