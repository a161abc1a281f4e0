"""A DataTable whose header always matches its columns' widths."""

from __future__ import annotations

from textual import events
from textual.widgets import DataTable


class Table(DataTable):
    """DataTable measures new rows when the app is idle, but lines it drew before that measurement
    stay in its render caches under an unchanged key; a header drawn between `add_row` and the
    idle pass kept its labels' widths above wider rows. Dropping the caches whenever the widths
    change makes the next frame draw everything with the measured widths."""

    def _widths(self) -> list[int]:
        return [column.content_width for column in self.columns.values()]

    async def _on_idle(self, event: events.Idle) -> None:
        before = self._widths()
        await super()._on_idle(event)
        if self._widths() != before:
            self._clear_caches()  # private, but the only way to drop the stale lines; see the snapshot tests
