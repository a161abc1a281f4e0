"""`tanren chat`: talk to a base, its adapters or a GGUF file; `--prompt` answers once and exits.

Answers go to stdout and everything else (loading, timing) to stderr, so
`tanren chat MODEL --prompt "..." > answer.txt` captures just the answer.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.chat.collect import Dataset, Turn, default_dataset
from engine.chat.judge import Judge
from engine.config.arguments import add_loading_options, loading_config
from engine.config import GenerationConfig, ModelConfig, RunConfig, apply_overrides
from engine.errors import TanrenError
from engine.i18n import N_, Gettext
from engine.messages import Message
from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from engine.phrases import in_language, phrase

if TYPE_CHECKING:  # the backends import numpy; `tanren --help` should not
    from engine.chat.compare import Comparison

# The slash commands and what they do; a description may run over several lines.
COMMANDS = (
    ("/base", N_("chat with the base model (adapters off)")),
    ("/adapter RUN", N_("switch to an adapter (a run name or adapter folder; loaded on first use)")),
    ("/system TEXT", N_("set the system prompt (empty: the model's default)")),
    ("/set FIELD=VALUE", N_("change a generation setting, e.g. /set temperature=0")),
    ("/params", N_("show the generation settings")),
    ("/tokens", N_("count the conversation's prompt tokens")),
    ("/reset", N_("forget the conversation")),
    ("/save NAME", N_("save the conversation to $TANREN_HOME/chats/NAME.jsonl")),
    ("/good, /bad", N_("mark the last answer good or bad (a KTO rating in the dataset)")),
    ("/edit TEXT", N_("the answer you wanted instead of the last one (an SFT conversation and a pair);\n"
                      "/edit alone reads it from the next lines, up to a line holding just \".\"")),
    ("/prefer left|right", N_("compare mode: the better side (a preference pair)")),
    ("/dataset NAME", N_("write judgements to $TANREN_HOME/datasets/NAME/ (shows the counts without NAME)")),
    ("/quit", N_("leave (Ctrl-D works too; Ctrl-C stops an answer)")),
)
COMMAND_WIDTH = max(len(command) for command, _what in COMMANDS) + 1


def help_text(_: Gettext) -> str:
    """The slash commands, as `/help` and `tanren chat --help` list them."""
    lines = [_("commands:")]
    for command, what in COMMANDS:
        first, *more = _(what).splitlines()
        lines.append(f"  {command:<{COMMAND_WIDTH}}{first}")
        lines += [" " * (COMMAND_WIDTH + 2) + line for line in more]
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    parser = subparsers.add_parser(
        "chat", help=_("chat with a base model, adapters or a GGUF file (streaming; --prompt to answer once)"),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=help_text(_),
    )
    parser.add_argument("target", nargs="?", help=_(
        "base model: built-in name, HF folder, cached hub id or a .gguf file; or a finished run: its base with "
        "its adapter (default: the loaded chat's, else {model})", model=DEFAULT_MODEL))
    parser.add_argument("--adapter", action="append", default=[], metavar="RUN", help=_(
        "a run name or PEFT adapter folder to load onto the base (repeatable; the first is active)"))
    parser.add_argument("--backend", choices=("auto", "transformers", "llama.cpp"), default="auto", help=_(
        "auto: llama.cpp for .gguf files, transformers otherwise; llama.cpp on a built-in model uses the GGUF "
        "it ships as"))
    parser.add_argument("--prompt", help=_("answer this one message, print the answer and exit"))
    parser.add_argument("--vs", metavar="OTHER", help=_(
        "compare mode: also answer with OTHER, with the same seed: base, an adapter (run or folder), llama.cpp / "
        "transformers (the same model through that backend), a .gguf file or another model"))
    parser.add_argument("--system", help=_("system prompt"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE", help=_(
        "a generation setting: temperature, top_p, top_k, repetition_penalty, max_new_tokens, seed (repeatable)"))
    parser.add_argument("--temperature", type=float, help=_("0 for greedy (default 0.7)"))
    parser.add_argument("--max-new-tokens", type=int, help=_("longest answer (default 256)"))
    parser.add_argument("--seed", type=int, help=_("seed for reproducible sampling"))
    parser.add_argument("--context", type=int, default=4096,
                        help=_("longest prompt + answer in tokens (default {tokens})", tokens=4096))
    parser.add_argument("--load", metavar="NAME", help=_("continue a saved chat"))
    parser.add_argument("--save", metavar="NAME", help=_("save the chat to $TANREN_HOME/chats/NAME.jsonl"))
    parser.add_argument("--dataset", metavar="NAME", help=_(
        "where /good, /bad, /edit and /prefer write: $TANREN_HOME/datasets/NAME/ (default: the dataset written "
        "last, else chat)"))
    add_loading_options(parser)
    parser.set_defaults(handler=_chat)


def _run_as_target(args: argparse.Namespace, home: Home) -> None:
    """`tanren chat RUN` chats with what the run trained: its base with its adapter on top."""
    from engine.chat.pool import run_spec
    from engine.models.registry import BUILTIN_MODELS
    from engine.runs.rundir import find_run

    if not args.target or args.target in BUILTIN_MODELS or Path(args.target).expanduser().exists():
        return  # a model by that name comes first
    run = find_run(args.target, home)
    spec = run_spec(run) if run else None
    if spec is not None:
        args.target = spec.model
        args.adapter = ([spec.adapter] if spec.adapter else []) + args.adapter


def _chat(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from engine.chat.sessions import ChatSession, load_session

    hf_logging.disable_progress_bar()  # a weights-loading bar would garble the terminal chat
    home = Home.from_env()
    _run_as_target(args, home)
    session = load_session(home, args.load) if args.load else ChatSession(target=args.target or DEFAULT_MODEL)
    params = _params(args, session.params)
    chat = _Chat(home, args, target=args.target or session.target or DEFAULT_MODEL,
                 history=list(session.messages), params=params)
    with contextlib.ExitStack() as stack:
        chat.open(stack)
        if args.prompt is not None:
            chat.answer(args.prompt)
        else:
            chat.interactive()
        if args.save:
            chat.save(args.save)
    return 0


def _params(args: argparse.Namespace, base: GenerationConfig) -> GenerationConfig:
    params = _override(base, [f"generation.{item}" for item in args.overrides])
    flags = {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
             "system_prompt": args.system}
    return dataclasses.replace(params, **{k: v for k, v in flags.items() if v is not None})


def _override(params: GenerationConfig, overrides: list[str]) -> GenerationConfig:
    return apply_overrides(RunConfig(generation=params), overrides).generation


def _status(message: str) -> None:
    """A line about the chat rather than the answer: on stderr, so that stdout holds only answers."""
    print(message, file=sys.stderr)


def _read_block() -> str:
    """Lines typed up to one that holds just "." (or the end of input): a multi-line answer."""
    lines = []
    while True:
        try:
            line = input()
        except EOFError:
            break
        if line == ".":
            break
        lines.append(line)
    return "\n".join(lines)


class _Chat:
    """The state of one terminal chat: the loaded backends, the active target and the history."""

    def __init__(self, home: Home, args: argparse.Namespace, *, target: str, history: list[Message],
                 params: GenerationConfig):
        self.home, self.args, self.spec, self._ = home, args, target, args.catalog.gettext
        self.history, self.params = history, params
        self.backend = self.current = self.other = None
        self.judge = Judge(Dataset.open(home, args.dataset) if args.dataset else default_dataset(home))

    def _model_config(self, spec: str) -> ModelConfig:
        return loading_config(self.args, base=spec)

    def _open(self, stack: contextlib.ExitStack, spec: str, backend: str, adapters=()):
        from engine.chat.targets import open_backend

        loaded = open_backend(self._model_config(spec), self.home, backend=backend, adapters=adapters,
                              max_context=self.args.context,
                              on_status=lambda message: _status(in_language(message, self._)))
        return stack.enter_context(loaded)

    def open(self, stack: contextlib.ExitStack) -> None:
        from engine.chat.targets import resolve_adapter

        adapters = [resolve_adapter(spec, self.home) for spec in self.args.adapter]
        self.backend = self._open(stack, self.spec, self.args.backend, adapters)
        self.current = self._target(adapters[0].name if adapters else None)
        if self.args.vs:
            self.other = self._other(stack, self.args.vs)

    def _target(self, adapter: str | None, backend=None):
        from engine.chat.backend import ChatTarget

        backend = backend or self.backend
        label = f"{backend.name} [{backend.kind}]" + (f" + {adapter}" if adapter else "")
        return ChatTarget(label, backend, adapter)

    def _other(self, stack: contextlib.ExitStack, spec: str):
        from engine.chat.targets import is_adapter

        if spec == "base":
            return self._target(None)
        if spec in ("transformers", "llama.cpp"):
            return self._target(None, self._open(stack, self.spec, spec))
        if not spec.lower().endswith(".gguf") and is_adapter(spec, self.home):
            return self._target(self._load_adapter(spec))
        return self._target(None, self._open(stack, spec, "auto"))

    def _load_adapter(self, spec: str) -> str:
        from engine.chat.targets import resolve_adapter

        ref = resolve_adapter(spec, self.home)
        if ref.name not in self.backend.adapters:
            if not hasattr(self.backend, "add_adapter"):
                raise TanrenError(phrase("{model} runs on llama.cpp, which takes no adapters here",
                                         model=self.backend.name),
                                  hint=phrase("chat with the base model through transformers to use adapters"))
            _status(self._("loading adapter {name} from {folder}", name=ref.name, folder=ref.folder))
            self.backend.add_adapter(ref.name, ref.folder)
        return ref.name

    def answer(self, prompt: str) -> None:
        messages = [*self.history, Message("user", prompt)]
        if self.other is None:
            text = self._stream(self.current, messages)
            stats = self.current.last_stats
            turns = [self._turn(prompt, text, self.current.label, stats.seed if stats else self.params.seed)]
        else:
            result = self._compare(messages)
            turns = [self._turn(prompt, answer.text, answer.label, result.seed) for answer in (result.first, result.second)]
        self.judge.answered(*turns)
        self.history = [*messages, Message("assistant", turns[0].answer)]

    def _turn(self, prompt: str, text: str, label: str, seed: int | None) -> Turn:
        return Turn(tuple(self.history), prompt, text, label, dataclasses.replace(self.params, seed=seed))

    def _stream(self, target, messages: list[Message]) -> str:
        pieces = []
        try:
            for delta in target.stream_chat(messages, self.params):
                pieces.append(delta)
                print(delta, end="", flush=True)
        except KeyboardInterrupt:
            _status("\n" + self._("(answer stopped)"))
        print(flush=True)
        if target.last_stats is not None:
            _status(f"[{target.label}] {target.last_stats.summary(self._)}")
        return "".join(pieces)

    def _compare(self, messages: list[Message]) -> Comparison:
        from engine.chat.compare import compare

        shown: set[str] = set()

        def show(label: str, delta: str) -> None:
            if label not in shown:
                if shown:
                    print(flush=True)
                print(f"== {label} ==", flush=True)
                shown.add(label)
            print(delta, end="", flush=True)

        result = compare(self.current, self.other, messages, self.params, on_delta=show)
        print(flush=True)
        for answer in (result.first, result.second):
            _status(f"[{answer.label}] {answer.stats.summary(self._)}")
        print(f"-- {result.describe(self._)}")
        return result

    def interactive(self) -> None:
        _status(self._("chatting with {label}; /help for commands, Ctrl-D to leave", label=self.current.label))
        while True:
            try:
                line = input(self._("you> "))
            except (EOFError, KeyboardInterrupt):
                print()
                return
            if not line.strip():
                continue
            if line.startswith("/"):
                try:
                    if not self._command(line.strip()):
                        return
                except TanrenError as exc:
                    _status(exc.render(self._))
                continue
            try:
                self.answer(line)
            except TanrenError as exc:
                _status(exc.render(self._))

    def _command(self, line: str) -> bool:
        """Run one /command; False means leave."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            print(help_text(self._))
        elif name == "/base":
            self.current = self._target(None)
            _status(self._("now: {label}", label=self.current.label))
        elif name == "/adapter" and rest:
            self.current = self._target(self._load_adapter(rest))
            _status(self._("now: {label}", label=self.current.label))
        elif name == "/system":
            self.params = dataclasses.replace(self.params, system_prompt=rest)
        elif name == "/set" and rest:
            self.params = _override(self.params, [f"generation.{rest}"])
        elif name == "/params":
            print(self.params)
        elif name == "/tokens":
            from engine.chat.history import with_system_prompt

            messages = with_system_prompt(self.history, self.params.system_prompt)
            count = self.current.count_tokens(messages) if self.history else 0
            print(self._("{count} of {context} tokens", count=count, context=self.current.context_length))
        elif name == "/reset":
            self.history = []
            self.judge.forget()
        elif name in ("/good", "/bad", "/edit", "/prefer", "/dataset"):
            self._judge(name, rest)
        elif name == "/save" and rest:
            self.save(rest)
        else:
            _status(self._("unknown command {line!r}; /help lists them", line=line))
        return True

    def _judge(self, name: str, rest: str) -> None:
        """A judgement of the last answer, written to the chat's dataset, or the choice of that dataset."""
        if name in ("/good", "/bad"):
            self.judge.rate(name == "/good")
        elif name == "/edit":
            text = rest or _read_block()
            self.judge.edit(text)
            self.history[-1] = Message("assistant", text)  # the conversation goes on from the answer wanted
        elif name == "/prefer":
            self.judge.prefer(rest)
        elif rest:
            self.judge.use(Dataset.open(self.home, rest))
        _status(self.judge.status(self._))

    def save(self, name: str) -> None:
        from engine.chat.sessions import ChatSession, save_session

        session = ChatSession(target=self.spec, messages=tuple(self.history), adapter=self.current.adapter,
                              backend=self.args.backend, params=self.params)
        _status(self._("saved {path}", path=save_session(self.home, name, session)))
