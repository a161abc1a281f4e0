"""An argparse parser that speaks the user's language, argparse's own strings included.

argparse translates through the process-wide gettext domain, chosen by the environment; tanren
holds its catalog instead (the language may come from the settings file), so this parser sets
the strings argparse lets a program set ("usage: ", the group titles, -h's help) and translates
the errors argparse raises by their message ids, which are in tanren's catalog too.
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import cache, partial
from typing import NoReturn

from engine.i18n import N_
from engine.phrases import Translate
from engine.textwidth import display_width, wrap_cells

# argparse's (Python 3.11) own messages, %-formatted as argparse formats them
ARGUMENT = N_("argument %(argument_name)s: %(message)s")
ARGPARSE_ERRORS = (
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("ignored explicit argument %r"),
)
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[sr]")


def _pattern(template: str) -> re.Pattern[str]:
    """The regular expression an argparse message id's formatted messages match."""
    parts, last = [], 0
    for match in PLACEHOLDER.finditer(template):
        parts += [re.escape(template[last:match.start()]), "(.+?)"]
        last = match.end()
    return re.compile("".join([*parts, re.escape(template[last:])]) + r"\Z", re.DOTALL)


PATTERNS = tuple((template, _pattern(template)) for template in (ARGUMENT, *ARGPARSE_ERRORS))


def translate_argparse_message(message: str, gettext: Translate) -> str:
    """An argparse error message in gettext's language; one it does not know stays as it is."""
    for template, pattern in PATTERNS:
        if match := pattern.match(message):
            values = list(match.groups())
            if template == ARGUMENT:  # the argument's own message is one of argparse's too
                values[1] = translate_argparse_message(values[1], gettext)
            return _fill(gettext(template), template, values)
    return message


def _fill(translated: str, template: str, values: list[str]) -> str:
    names = [match.group(1) for match in PLACEHOLDER.finditer(template)]
    if all(names):  # named placeholders: the translation may put them in another order
        named = dict(zip(names, values))
        return PLACEHOLDER.sub(lambda m: named[m.group(1)], translated)
    filled = iter(values)
    return PLACEHOLDER.sub(lambda _m: next(filled), translated)


@cache
def translated_formatter(formatter_class: type[argparse.HelpFormatter]) -> type[argparse.HelpFormatter]:
    """The parser's formatter class (raw descriptions, defaults...) with a translated "usage: ",
    and text wrapped by display width, between Japanese characters too: argparse counts characters
    and breaks only at spaces, so Japanese help would run past the terminal's edge."""
    rewraps = formatter_class._split_lines is argparse.HelpFormatter._split_lines  # raw text keeps its lines
    refills = formatter_class._fill_text is argparse.HelpFormatter._fill_text

    class Translated(formatter_class):  # type: ignore[valid-type, misc]
        gettext: Translate = str

        def _format_usage(self, usage, actions, groups, prefix) -> str:  # noqa: ANN001 - argparse's signature
            prefix = self.gettext("usage: ") if prefix is None else prefix
            stand_in = "\0" * display_width(prefix)  # argparse indents the usage by len(prefix)
            return super()._format_usage(usage, actions, groups, stand_in).replace(stand_in, prefix, 1)

        def _split_lines(self, text: str, width: int) -> list[str]:
            return wrap_cells(text, width) if rewraps else super()._split_lines(text, width)

        def _fill_text(self, text: str, width: int, indent: str) -> str:
            if refills:
                return "\n".join(indent + line for line in wrap_cells(text, width - display_width(indent)))
            # raw text (examples) keeps its lines; one too long continues, further in, on the next
            return "".join(_wrap_raw_line(indent + line, width) for line in text.splitlines(keepends=True))

    return Translated


def _wrap_raw_line(line: str, width: int) -> str:
    if display_width(line.rstrip("\n")) <= width:
        return line
    margin, further = " " * (len(line) - len(line.lstrip())), "    "
    first, *rest = wrap_cells(line, width - len(margin + further))
    return "\n".join([margin + first, *(margin + further + more for more in rest)]) + line[len(line.rstrip("\n")):]


class TanrenParser(argparse.ArgumentParser):
    """An ArgumentParser whose help, usage and errors are in gettext's language."""

    def __init__(self, *args, gettext: Translate = str, **kwargs) -> None:
        self.gettext = gettext
        super().__init__(*args, add_help=False, **kwargs)
        self._positionals.title = gettext("positional arguments")
        self._optionals.title = gettext("options")
        self.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                          help=gettext("show this help message and exit"))

    def _get_formatter(self) -> argparse.HelpFormatter:
        formatter = translated_formatter(self.formatter_class)(prog=self.prog)
        formatter.gettext = self.gettext
        return formatter

    def add_subparsers(self, **kwargs) -> argparse._SubParsersAction:
        kwargs.setdefault("parser_class", partial(TanrenParser, gettext=self.gettext))
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        text = self.gettext("{prog}: error: {message}").format(
            prog=self.prog, message=translate_argparse_message(message, self.gettext))
        self.exit(2, text + "\n")

