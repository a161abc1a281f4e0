"""The message catalog: which language to speak, and the gettext translations of that language.

Messages are written in English in the source and marked with `_()` (or `N_()` where a constant is
built at import, before a language is chosen, and translated where it is shown). Babel extracts
them into engine/locale/tanren.pot (`make i18n`); the Japanese catalog is
engine/locale/ja/LC_MESSAGES/tanren.po, compiled into the tanren.mo beside it, which is committed
so that running tanren needs nothing but the standard library's gettext.

Nothing here installs a translation globally: callers hold the Catalog they were given (the
workbench keeps one on its App). gettext's own cache of loaded .mo files is the only state.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import TanrenError
from engine.phrases import Phrase, phrase

DOMAIN = "tanren"
LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("en", "ja")  # English is the source text: it needs no catalog
# every message wrapped in ⟦…⟧, which shows text that bypasses the catalog (tests, TANREN_LANG=pseudo)
PSEUDO = "pseudo"
Gettext = Callable[..., str]  # Catalog.gettext: the message, with `{field}`s filled from keywords
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX precedence: the first one set wins


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


class PseudoTranslations(gettext.NullTranslations):
    """Every message that passes through the catalog comes back as ⟦message⟧."""

    def gettext(self, message: str) -> str:
        return f"⟦{message}⟧"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return f"⟦{msgid1 if n == 1 else msgid2}⟧"


@dataclass(frozen=True)
class Catalog:
    """The messages of one language."""

    language: str
    translations: gettext.NullTranslations

    def gettext(self, message: str, **values: object) -> str:
        """The message in this language, with `{name}` fields filled from `values`."""
        text = self.translations.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The form for `n` (Japanese has one); `{n}` and `values` are filled in."""
        return self.translations.ngettext(singular, plural, n).format(n=n, **values)


def load_catalog(language: str) -> Catalog:
    if language == PSEUDO:
        return Catalog(PSEUDO, PseudoTranslations())
    if language not in LANGUAGES:
        raise unknown_language(language, phrase("the language asked for"))
    if language == "en":
        return Catalog("en", gettext.NullTranslations())
    # fallback=False: a missing catalog is a broken install, not a reason to show English quietly
    return Catalog(language, gettext.translation(DOMAIN, LOCALE_DIR, languages=[language]))


def unknown_language(value: str, where: str | Phrase) -> TanrenError:
    return TanrenError(phrase("unknown language {value!r}", value=value), where=where,
                       hint=phrase("use one of: {choices}", choices=", ".join(LANGUAGES)))


def locale_language(environ: Mapping[str, str]) -> str | None:
    """The language of the POSIX locale (ja_JP.UTF-8 -> ja), if it is one tanren speaks."""
    value = next((environ[name] for name in LOCALE_VARIABLES if environ.get(name)), "")
    code = value.split(".")[0].split("@")[0].split("_")[0].lower()
    return code if code in LANGUAGES else None


def choose_language(setting: str | None, environ: Mapping[str, str]) -> str:
    """The first that is set: the settings file's ui.language, TANREN_LANG, the locale; else English.

    A language named on purpose (the setting, TANREN_LANG) must be one tanren speaks; a locale
    it does not speak (fr_FR, C) means English, since the locale is set for other programs too.
    """
    if setting:
        return setting
    chosen = environ.get("TANREN_LANG", "").strip()
    if chosen:
        if chosen not in (*LANGUAGES, PSEUDO):
            raise unknown_language(chosen, "TANREN_LANG")
        return chosen
    return locale_language(environ) or "en"
