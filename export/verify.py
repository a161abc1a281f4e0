"""Prove an export: run every GGUF in llama.cpp and hold it against the merged HF model.

Two checks decide pass or fail:
- Stopping. Greedy answers to smoke prompts (English and Japanese) must end at an end-of-turn
  token wherever the merged model's do, with the GGUF stopping only where llama.cpp and Ollama
  would: at its end-of-generation tokens and the Modelfile's stops. A GGUF that runs on to the
  token limit there is the "model rambles in Ollama" bug, and fails. The format's end-of-turn
  token must also be an end-of-generation token of the file itself, so plain llama.cpp stops.
- Perplexity on held-out chat data (the answers, as training scores them): F16 within 1 % of
  the merged model, Q8_0 within 1 % and Q4_K_M within 5 % of F16; other types are reported.

Whether the greedy answers are word for word the merged model's is reported, not judged: a
small model's first answer token can be a near tie that quantization legitimately flips.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.config import GenerationConfig, ModelConfig
from engine.data import Example
from engine.messages import Message
from engine.i18n import N_
from engine.phrases import Phrase, joined, phrase
from export.manifest import FAILED, PASSED, PASSED_WITH_EXCLUSIONS

SMOKE_PROMPTS = ("What is the capital of France?", "日本の首都はどこですか？", "What is two plus two?",
                 "富士山の高さは？")
SMOKE_MAX_TOKENS = 96
# Relative perplexity increase allowed, against the reference named second
PERPLEXITY_LIMITS = {"f16": (0.01, "merged"), "q8_0": (0.01, "f16"), "q4_k_m": (0.05, "f16")}
PERPLEXITY_MAX_LENGTH = 512  # the held-out answers are short; a window this long holds them whole


@dataclass(frozen=True)
class Answer:
    prompt: str
    text: str
    tokens: int
    stopped: bool  # ended at an end-of-turn token, not at the token limit


@dataclass(frozen=True)
class ModelCheck:
    """One model's results: the merged HF model, or one GGUF file."""

    name: str  # "merged", "f16", "q8_0", ...
    answers: tuple[Answer, ...]
    perplexity: float
    scored_tokens: int
    seconds: float
    same_answers: int | None = None  # GGUF: answers identical to the merged model's
    perplexity_delta: float | None = None  # GGUF: relative to its reference
    reference: str | None = None
    limit: float | None = None
    failures: tuple[Phrase, ...] = ()  # shown in the reader's language; the manifest keeps their English


@dataclass(frozen=True)
class Verification:
    models: tuple[ModelCheck, ...]
    examples: int
    data: str  # where the held-out examples came from
    notes: tuple[Phrase, ...] = field(default=())

    @property
    def failures(self) -> tuple[Phrase, ...]:
        return tuple(f for model in self.models for f in model.failures)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        """The results as the manifest keeps them: failures and notes in English."""
        models = tuple(replace(model, failures=tuple(map(str, model.failures))) for model in self.models)
        plain = replace(self, models=models, notes=tuple(map(str, self.notes)))
        return {**asdict(plain), "passed": self.passed, "failures": list(map(str, self.failures))}


@dataclass(frozen=True)
class Verdict:
    """What an export may publish. A quantized type that fails is excluded, and the files that
    passed stay usable; a failing F16 file means the conversion itself is wrong, and fails all."""

    status: str  # manifest.PASSED, PASSED_WITH_EXCLUSIONS or FAILED
    passed: tuple[str, ...]  # GGUF types, in the order they were written
    excluded: tuple[str, ...]
    runs: str | None  # the type the Modelfile runs: the first preferred type that passed

    @classmethod
    def of(cls, verification: Verification, preferred: Sequence[str]) -> Verdict:
        failed = {model.name for model in verification.models if model.failures}
        ggufs = [model.name for model in verification.models if model.name != "merged"]
        if failed & {"merged", "f16"}:
            return cls(FAILED, (), (), None)
        passed = tuple(name for name in ggufs if name not in failed)
        excluded = tuple(name for name in ggufs if name in failed)
        runs = next((name for name in preferred if name in passed), passed[0] if passed else None)
        return cls(PASSED_WITH_EXCLUSIONS if excluded else PASSED, passed, excluded, runs)


def verify_export(merged: Path, ggufs: dict[str, Path], examples: Sequence[Example], *, data: str,
                  end_of_turn: str | None, stop_strings: Sequence[str], model_config: ModelConfig = ModelConfig(),
                  on_log: Callable[[Phrase], None] = lambda _m: None) -> Verification:
    """Check every GGUF (`ggufs`: type name -> file, F16 first) against the merged folder.

    `end_of_turn` is the chat format's end-of-turn token (None for a model that names none, whose
    files are then not checked for it), `stop_strings` the Modelfile's stops.
    """
    import time

    from engine.chat.llama_cpp_backend import LlamaCppBackend
    from engine.chat.transformers_backend import TransformersBackend

    started = time.perf_counter()
    with TransformersBackend.load(merged, _fp32(model_config, merged)) as backend:
        answers = _answers(backend)
        perplexity = _perplexity(backend, examples)
    reference = ModelCheck("merged", answers, perplexity.perplexity, perplexity.tokens,
                           time.perf_counter() - started)
    on_log(_summary(reference))
    checks = [reference]
    notes = []
    if not any(a.stopped for a in answers):
        notes.append(phrase("the merged model ran to {n} tokens on every smoke prompt, so whether the GGUF files "
                            "stop could not be compared", n=SMOKE_MAX_TOKENS))
    for name, path in ggufs.items():
        started = time.perf_counter()
        with LlamaCppBackend.load(path) as backend:
            end_of_turn_ok = stop_like_ollama(backend, end_of_turn, stop_strings)
            gguf_answers = _answers(backend)
            gguf_perplexity = _perplexity(backend, examples)
        check = judge_gguf(name, gguf_answers, gguf_perplexity, checks, end_of_turn_ok, time.perf_counter() - started)
        on_log(_summary(check))
        checks.append(check)
    return Verification(tuple(checks), len(examples), data, tuple(notes))


