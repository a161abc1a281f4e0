"""The CLI speaks through the catalog: argparse's own strings and tanren's errors are translated,
and in the pseudo language nothing a test run of the CLI prints bypasses the catalog."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from engine.arguments import translate_argparse_message
from engine.cli import build_parser, run
from engine.errors import ConfigError
from engine.i18n import load_catalog
from engine.paths import Home
from engine.phrases import phrase
from engine.textwidth import display_width, wrap_cells
from tests.data_files import write_chat_data, write_lines
from tests.pseudo_scan import allowlist, outside_catalog
from tests.tui_helpers import finished_run
from tui.entry import registrars

JA = load_catalog("ja").gettext
# what help and usage show besides messages: the commands, options, metavars and choices
CLI_SYNTAX = (
    r"-{1,2}[a-z][\w-]*,?|\[?-{1,2}[a-z][\w-]*\]?|\[|\]|\.\.\.\]*|\|",  # options, usage brackets
    r"[\[\]A-Z_.=:|]*[A-Z][\[\]A-Z_.=:|]*",  # metavars (RUN, SECTION.FIELD=VALUE, RUN|DIR)
    r"\{[^\s{}]+\}\]*|'[\w.-]+',?|[a-z]+(\|[a-z]+)+",  # choices: {a,b}, 'a', in errors, left|right
    r"/[a-z]+,?",  # the terminal chat's /commands
    r"[./\w-]*/[\w./-]*|[\w./-]+:\d+:?",  # paths, file:line
)


def test_argparse_errors_are_translated_by_their_message_ids() -> None:
    message = "argument --method: invalid choice: 'nope' (choose from 'qlora', 'lora')"
    assert translate_argparse_message(message, JA) == \
        "引数 --method: 無効な選択です: 'nope'（'qlora', 'lora' から選んでください）"
    assert translate_argparse_message("the following arguments are required: run", JA) == "次の引数が必要です: run"
    assert translate_argparse_message("a message argparse never writes", JA) == "a message argparse never writes"


def test_help_and_usage_use_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser(registrars(), load_catalog("ja"))
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "--bad"])
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "使い方: tanren [-h] COMMAND ...", "tanren: エラー: 認識できない引数です: --bad"]
    help_text = parser.format_help()
    assert "オプション:" in help_text and "このヘルプを表示して終了します" in help_text and "options:" not in help_text


@pytest.mark.parametrize("command", ["train", "eval", "export", "serve", "chat"])
def test_japanese_help_fits_an_80_column_terminal(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps at COLUMNS - 2
    parser = build_parser(registrars(), load_catalog("ja"))
    text = _subparser(parser, command).format_help()
    assert max(display_width(line) for line in text.splitlines()) <= 80
    usage = text.splitlines()[:2]  # the usage's second line starts under the first one's arguments
    assert display_width(usage[0].split("[")[0]) == len(usage[1]) - len(usage[1].lstrip())


def test_wrapping_breaks_between_japanese_characters_and_keeps_punctuation_on_its_line() -> None:
    assert wrap_cells("学習率を徐々に下げます。cosine も選べます", 12) == ["学習率を徐々", "に下げます。", "cosine も選", "べます"]
    assert wrap_cells("a plain sentence wraps at spaces", 16) == ["a plain sentence", "wraps at spaces"]


def test_an_error_is_translated_where_it_is_shown_and_stays_english_in_python() -> None:
    error = ConfigError(phrase("unknown language {value!r}", value="fr"), where="ui.language",
                        hint=phrase("use one of: {choices}", choices="en, ja"))
    assert str(error) == "unknown language 'fr'" and error.hint == "use one of: en, ja"
    assert error.render() == "error: unknown language 'fr'\n  at: ui.language\n  hint: use one of: en, ja"
    assert error.render(load_catalog("pseudo").gettext) == \
        "⟦error: ⟦unknown language 'fr'⟧⟧\n  ⟦at: ui.language⟧\n  ⟦hint: ⟦use one of: en, ja⟧⟧"
    assert phrase("cannot read it: {error}", error=OSError("disk full")).values == (("error", "disk full"),)


def test_json_output_is_the_same_in_every_language(home: Home, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    finished_run(home, "r1")  # its status keeps the phrase of its reason
    said = []
    for language in ("en", "pseudo"):
        monkeypatch.setenv("TANREN_LANG", language)
        said.append(_say(capsys, "runs", "--json"))
    assert said[0] == said[1]
    assert json.loads(said[0])[0]["status"] == {"state": "done", "reason": "30 steps, final loss 0.8211", "hint": "",
                                                "updated": 99.0}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand, as the words that name it."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


def _names(parser: argparse.ArgumentParser) -> set[str]:
    """The words help shows as they are: command names, and positional arguments' names."""
    words = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words |= set(action.choices) | {word for sub in action.choices.values() for word in _names(sub)}
        elif not action.option_strings:
            words.add(action.metavar or action.dest)
    return words


def _allowed(parser: argparse.ArgumentParser) -> re.Pattern[str]:
    """What the scan lets through: the syntax of help, the names of commands and arguments, the run."""
    names = "|".join(sorted(map(re.escape, _names(parser) | {"tanren", "cli-run"}), key=len, reverse=True))
    return allowlist(*CLI_SYNTAX, rf"\[?({names})\]?:?")


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return next(action.choices[name] for action in parser._actions if isinstance(action, argparse._SubParsersAction))


def _say(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What `tanren ARGV` prints, on stdout and stderr (help and usage errors exit)."""
    try:
        run(argv, registrars())
    except SystemExit:
        pass
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_a_test_run_of_the_cli_prints_only_catalog_text(home: Home, tmp_path: Path, tiny_model_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TANREN_LANG", "pseudo")
    monkeypatch.chdir(tmp_path)
    data = write_chat_data(tmp_path / "chat.jsonl", examples=12)
    bad = write_lines(tmp_path / "bad.jsonl", ['{"messages": [}', '{"messages": [{"role": "user", "content": "x"}]}'])
    base = str(tiny_model_dir)
    parser = build_parser(registrars(), load_catalog("pseudo"))
    said = {" ".join(command): _say(capsys, *command, "--help") for command in _commands(parser)}
    for argv in (["models", "--bad"], ["train", "--method", "nope", "--data", str(data)],
                 ["data", "check", str(bad), "--no-tokens"], ["data", "check", str(data), "--base", base],
                 ["train", "--base", base, "--data", str(data), "--name", "cli-run", "--max-steps", "2", "--follow"],
                 ["logs", "cli-run"], ["runs"], ["exports", "cli-run"], ["logs", "no-such-run"], ["settings"]):
        said[" ".join(argv)] = _say(capsys, *argv)
    assert "cli-run" in said["runs"] and "bad.jsonl:1" in said[f"data check {bad} --no-tokens"]
    left = {argv: words for argv, text in said.items()
            if (words := outside_catalog(text.replace(str(tmp_path), "PATH").replace(base, "PATH"), _allowed(parser)))}
    assert left == {}, "\n".join(f"{argv}: {words}" for argv, words in left.items())
