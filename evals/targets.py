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
from engine.data import Example, load_examples, load_splits
from engine.errors import ModelNotFoundError
from engine.models.resolve import resolve_model
from engine.paths import Home
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
    examples: tuple[Example, ...]
    path: str
    split: str | None  # the run's split it was taken from; None for a whole file
    sha256: str  # of the examples measured, in order (not of the file: a split is part of one)

    def describe(self) -> dict:
        return {"path": self.path, "split": self.split, "sha256": self.sha256, "examples": len(self.examples)}


def plan_targets(spec: str, home: Home, *, adapters: Sequence[str] = (), model: ModelConfig | None = None) -> Plan:
    """The targets named by `spec` and `adapters`; `model` carries loading options for a model spec."""
    run = find_run(spec, home)
    if run is not None:
        if adapters:
            raise EvalError("--adapter goes with a model, not with a run (a run brings its own adapter)",
                            hint=f"evaluate the run alone: tanren eval {spec}")
        config = run.config()
        return Plan(_run_targets(run, config), run, config)
    try:
        resolve_model(spec, home)
    except ModelNotFoundError as exc:
        raise EvalError(f"unknown target {spec!r}: not a run, and {exc.message}", where=exc.where,
                        hint="give a run name (see `tanren runs`), a built-in model name, an HF model folder, "
                        "a .gguf file or a hub id in the local cache") from None
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
    return EvalError(f"run {run.name} has no trained model to evaluate yet (it is {status.state}: {status.reason})",
                     where=str(run.path), hint="evaluate it once its training is done (`tanren runs` shows the state)")


def select_data(plan: Plan, data: str | None, *, limit: int | None = None) -> Dataset:
    """The examples to measure: the file given, or the run's held-out split; the first `limit` of them."""
    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be at least 1, not {limit}", where="--limit")
    if data is not None:
        examples, path, split = tuple(load_examples(data)), data, None
    elif plan.run_config is not None:
        examples, path, split = _held_out(plan)
    else:
        raise EvalError("no data to evaluate on", where="--data",
                        hint="give a data file with --data, or evaluate a run (its held-out split is the default)")
    examples = examples[:limit] if limit else examples
    return Dataset(examples, str(path), split, examples_sha256(examples))


def _held_out(plan: Plan) -> tuple[tuple[Example, ...], str, str]:
    config = plan.run_config.data
    splits = load_splits(config)
    for name in ("test", "validation"):
        part = getattr(splits, name)
        if part:
            return part, config.path, name
    raise EvalError(f"run {plan.run.name} has no held-out examples: its test and validation splits are empty",
                    where="data.split", hint="evaluate on another file with --data")


def examples_sha256(examples: Sequence[Example]) -> str:
    """A hash of the examples' contents, the same whatever file format they were read from."""
    digest = hashlib.sha256()
    for example in examples:
        record = {"text": example.text} if example.is_text else {"messages": [m.as_dict() for m in example.messages]}
        digest.update(json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
    return digest.hexdigest()
