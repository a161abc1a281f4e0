"""Recognize a model's chat template as a known chat format, for runtimes that need it in their own words.

Ollama does not run Jinja: a Modelfile spells the prompt format as a Go template. Guessing the
format from the template's text goes wrong in quiet ways (a missing newline makes a model
ramble), so the model's own template is rendered on probe conversations and must produce,
character for character, what a known family produces. Then the family's Go template, written
after Ollama's own library templates, says the same thing. A template that matches no family is
refused with its first line, never approximated: the GGUF still runs with llama.cpp's own Jinja.

Each family is written once, as its turns, and both its Go template and its Python renderer are
made from them, so the two cannot drift apart. Reasoning models (Qwen3, QwQ, DeepSeek-R1) strip
`<think>` blocks from earlier answers, which a Go template cannot; their earlier answers in the
probes carry no reasoning, so the texts can still be equal, and the answer's own `<think>` output
is left intact (no stop there). Text a template dates with the day it renders (strftime_now) is
text no Modelfile can keep, and is refused too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from engine.errors import ExportError, TanrenError
from engine.messages import Message
from engine.phrases import phrase

_WITH_LLAMA_CPP = phrase("run the GGUF with llama.cpp's own Jinja support instead: llama-server --jinja -m FILE")
_BY_HAND = phrase("for Ollama, write the Modelfile's TEMPLATE by hand")


class UnknownChatFormat(ExportError):
    """A chat template no Ollama TEMPLATE can say exactly; the GGUF itself carries it for llama.cpp."""


def writes_reasoning(template: str | None) -> bool:
    """Whether the template belongs to a reasoning model, whose answers open with a <think> block."""
    return "<think>" in (template or "")


@dataclass(frozen=True)
class ChatFormat:
    name: str
    go_template: str  # Ollama's TEMPLATE; the runtime adds BOS itself where the tokenizer asks for it
    end_of_turn: str  # the token that closes the assistant's turn
    stops: tuple[str, ...]  # every marker an answer must stop at: the end of a turn, the start of the next
    render: Callable[[Sequence[Message], str], str]  # what the HF template renders, given the BOS text


@dataclass(frozen=True)
class _Family:
    """A chat family's turns; in each, `{}` stands for the message's text."""

    name: str
    end_of_turn: str
    turn_starts: tuple[str, ...]
    user: str
    assistant: str
    system: str = ""  # the system turn, before the conversation; "" where the system prompt joins a user turn
    joined: str = ""  # how the system prompt joins that user turn's text: the first one's (Gemma, Llama 2) ...
    join_last: bool = False  # ... or the last one's (Mistral), when the conversation ends with it
    always_system: bool = False  # the system turn is there even without a system prompt (Llama 3.1)
    opening: str | None = None  # what opens the answer, where not the assistant turn's own start (Llama 2)
    bos: bool = False  # the prompt begins with BOS

    def chat_format(self, answer_prefix: str = "") -> ChatFormat:
        """The format, with what a reasoning model's template writes after the answer's opening."""
        return ChatFormat(self.name, self._go_template(self._opening + answer_prefix), self.end_of_turn,
                          (self.end_of_turn, *self.turn_starts), partial(self.render, answer_prefix=answer_prefix))

    @property
    def _opening(self) -> str:
        return self.assistant.partition("{}")[0] if self.opening is None else self.opening

    def render(self, messages: Sequence[Message], bos: str, answer_prefix: str = "") -> str:
        """The prompt for `messages` (a leading system turn, then user and assistant turns)."""
        system = messages[0].content if messages and messages[0].role == "system" else ""
        turns = [m for m in messages if m.role != "system"]
        joined_at = self._joined_at(turns) if self.joined and system else None
        text = bos if self.bos else ""
        if self.system and (system or self.always_system):
            text += self.system.replace("{}", system)
        for i, message in enumerate(turns):
            content = self.joined.replace("{}", system) + message.content if i == joined_at else message.content
            text += (self.user if message.role == "user" else self.assistant).replace("{}", content)
        return text + self._opening + answer_prefix

    def _joined_at(self, turns: Sequence[Message]) -> int | None:
        users = [i for i, m in enumerate(turns) if m.role == "user"]
        if not users or (self.join_last and users[-1] != len(turns) - 1):
            return None  # Mistral's template drops the system prompt when the chat ends with an answer
        return users[-1] if self.join_last else users[0]

    def _go_template(self, opening: str) -> str:
        """Ollama's TEMPLATE, fed .System (every system turn) and .Messages (system turns included)."""
        assistant_start, assistant_end = self.assistant.split("{}")
        lines = []
        if self.joined and not self.join_last:
            lines.append("{{ $system := .System }}")  # spent on the first user turn
        if self.system:
            system_turn = self.system.replace("{}", "{{ .System }}")
            lines.append(system_turn if self.always_system else "{{ if .System }}" + system_turn + "{{ end }}")
        lines += ["{{ range $i, $_ := .Messages }}", "{{ $last := eq (len (slice $.Messages $i)) 1 }}",
                  '{{ if eq .Role "user" }}' + self.user.replace("{}", self._go_joined() + "{{ .Content }}"),
                  '{{ else if eq .Role "assistant" }}' + assistant_start
                  + "{{ .Content }}{{ if not $last }}" + assistant_end + "{{ end }}",
                  "{{ end }}"]
        if opening:  # none where the answer follows the user's turn directly (Mistral, Llama 2)
            lines.append('{{ if and $last (ne .Role "assistant") }}' + opening + "{{ end }}")
        return _join_go_lines([*lines, "{{ end }}"])

    def _go_joined(self) -> str:
        if not self.joined:
            return ""
        if self.join_last:
            return "{{ if and $last $.System }}" + self.joined.replace("{}", "{{ $.System }}") + "{{ end }}"
        return '{{ if $system }}' + self.joined.replace("{}", "{{ $system }}") + '{{ $system = "" }}{{ end }}'