def _fp32(model_config: ModelConfig, folder: Path) -> ModelConfig:
    from dataclasses import replace

    return replace(model_config, base=str(folder), dtype="float32")


def _answers(backend) -> tuple[Answer, ...]:
    params = GenerationConfig(temperature=0, repetition_penalty=1.0, max_new_tokens=SMOKE_MAX_TOKENS, seed=0)
    answers = []
    for prompt in SMOKE_PROMPTS:
        text = "".join(backend.stream_chat([Message("user", prompt)], params))
        stats = backend.last_stats
        answers.append(Answer(prompt, text, stats.new_tokens, stats.stop_reason == "stop"))
    return tuple(answers)


def _perplexity(backend, examples: Sequence[Example]):
    from evals.perplexity import measure_perplexity

    return measure_perplexity(backend, examples, max_length=PERPLEXITY_MAX_LENGTH, assistant_only=True)


def stop_like_ollama(backend, end_of_turn: str | None, stop_strings: Sequence[str]) -> bool:
    """Make `backend` stop only where Ollama would; True if `end_of_turn` is an end-of-generation
    token of the file itself (so plain llama.cpp stops there too).

    The chat engine also stops at every end-of-turn marker it knows, which would hide a GGUF
    whose metadata forgot one. Ollama stops at the file's end-of-generation tokens and at the
    Modelfile's stops, so the answers are generated with exactly that set.
    """
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(backend.llm.model)
    end_of_generation = {token for token in range(llama_cpp.llama_vocab_n_tokens(vocab))
                         if llama_cpp.llama_vocab_is_eog(vocab, token)}
    stops = {_single_token(backend, text) for text in stop_strings} - {None}
    backend.stop_ids = frozenset(end_of_generation | stops)
    return end_of_turn is None or _single_token(backend, end_of_turn) in end_of_generation


def _single_token(backend, text: str) -> int | None:
    ids = backend.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    return ids[0] if len(ids) == 1 else None


def judge_gguf(name: str, answers: tuple[Answer, ...], perplexity, checks: list[ModelCheck], end_of_turn_ok: bool,
               seconds: float) -> ModelCheck:
    """One GGUF's verdict against the checks before it (the merged model first, then F16...)."""
    merged = checks[0]
    failures = []
    label = name.upper()
    for mine, theirs in zip(answers, merged.answers, strict=True):
        if theirs.stopped and not mine.stopped:
            failures.append(phrase("{type} did not stop within {n} tokens on {prompt!r}, where the merged model "
                                   "stopped after {tokens}: it would ramble on in Ollama", type=label,
                                   n=SMOKE_MAX_TOKENS, prompt=mine.prompt, tokens=theirs.tokens))
    if not end_of_turn_ok:
        failures.append(phrase("{type}: llama.cpp does not end generation at the chat format's end-of-turn token; "
                               "without the Modelfile's stops, answers would run on", type=label))
    limit, reference_name = PERPLEXITY_LIMITS.get(name, (None, "f16"))
    reference = next((c for c in checks if c.name == reference_name), merged)
    delta = perplexity.perplexity / reference.perplexity - 1
    if limit is not None and not (math.isfinite(delta) and delta <= limit):
        failures.append(phrase("{type} perplexity {perplexity:.3f} is {delta:+.2%} from {reference} "
                               "({reference_perplexity:.3f}); at most {limit:+.0%} is allowed", type=label,
                               perplexity=perplexity.perplexity, delta=delta, reference=reference.name,
                               reference_perplexity=reference.perplexity, limit=limit))
    same = sum(a.text == b.text for a, b in zip(answers, merged.answers, strict=True))
    return ModelCheck(name, answers, perplexity.perplexity, perplexity.tokens, seconds, same, delta,
                      reference.name, limit, tuple(failures))


def _summary(check: ModelCheck) -> Phrase:
    """The check in one line of the export's log."""
    values = dict(name=check.name, perplexity=check.perplexity, tokens=check.scored_tokens,
                  stopped=sum(a.stopped for a in check.answers), answers=len(check.answers))
    line = (phrase("{name}: perplexity {perplexity:.3f} on {tokens} tokens, {stopped}/{answers} answers stopped",
                   **values) if check.same_answers is None else
            phrase("{name}: perplexity {perplexity:.3f} on {tokens} tokens, {stopped}/{answers} answers stopped, "
                   "{same}/{answers} answers as merged, perplexity {delta:+.2%} vs {reference}", **values,
                   same=check.same_answers, delta=check.perplexity_delta, reference=check.reference))
    if not check.failures:
        return line
    failures = joined(check.failures, N_("{first}; {second}"))
    return phrase("{summary} - FAILED: {failures}", summary=line, failures=failures)
