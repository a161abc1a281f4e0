"""The message catalog: which language is chosen, the settings file that chooses it, and a
Japanese catalog that is complete, compiled and consistent with the source."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from engine.errors import TanrenError
from engine.i18n import LOCALE_DIR, choose_language, load_catalog
from engine.paths import Home
from engine.settings import FILE, Settings, read_settings, user_catalog, write_settings
from tests.cli import tanren

REPO = Path(__file__).resolve().parent.parent
JA_PO = LOCALE_DIR / "ja" / "LC_MESSAGES" / "tanren.po"
FIELD = re.compile(r"\{(\w+)[^}]*\}")
PERCENT_FIELD = re.compile(r"%(?:\(\w+\))?[sr]")  # argparse's own messages
SOURCES = ("engine", "tui", "export", "evals")


@pytest.mark.parametrize(("setting", "environ", "chosen"), [
    ("ja", {"TANREN_LANG": "en", "LANG": "en_US.UTF-8"}, "ja"),
    (None, {"TANREN_LANG": "ja", "LANG": "en_US.UTF-8"}, "ja"),
    (None, {"LC_ALL": "ja_JP.UTF-8", "LANG": "en_US.UTF-8"}, "ja"),
    (None, {"LC_MESSAGES": "ja_JP.eucJP", "LANG": "C"}, "ja"),
    (None, {"LC_ALL": "", "LANG": "ja_JP.UTF-8"}, "ja"),
    (None, {"LANG": "fr_FR.UTF-8"}, "en"),
    (None, {"LANG": "C"}, "en"),
    (None, {}, "en"),
])
def test_the_first_language_that_is_set_wins(setting, environ, chosen) -> None:
    assert choose_language(setting, environ) == chosen


def test_a_language_named_on_purpose_must_be_one_tanren_speaks() -> None:
    with pytest.raises(TanrenError, match="unknown language 'fr'") as error:
        choose_language(None, {"TANREN_LANG": "fr"})
    assert error.value.where == "TANREN_LANG" and error.value.hint == "use one of: en, ja"


def test_settings_are_created_on_the_first_change_and_read_back(home: Home) -> None:
    assert read_settings(home) == Settings() and not (home.root / FILE).exists()
    write_settings(home, Settings().with_language("ja"))
    assert (home.root / FILE).read_text(encoding="utf-8") == "ui:\n  language: ja\n"
    assert read_settings(home).ui.language == "ja"
    assert user_catalog(home, {"TANREN_LANG": "en"}).gettext("Dashboard") == "ダッシュボード"


@pytest.mark.parametrize("text", ["ui: {language: fr}\n", "ui: [1\n", "theme: dark\n"])
def test_a_settings_file_tanren_cannot_read_is_one_clear_error(home: Home, text: str) -> None:
    home.root.mkdir(parents=True)
    (home.root / FILE).write_text(text, encoding="utf-8")
    with pytest.raises(TanrenError) as error:
        read_settings(home)
    assert FILE in str(error.value.where) and error.value.hint


def test_tanren_settings_language_writes_the_file(home: Home) -> None:
    result = tanren("settings", "language", "ja", home=home)
    # said in the language just chosen
    assert result.returncode == 0 and "ui.language: ja（表示言語 ja）" in result.stdout
    assert read_settings(home).ui.language == "ja"
    assert "ui.language: auto (speaking en)" in tanren("settings", "language", "auto", home=home).stdout
    assert read_settings(home).ui.language is None


def test_every_message_in_the_source_is_translated_with_the_same_fields() -> None:
    source = {message[2] for folder in SOURCES
              for message in extract_from_dir(REPO / folder, method_map=[("**.py", "python")],
                                              keywords={**DEFAULT_KEYWORDS, "N_": None, "phrase": None})}
    catalog = read_po(JA_PO.open("rb"))
    translated = {message.id: message.string for message in catalog if message.id}
    assert source == set(translated), "run scripts/i18n.sh, then translate what it added"
    for message in catalog:
        if message.id:
            assert message.string and "fuzzy" not in message.flags, message.id
            assert set(FIELD.findall(message.id)) == set(FIELD.findall(message.string)), message.id
            assert sorted(PERCENT_FIELD.findall(message.id)) == sorted(PERCENT_FIELD.findall(message.string)), \
                message.id


def test_the_committed_mo_file_is_the_compiled_po_file() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, read_po(JA_PO.open("rb")))
    assert JA_PO.with_suffix(".mo").read_bytes() == compiled.getvalue(), "run scripts/i18n.sh to compile it"


def test_the_pseudo_catalog_wraps_every_message() -> None:
    pseudo = load_catalog("pseudo")
    assert pseudo.gettext("started {name}", name="x") == "⟦started x⟧"
    assert pseudo.ngettext("{n} run", "{n} runs", 2) == "⟦2 runs⟧"