def _join_go_lines(lines: Sequence[str]) -> str:
    """One action or turn a line, as Ollama's library templates are laid out: a line opens with `{{-`,
    which trims the newline before it, unless the line before ends in the prompt's own whitespace
    (then it follows on directly), or the line begins with prompt text."""
    text = ""
    for line in lines:
        if line.startswith("{{ ") and not text[-1:].isspace():
            text += ("\n" if text else "") + "{{-" + line[2:]
        else:
            text += line
    return text


_LLAMA3 = _Family("Llama 3", "<|eot_id|>", ("<|start_header_id|>", "<|end_header_id|>"),
                  user="<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>",
                  assistant="<|start_header_id|>assistant<|end_header_id|>\n\n{}<|eot_id|>",
                  system="<|start_header_id|>system<|end_header_id|>\n\n{}<|eot_id|>", bos=True)
_MISTRAL = _Family("Mistral [INST]", "</s>", ("[INST]",), user="[INST]{}[/INST]", assistant="{}</s>",
                   joined="{}\n\n", join_last=True, bos=True)
_FAMILIES = (
    _Family("ChatML", "<|im_end|>", ("<|im_start|>",), user="<|im_start|>user\n{}<|im_end|>\n",
            assistant="<|im_start|>assistant\n{}<|im_end|>\n", system="<|im_start|>system\n{}<|im_end|>\n"),
    _LLAMA3,
    # Llama 3.1 and 3.3 always write a system turn, opened with a fixed knowledge date and "today"
    replace(_LLAMA3, name="Llama 3.1", always_system=True, system="<|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{}<|eot_id|>"),
    # Gemma has no system role; Gemma 3's template puts the system prompt at the head of the first user turn
    _Family("Gemma", "<end_of_turn>", ("<start_of_turn>",), user="<start_of_turn>user\n{}<end_of_turn>\n",
            assistant="<start_of_turn>model\n{}<end_of_turn>\n", joined="{}\n\n", bos=True),
    _MISTRAL,  # Nemo: the system prompt heads the last user turn
    replace(_MISTRAL, name="Mistral [SYSTEM_PROMPT]", turn_starts=("[INST]", "[SYSTEM_PROMPT]"), joined="",
            join_last=False, system="[SYSTEM_PROMPT]{}[/SYSTEM_PROMPT]"),  # Small 3.x, Devstral
    _Family("Phi-3", "<|end|>", ("<|system|>", "<|user|>", "<|assistant|>"), user="<|user|>\n{}<|end|>\n",
            assistant="<|assistant|>\n{}<|end|>\n", system="<|system|>\n{}<|end|>\n"),
    _Family("Phi-4", "<|im_end|>", ("<|im_start|>", "<|im_sep|>"), user="<|im_start|>user<|im_sep|>{}<|im_end|>",
            assistant="<|im_start|>assistant<|im_sep|>{}<|im_end|>",
            system="<|im_start|>system<|im_sep|>{}<|im_end|>"),
    # every user turn begins with BOS (the runtime adds the first); the answer begins with a space
    _Family("Llama 2", "</s>", ("[INST]", "<<SYS>>"), user="[INST] {} [/INST]", assistant=" {} </s><s>",
            joined="<<SYS>>\n{}\n<</SYS>>\n\n", opening="", bos=True),
    _Family("DeepSeek R1", "<｜end▁of▁sentence｜>", ("<｜User｜>", "<｜Assistant｜>"), user="<｜User｜>{}",
            assistant="<｜Assistant｜>{}<｜end▁of▁sentence｜>", system="{}", bos=True),
)
FORMATS = tuple(family.chat_format() for family in _FAMILIES)

# Probe conversations: a system turn, several turns, and Japanese, as a chat would send them
_PROBE = (Message("system", "You are terse."), Message("user", "Hi there"), Message("assistant", "Hello."),
          Message("user", "日本の首都は？"))
# The probe for a template that refuses system turns (Gemma 2): the system prompt where Gemma 3 puts it
_PROBE_JOINED = (Message("user", f"{_PROBE[0].content}\n\n{_PROBE[1].content}"), *_PROBE[2:])
_USER_ONLY = (Message("user", "Hi there"),)
_MARK = "\x00tanren-system\x00"
_STRFTIME = re.compile(r"""strftime_now\(\s*(["'])(.+?)\1\s*\)""")


