"""Measure every target of a plan on the same examples with the same settings, into one report.

Targets on one base model share one loaded backend (adapters are switched, never reloaded), so
"before" and "after" differ only by the adapter. A run's report is kept in the run folder as
`eval_results.json` and shown in its model card.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from engine.atomic import atomic_write_text
from engine.chat.backend import DEFAULT_MAX_CONTEXT, ChatBackend
from engine.data.kinds import PAIRS, mismatch, mismatch_hint
from engine.events import Said
from engine.i18n import N_
from engine.paths import Home
from engine.phrases import Phrase, phrase
from engine.runs import RunDir
from evals.errors import EvalError
from evals.perplexity import PerplexityResult, measure_perplexity
from evals.preference import PreferenceResult, measure_preference
from evals.rouge import DEFAULT_BATCH_SIZE, RougeResult, measure_rouge, references
from evals.targets import Dataset, Plan, Target

METRICS = ("perplexity", "rouge", "preference")
DEFAULT_METRICS = ("perplexity", "rouge")
RESULTS_FILE = "eval_results.json"  # the report a run keeps from its last evaluation

Progress = Callable[[Phrase, int, int], None]  # (what is being measured, done, total)


@dataclass(frozen=True)
class Settings:
    metrics: tuple[str, ...] = DEFAULT_METRICS
    max_length: int | None = None  # perplexity and preference window; None: the model's context length
    stride: int | None = None  # None: half the window
    assistant_only: bool = True  # perplexity on the assistant's tokens (chat data) or on all
    max_new_tokens: int = 256  # longest answer for ROUGE
    batch_size: int = DEFAULT_BATCH_SIZE  # answers generated at once (transformers)
    limit: int | None = None
    backend: str = "auto"

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            message = (phrase("unknown metric {metrics}", metrics=", ".join(unknown)) if unknown
                       else phrase("no metric given"))
            raise EvalError(message, where="--metrics",
                            hint=phrase("choose from: {metrics} (comma-separated)", metrics=", ".join(METRICS)))
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise EvalError(phrase("{name} must be at least 1, not {value}", name=name, value=getattr(self, name)),
                                where=name)

    @classmethod
    def for_plan(cls, plan: Plan, **given) -> Settings:
        """Settings with what was not given taken from the run: its max_length as the window,
        its assistant_only_loss, its generation.max_new_tokens."""
        given = {key: value for key, value in given.items() if value is not None}
        if plan.run_config is not None:
            config = plan.run_config
            given.setdefault("max_length", config.data.max_length)
            given.setdefault("assistant_only", config.data.assistant_only_loss)
            given.setdefault("max_new_tokens", config.generation.max_new_tokens)
        return cls(**given)


@dataclass(frozen=True)
class TargetResult:
    label: str
    role: str  # base, tuned or model
    model: str
    adapter: str | None
    backend: str  # the backend that ran it: transformers or llama.cpp
    perplexity: PerplexityResult | None = None
    rouge: RougeResult | None = None
    preference: PreferenceResult | None = None

    def metrics(self) -> dict[str, float]:
        values: dict[str, float] = {}
        if self.perplexity is not None:
            values.update(perplexity=self.perplexity.perplexity, nll=self.perplexity.nll,
                          tokens=self.perplexity.tokens)
        if self.rouge is not None:
            values.update(rouge1=self.rouge.rouge1, rouge2=self.rouge.rouge2, rougeL=self.rouge.rougeL)
        if self.preference is not None:
            values.update(preference_accuracy=self.preference.accuracy, preference_margin=self.preference.margin,
                          pairs=self.preference.pairs)
        return values


@dataclass(frozen=True)
class EvalReport:
    dataset: Dataset
    settings: Settings
    results: tuple[TargetResult, ...]
    run: str | None = None
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        """The form kept in eval_results.json, printed by --json and shown in the model card."""
        return {
            "run": self.run, "time": self.time, "duration_s": round(self.duration_s, 2),
            "dataset": self.dataset.describe(),
            "settings": {**asdict(self.settings), "metrics": list(self.settings.metrics)},
            "results": [
                {"label": r.label, "role": r.role, "model": r.model, "adapter": r.adapter, "backend": r.backend,
                 "metrics": r.metrics()}
                for r in self.results
            ],
        }


def evaluate(plan: Plan, dataset: Dataset, settings: Settings, home: Home, *,
             on_status: Callable[[Said], None] = lambda _m: None, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> EvalReport:
    """Measure every target of `plan`; `on_status` hears what is loaded, as phrases to show translated."""
    from engine.chat.targets import open_backend

    started = time.perf_counter()
    # Data that cannot be measured fails now, not after loading a model
    if "rouge" in settings.metrics:
        references(dataset.examples)
    if "preference" in settings.metrics and not dataset.pairs:
        raise _not_pairs(dataset)
    results = []
    for group in _by_model(plan.targets):
        adapters = [target.adapter for target in group if target.adapter is not None]
        with open_backend(group[0].model, home, backend=settings.backend, adapters=adapters,
                          max_context=max(DEFAULT_MAX_CONTEXT, settings.max_length or 0),
                          on_status=on_status) as backend:
            for target in group:
                results.append(_measure(backend, target, dataset, settings, progress, cancel))
    return EvalReport(dataset, settings, tuple(results), run=plan.run.name if plan.run else None,
                      duration_s=time.perf_counter() - started)


def _by_model(targets: Sequence[Target]) -> Iterator[list[Target]]:
    """Consecutive targets on the same model, to be measured on one loaded backend."""
    group: list[Target] = []
    for target in targets:
        if group and group[0].model != target.model:
            yield group
            group = []
        group.append(target)
    if group:
        yield group


def _measure(backend: ChatBackend, target: Target, dataset: Dataset, settings: Settings,
             progress: Progress | None, cancel: threading.Event | None) -> TargetResult:
    adapter = target.adapter.name if target.adapter else None

    def report(what: str):  # a message with a {target} field, marked with N_
        doing = phrase(what, target=target.label)
        return None if progress is None else lambda done, total: progress(doing, done, total)

    perplexity = rouge = preference = None
    if "perplexity" in settings.metrics:
        perplexity = measure_perplexity(
            backend, dataset.examples, adapter=adapter, max_length=settings.max_length, stride=settings.stride,
            assistant_only=settings.assistant_only, progress=report(N_("{target}: perplexity")), cancel=cancel,
        )
    if "rouge" in settings.metrics:
        rouge = measure_rouge(backend, dataset.examples, adapter=adapter, max_new_tokens=settings.max_new_tokens,
                              batch_size=settings.batch_size, progress=report(N_("{target}: answers")), cancel=cancel)
    if "preference" in settings.metrics:
        preference = measure_preference(backend, dataset.pairs, adapter=adapter, max_length=settings.max_length,
                                        progress=report(N_("{target}: preference")), cancel=cancel)
    return TargetResult(target.label, target.role, target.model.base, adapter and str(target.adapter.folder),
                        backend.kind, perplexity, rouge, preference)


def _not_pairs(dataset: Dataset) -> EvalError:
    return EvalError(mismatch(phrase("the preference metric"), PAIRS, dataset.data), where=dataset.data.where,
                     hint=phrase("{hint}; give held-out pairs with --data", hint=mismatch_hint(PAIRS, dataset.data)))


def save_to_run(run: RunDir, report: EvalReport) -> None:
    """Keep the report in the run folder and show it in the model card next to the trained model."""
    from engine.model_card import refresh_model_card
    from engine.train.outputs import output_dir

    results = report.to_dict()
    atomic_write_text(run.path / RESULTS_FILE, json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    config = run.config()
    refresh_model_card(output_dir(run.path, config), run.name, config, results)
