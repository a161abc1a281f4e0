"""README.md for an export folder: the Hub model card, also read by people who find the folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from engine.config import RunConfig
from engine.textwidth import human_bytes
from engine.model_card import base_model_id
from export.manifest import FAILED
from export.verify import Verdict, Verification


# Ollama runs a Go template, which cannot strip earlier answers' reasoning as the Jinja template does
REASONING_NOTE = ("The model reasons in `<think>` … `</think>` before it answers. The Modelfile has no stop there, "
                  "so Ollama shows the reasoning with the answer (releases with thinking support fold it away); "
                  "earlier answers keep their reasoning in the conversation, where the model's own template drops it.")


@dataclass(frozen=True)
class CardFile:
    name: str
    kind: str  # "f16", "q8_0", ... or "merged HF folder"
    size_bytes: int


def render_export_card(run_name: str, config: RunConfig, adapters: Sequence[tuple[str, float]],
                       files: Sequence[CardFile], verification: Verification, verdict: Verdict, *,
                       runs_file: str | None, ollama_name: str | None, reasoning: bool = False) -> str:
    """`runs_file` is the GGUF to run (None when none passed); `ollama_name` is None without a Modelfile;
    `reasoning`: the chat template writes <think> blocks (Qwen3, QwQ, DeepSeek-R1 distills)."""
    checks = {m.name: m for m in verification.models}
    merged = checks["merged"]
    rows = ["| file | type | size | perplexity | vs reference | same greedy answers |", "| --- | --- | --- | --- | --- | --- |"]
    for file in files:
        check = checks.get(file.kind)
        if check is None or check.perplexity_delta is None:
            perplexity = f"{merged.perplexity:.3f}" if file.kind == "merged HF folder" else "-"
            rows.append(f"| `{file.name}` | {file.kind} | {human_bytes(file.size_bytes)} | {perplexity} | - | - |")
        else:
            excluded = " (excluded: failed verification)" if file.kind in verdict.excluded else ""
            rows.append(f"| `{file.name}`{excluded} | {file.kind.upper()} | {human_bytes(file.size_bytes)} | "
                        f"{check.perplexity:.3f} | {check.perplexity_delta:+.2%} vs {check.reference} | "
                        f"{check.same_answers}/{len(check.answers)} |")
    merged_from = ", ".join(f"`{name}`" + (f" × {weight:g}" if weight != 1 else "") for name, weight in adapters)
    outcome = _outcome(verification, verdict)
    front = {"base_model": base_model_id(config), "pipeline_tag": "text-generation",
             "tags": ["tanren", "gguf", *(["ollama"] if ollama_name else []), config.adapter.method]}
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# {run_name}",
        "",
        f"`{front['base_model']}` fine-tuned with tanren ({config.adapter.method})"
        + (f", adapters merged in full precision: {merged_from}." if merged_from else "."),
        "",
        *rows,
        "",
        f"Verification {outcome}. Perplexity is measured on {verification.examples} held-out chat examples "
        f"({verification.data}), answers only; F16 must be within 1 % of the merged model, Q8_0 within 1 % and "
        "Q4_K_M within 5 % of F16, and every GGUF must stop at the end of its turn where the merged model does.",
        "",
        *_usage(runs_file, ollama_name),
        *([REASONING_NOTE, ""] if reasoning and ollama_name else []),
        "`manifest.json` lists every file with its SHA-256, the inputs, the verification results and tool versions.",
        "",
    ]
    return "\n".join(lines)


def _outcome(verification: Verification, verdict: Verdict) -> str:
    if verdict.status == FAILED:
        return f"FAILED: {'; '.join(map(str, verification.failures))}"
    if verdict.excluded:
        failures = {m.name: m.failures for m in verification.models}
        excluded = "; ".join(str(f) for name in verdict.excluded for f in failures[name])
        return (f"passed with exclusions: {', '.join(n.upper() for n in verdict.passed)} passed; excluded, and not "
                f"published: {excluded}")
    return "passed"


def _usage(runs_file: str | None, ollama_name: str | None) -> list[str]:
    if runs_file is None:
        return []
    ollama = [f"ollama create {ollama_name} -f Modelfile    # runs {runs_file}", f"ollama run {ollama_name}"]
    return ["## Use", "", "```sh", *(ollama if ollama_name else []),
            f"llama-server --jinja -m {runs_file}    # the chat template is inside the GGUF",
            f"llama-cli -m {runs_file} -cnv", "```", ""]
