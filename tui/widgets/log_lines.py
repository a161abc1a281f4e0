"""A log whose long lines wrap onto the next rows: at 80 columns a line cut at the right edge
loses what it says last ("... x 4 accumulation x 1 processes")."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from textual.widgets import RichLog

MAX_LINES = 500


class LogLines(RichLog):
    """Textual's Log draws each line on one row; this one wraps them, and keeps their text."""

    def __init__(self, *, id: str | None = None) -> None:
        # min_width: RichLog renders at least 78 columns wide by default, which a bordered
        # log at 80 columns cannot show, so the ends of lines would be cut again
        super().__init__(max_lines=MAX_LINES, wrap=True, min_width=1, markup=False, highlight=False, id=id)
        self.messages: deque[str] = deque(maxlen=MAX_LINES)  # the lines as written, unwrapped
        self.wrapped_at = 0  # the width the lines shown were wrapped to

    def write_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.messages.append(line)
            # the width given, since RichLog measures a line against the console, not against itself
            self.write(line, width=self.wrapped_at or None)

    def on_resize(self) -> None:
        # RichLog wraps a line once, at the width it has when the line is written (lines written
        # before the first layout, or before the terminal was resized, have another width)
        self.call_after_refresh(self._wrap_again)

    def _wrap_again(self) -> None:
        # the width is kept even with no lines yet: lines written later without it would be
        # wrapped at the console's width (80 columns), not the log's
        width = self.scrollable_content_region.width
        if width and width != self.wrapped_at:
            self.wrapped_at = width
            super().clear()
            for line in self.messages:
                self.write(line, width=width)

    def clear(self) -> LogLines:
        self.messages.clear()
        super().clear()
        return self
