"""The user's own settings, `$TANREN_HOME/settings.yaml`, created on the first change.

    ui:
      language: ja   # ja or en; unset: TANREN_LANG, then the locale (LC_ALL, LC_MESSAGES, LANG)

Only what a user sets is written; a missing file means every default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import yaml

from engine.atomic import atomic_write_text
from engine.errors import ConfigError
from engine.i18n import LANGUAGES, Catalog, choose_language, load_catalog, unknown_language
from engine.paths import Home
from engine.phrases import phrase

FILE = "settings.yaml"


@dataclass(frozen=True)
class UiSettings:
    language: str | None = None  # None: TANREN_LANG, then the locale


@dataclass(frozen=True)
class Settings:
    ui: UiSettings = field(default_factory=UiSettings)

    def with_language(self, language: str | None) -> Settings:
        if language is not None and language not in LANGUAGES:
            raise unknown_language(language, "ui.language")
        return replace(self, ui=replace(self.ui, language=language))


def read_settings(home: Home) -> Settings:
    path = home.root / FILE
    if not path.is_file():
        return Settings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(phrase("{path} is not valid YAML: {problem}", path=path, problem=str(exc)), where=str(path),
                          hint=phrase("fix it, or delete it to go back to the defaults")) from exc
    ui = data.get("ui") if isinstance(data, dict) else None
    unknown = set(data) - {"ui"} if isinstance(data, dict) else {"(not a mapping)"}
    if unknown or not isinstance(ui or {}, dict) or set(ui or {}) - {"language"}:
        raise ConfigError(phrase("{path} holds settings tanren does not know", path=path), where=str(path),
                          hint=phrase("it takes `{example}` (or en); delete it to go back to the defaults",
                                      example="ui: {language: ja}"))
    language = (ui or {}).get("language")
    if language is not None and language not in LANGUAGES:
        raise unknown_language(str(language), f"{path}: ui.language")
    return Settings(UiSettings(language=language))


def write_settings(home: Home, settings: Settings) -> None:
    ui = {"language": settings.ui.language} if settings.ui.language else {}
    text = yaml.safe_dump({"ui": ui} if ui else {}, sort_keys=False, allow_unicode=True)
    atomic_write_text(home.root / FILE, text)


def user_catalog(home: Home, environ: Mapping[str, str] = os.environ) -> Catalog:
    """The catalog of the language this user asked for, by settings, TANREN_LANG or the locale."""
    return load_catalog(choose_language(read_settings(home).ui.language, environ))
