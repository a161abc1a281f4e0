"""Recognize a model's chat template as a known chat format, for runtimes that need it in their own words.

Ollama does not run Jinja: a Modelfile spells the prompt format as a Go template. Guessing the
format from the template's text goes wrong in quiet ways (a missing newline makes a model
ramble), so the model's own template is rendered on probe conversations and must produce,
character for character, what the known format produces. Then the format's Go template, written
after Ollama's own library templates, says the same thing. A template that matches no known
format is refused with its first line, never approximated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.errors import ExportError, TanrenError
from engine.messages import Message

_CHATML_GO = """\
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""

_LLAMA3_GO = """\
{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ .Content }}
{{- if not $last }}<|eot_id|>
{{- end }}
{{- end }}
{{- end }}"""


def _chatml(messages: Sequence[Message], _bos: str) -> str:
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _llama3(messages: Sequence[Message], bos: str) -> str:
    turns = "".join(f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content}<|eot_id|>" for m in messages)
    return bos + turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


@dataclass(frozen=True)
class ChatFormat:
    name: str
    go_template: str  # Ollama's TEMPLATE; the runtime adds BOS itself where the tokenizer asks for it
    end_of_turn: str  # the token that closes the assistant's turn
    stops: tuple[str, ...]  # every marker an answer must stop at: the end of a turn, the start of the next
    render: Callable[[Sequence[Message], str], str]  # what the HF template renders, given the BOS text


FORMATS = (
    ChatFormat("ChatML", _CHATML_GO, "<|im_end|>", ("<|im_end|>", "<|im_start|>"), _chatml),
    ChatFormat("Llama 3", _LLAMA3_GO, "<|eot_id|>", ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
               _llama3),
)

# Probe conversations: a system turn, several turns, and Japanese, as a chat would send them
_PROBE = (Message("system", "You are terse."), Message("user", "Hi there"), Message("assistant", "Hello."),
          Message("user", "日本の首都は？"))
_USER_ONLY = (Message("user", "Hi there"),)
_MARK = "\x00tanren-system\x00"


@dataclass(frozen=True)
class DetectedFormat:
    format: ChatFormat
    default_system: str  # what the template puts in the system turn when the chat has none ("" if nothing)


def detect_chat_format(template: str | None, special_tokens: dict[str, str], *, model: str) -> DetectedFormat:
    """The known chat format `template` renders exactly, or a clear ExportError."""
    if not template:
        raise ExportError(f"{model} has no chat template, so there is no prompt format to give Ollama",
                          where=model, hint="export a chat (instruct) model, or train with a chat template")
    bos = special_tokens.get("bos_token") or ""
    rendered = _render(template, _PROBE, special_tokens, model)
    for chat_format in FORMATS:
        if rendered is not None and rendered == chat_format.render(_PROBE, bos):
            return DetectedFormat(chat_format, _default_system(template, chat_format, special_tokens, model))
    first_line = template.strip().splitlines()[0][:120]
    raise ExportError(
        f"{model}'s chat template is not one tanren can translate for Ollama (known: "
        f"{', '.join(f.name for f in FORMATS)}); it begins: {first_line}", where=model,
        hint="use the GGUF with llama.cpp, which reads the template from the file, or write the Modelfile's "
        "TEMPLATE by hand",
    )


def _default_system(template: str, chat_format: ChatFormat, special_tokens: dict[str, str], model: str) -> str:
    """The system prompt the template inserts when the conversation has none (SmolLM2 does)."""
    bos = special_tokens.get("bos_token") or ""
    rendered = _render(template, _USER_ONLY, special_tokens, model) or ""
    if rendered == chat_format.render(_USER_ONLY, bos):
        return ""
    prefix, _, suffix = chat_format.render((Message("system", _MARK), *_USER_ONLY), bos).partition(_MARK)
    if rendered.startswith(prefix) and rendered.endswith(suffix) and len(rendered) >= len(prefix) + len(suffix):
        default = rendered[len(prefix):len(rendered) - len(suffix)]
        if chat_format.render((Message("system", default), *_USER_ONLY), bos) == rendered:
            return default
    raise ExportError(f"{model}'s chat template changes conversations without a system turn in a way "
                      f"an Ollama {chat_format.name} TEMPLATE cannot express", where=model,
                      hint="write the Modelfile's TEMPLATE by hand")


def _render(template: str, messages: Sequence[Message], special_tokens: dict[str, str], model: str) -> str | None:
    from engine.chat.template import render_chat

    try:
        return render_chat(template, messages, special_tokens=special_tokens, model=model)
    except TanrenError:
        return None  # e.g. a template that refuses system turns: not a format we know