@dataclass(frozen=True)
class DetectedFormat:
    format: ChatFormat
    default_system: str  # what the template puts in the system turn when the chat has none ("" if nothing)


def detect_chat_format(template: str | None, special_tokens: dict[str, str], *, model: str) -> DetectedFormat:
    """The known chat format `template` renders exactly; UnknownChatFormat when there is none."""
    if not template:
        raise UnknownChatFormat(phrase("{model} has no chat template, so there is no prompt format to give Ollama; "
                                       "{instead}", model=model, instead=_WITH_LLAMA_CPP), where=model,
                                hint=phrase("export a chat (instruct) model, or train with a chat template"))
    bos = special_tokens.get("bos_token") or ""
    rendered = (_render(template, _PROBE, special_tokens, model)
                or _render(template, _PROBE_JOINED, special_tokens, model) or "")
    for family in _FAMILIES:
        # whether a template writes BOS first varies within a family (LFM2's ChatML does, Qwen's does not);
        # the TEMPLATE is the same either way, since the runtime adds BOS itself
        for variant in (family, replace(family, bos=not family.bos)):
            chat_format = _match(rendered, variant, bos)
            if chat_format is not None:
                return DetectedFormat(chat_format, _default_system(template, chat_format, special_tokens, model))
    values = dict(model=model, known=", ".join(f.name for f in FORMATS),
                  first_line=template.strip().splitlines()[0][:120], instead=_WITH_LLAMA_CPP)
    unknown = (phrase("{model}'s chat template is not one tanren can translate for Ollama (known: {known}) and writes "
                      "today's date, which a Modelfile cannot keep; it begins: {first_line}; {instead}", **values)
               if _today_in(template, rendered) else
               phrase("{model}'s chat template is not one tanren can translate for Ollama (known: {known}); "
                      "it begins: {first_line}; {instead}", **values))
    raise UnknownChatFormat(unknown, where=model, hint=_BY_HAND)


def _match(rendered: str, family: _Family, bos: str) -> ChatFormat | None:
    """The family's format if it renders the probe as the template does. A reasoning model's template
    may go on after the answer's opening, with `<think>\\n` (or an empty `<think>` block that turns
    reasoning off): the format then writes exactly that too."""
    plain = family.render(_PROBE, bos)
    if not rendered.startswith(plain):
        return None
    answer_prefix = rendered[len(plain):]
    if answer_prefix and not answer_prefix.startswith("<think>"):
        return None
    return family.chat_format(answer_prefix)


def _default_system(template: str, chat_format: ChatFormat, special_tokens: dict[str, str], model: str) -> str:
    """The system prompt the template inserts when the conversation has none (SmolLM2 does)."""
    bos = special_tokens.get("bos_token") or ""
    rendered = _render(template, _USER_ONLY, special_tokens, model) or ""
    if rendered == chat_format.render(_USER_ONLY, bos):
        return ""
    default = _system_turn_in(rendered, chat_format, bos)
    if default is None:
        raise UnknownChatFormat(phrase("{model}'s chat template changes conversations without a system turn in a way "
                                       "an Ollama {format} TEMPLATE cannot express; {instead}",
                                       model=model, format=chat_format.name, instead=_WITH_LLAMA_CPP),
                                where=model, hint=_BY_HAND)
    if _today_in(template, default):
        raise UnknownChatFormat(phrase("{model}'s chat template writes today's date into its default system prompt, "
                                       "which a Modelfile's fixed SYSTEM cannot keep; {instead}",
                                       model=model, instead=_WITH_LLAMA_CPP), where=model,
                                hint=phrase("for Ollama, write the Modelfile's TEMPLATE and SYSTEM by hand"))
    return default


def _system_turn_in(rendered: str, chat_format: ChatFormat, bos: str) -> str | None:
    """The system prompt that makes the format render `rendered` for the user-only probe, if one does."""
    prefix, _, suffix = chat_format.render((Message("system", _MARK), *_USER_ONLY), bos).partition(_MARK)
    if not (rendered.startswith(prefix) and rendered.endswith(suffix) and len(rendered) >= len(prefix) + len(suffix)):
        return None
    default = rendered[len(prefix):len(rendered) - len(suffix)]
    return default if chat_format.render((Message("system", default), *_USER_ONLY), bos) == rendered else None


def _today_in(template: str, text: str) -> bool:
    """Whether `text` holds today's date as the template writes it (strftime_now), which changes daily."""
    now = datetime.now()
    return any(now.strftime(match.group(2)) in text for match in _STRFTIME.finditer(template))


def _render(template: str, messages: Sequence[Message], special_tokens: dict[str, str], model: str) -> str | None:
    from engine.chat.template import render_chat

    try:
        return render_chat(template, messages, special_tokens=special_tokens, model=model)
    except TanrenError:
        return None  # e.g. a template that refuses system turns: not a format we know
