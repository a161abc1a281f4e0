"""`tanren settings`: the user's settings file, and the language tanren speaks."""

from __future__ import annotations

import argparse
import os

from engine.i18n import LANGUAGES, Gettext, choose_language, load_catalog
from engine.paths import Home
from engine.settings import FILE, read_settings, write_settings

AUTO = "auto"  # unset: TANREN_LANG, then the locale


def register(subparsers: argparse._SubParsersAction, _: Gettext) -> None:
    file = f"$TANREN_HOME/{FILE}"
    parser = subparsers.add_parser("settings", help=_("show or change the user settings ({file})", file=file))
    parser.set_defaults(handler=_show)
    actions = parser.add_subparsers(dest="setting", metavar="SETTING")
    language = actions.add_parser("language", help=_("the language of the workbench and the CLI: ja, en, or auto "
                                                     "(TANREN_LANG, then the locale)"))
    language.add_argument("language", choices=[*LANGUAGES, AUTO])
    language.set_defaults(handler=_set_language)


def _show(args: argparse.Namespace) -> int:
    home = Home.from_env()
    setting = read_settings(home).ui.language
    language = choose_language(setting, os.environ)
    _ = load_catalog(language).gettext  # the language just set, if it was changed
    print(_("ui.language: {setting} (speaking {language})", setting=setting or AUTO, language=language))
    print(_("file: {path}", path=home.root / FILE))
    return 0


def _set_language(args: argparse.Namespace) -> int:
    home = Home.from_env()
    write_settings(home, read_settings(home).with_language(None if args.language == AUTO else args.language))
    return _show(args)
