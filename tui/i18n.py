"""The workbench speaks through the Catalog its App holds (engine.i18n chooses and loads it).

Widgets and screens translate with `self._("message {field}", field=value)`. Bindings, screen
names and form labels are class constants built at import, before a language is chosen, so they
are marked with N_() there and translated per instance: the App's catalog is known by then.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingsMap

from engine.i18n import Catalog, Gettext

if TYPE_CHECKING:
    from textual.app import App


def catalog_of(app: App) -> Catalog:
    return app.catalog  # type: ignore[attr-defined] - every screen runs in a TanrenApp


def translated(binding: Binding, _: Gettext) -> Binding:
    return replace(binding, description=_(binding.description) if binding.description else "",
                   tooltip=_(binding.tooltip) if binding.tooltip else "")


def translated_bindings(bindings: BindingsMap, _: Gettext) -> BindingsMap:
    return BindingsMap.from_keys({key: [translated(binding, _) for binding in per_key]
                                  for key, per_key in bindings.key_to_bindings.items()})


class Localized:
    """A widget or screen whose text, and bindings, are in the App's language."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._bindings = translated_bindings(self._bindings, self._)

    def _(self, message: str, **values: object) -> str:
        return catalog_of(self.app).gettext(message, **values)

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        return catalog_of(self.app).ngettext(singular, plural, n, **values)
