"""A DataTable whose header always matches its columns' widths."""

from __future__ import annotations

from textual import events
from textual.widgets import DataTable

from engine.textwidth import display_width, shorten_middle


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


def fit_columns(headers: list[str], rows: list[list[str]], width: int, drop_first: tuple[str, ...]
                ) -> tuple[list[str], list[list[str]]]:
    """The columns that fit in `width` cells, dropping the headers named in `drop_first` in that order
    (the less important first) until they do. Widths are terminal cells: Japanese counts double."""
    keep = list(range(len(headers)))
    for header in drop_first:
        if _needed(headers, rows, keep) <= width:
            break
        if header in headers:
            keep.remove(headers.index(header))
    return [headers[i] for i in keep], [[row[i] for i in keep] for row in rows]


def narrow_column(headers: list[str], rows: list[list[str]], width: int, column: int, least: int = 16
                  ) -> list[list[str]]:
    """The rows with the cells of `column` shortened in the middle (paths keep their file names) so
    that the table fits in `width` cells, but never below `least`."""
    others = _needed(headers, rows, [i for i in range(len(headers)) if i != column])
    room = max(least, width - others - 2, display_width(headers[column]))
    return [[shorten_middle(cell, room) if i == column else cell for i, cell in enumerate(row)] for row in rows]


def _needed(headers: list[str], rows: list[list[str]], columns: list[int]) -> int:
    """The cells a table of these columns takes: DataTable pads every cell by one on each side."""
    return sum(max(display_width(str(row[i])) for row in [headers, *rows]) + 2 for i in columns)
