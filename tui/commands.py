"""The command palette lists every key binding active on the current screen, by description."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class BindingsProvider(Provider):
    """Each of the workbench's own bindings (those with an id) as a command that runs its action."""

    def _commands(self) -> list[tuple[str, str, partial]]:
        commands, seen = [], set()
        for namespace, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not binding.id or not binding.description or not enabled or binding.id in seen:
                continue
            seen.add(binding.id)
            key = self.app.get_key_display(binding)
            help_text = self.app.catalog.gettext("key: {key}", key=key)
            help_text += f" · {binding.tooltip}" if binding.tooltip else ""
            commands.append((binding.description, help_text, partial(self.app.run_action, binding.action, namespace)))
        return sorted(commands, key=lambda command: command[0])

    async def discover(self) -> Hits:
        for name, help_text, run in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, run in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
