"""A line plot of training and evaluation loss in braille dots (2x4 points per cell).

Braille keeps the plot legible at 80x24 over SSH and needs no graphics protocol; each series
is averaged per point column, so thousands of steps cost no more to draw than a screenful.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from tui.i18n import Localized

# Bit of each dot in a braille cell, indexed [row][column] (Unicode's dot numbering).
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
AXIS_WIDTH = 7


def _column_means(points: Mapping[int, float], low: int, high: int, columns: int) -> dict[int, float]:
    """Average of the values that fall into each of `columns` point columns spanning steps low..high."""
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    span = max(1, high - low)
    for step, value in points.items():
        column = min(columns - 1, (step - low) * (columns - 1) // span) if high > low else 0
        sums[column] = sums.get(column, 0.0) + value
        counts[column] = counts.get(column, 0) + 1
    return {column: sums[column] / counts[column] for column in sorted(sums)}


def plot_cells(series: Sequence[Mapping[int, float]], width: int, height: int
               ) -> tuple[list[list[tuple[int, int]]], float, float] | None:
    """Braille cells [row][column] as (dot bits, index of the series drawn last there, or -1),
    and the value range shown (top, bottom); None when there is nothing to plot."""
    values = [v for points in series for v in points.values()]
    steps = [s for points in series for s in points]
    if not values or width < 1 or height < 1:
        return None
    top, bottom = max(values), min(values)
    if top == bottom:
        top, bottom = top + 0.5, bottom - 0.5
    low, high = min(steps), max(steps)
    cells = [[(0, -1) for _ in range(width)] for _ in range(height)]
    x_points, y_points = width * 2, height * 4

    def dot(x: int, y: int, index: int) -> None:
        bits, _ = cells[y // 4][x // 2]
        cells[y // 4][x // 2] = (bits | _DOTS[y % 4][x % 2], index)

    for index, points in enumerate(series):
        previous = None
        for x, value in _column_means(points, low, high, x_points).items():
            y = round((top - value) / (top - bottom) * (y_points - 1))
            if previous is None:
                dot(x, y, index)
            else:
                _line(previous, (x, y), lambda px, py: dot(px, py, index))
            previous = (x, y)
    return cells, top, bottom


def _line(start: tuple[int, int], end: tuple[int, int], dot) -> None:
    """Dots from start (exclusive) to end, with no vertical gaps between neighbouring columns."""
    (x0, y0), (x1, y1) = start, end
    last_y = y0
    for x in range(x0 + 1, x1 + 1):
        y = round(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
        for between in range(min(last_y, y) + 1, max(last_y, y)):
            dot(x if abs(between - y) < abs(between - last_y) else x - 1, between)
        dot(x, y)
        last_y = y


class LossPlot(Localized, Widget):
    """Training loss and eval loss against the step; the axis shows the range of values."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"loss-plot--loss", "loss-plot--eval", "loss-plot--axis"}
    DEFAULT_CSS = """
    LossPlot { height: 1fr; min-height: 4; }
    LossPlot > .loss-plot--loss { color: $accent; }
    LossPlot > .loss-plot--eval { color: $warning; }
    LossPlot > .loss-plot--axis { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._series: tuple[Mapping[int, float], Mapping[int, float]] = ({}, {})

    def plot(self, losses: Mapping[int, float], eval_losses: Mapping[int, float]) -> None:
        self._series = (dict(losses), dict(eval_losses))
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        drawn = plot_cells(self._series, max(1, width - AXIS_WIDTH), height)
        if drawn is None:
            return Text(self._("no loss logged yet"), style=self.get_component_rich_style("loss-plot--axis"))
        cells, top, bottom = drawn
        styles = [self.get_component_rich_style(f"loss-plot--{name}") for name in ("loss", "eval")]
        axis = self.get_component_rich_style("loss-plot--axis")
        text = Text(no_wrap=True, overflow="crop")
        for row, line in enumerate(cells):
            label = f"{top:.4g}" if row == 0 else f"{bottom:.4g}" if row == height - 1 else ""
            text.append(f"{label[:AXIS_WIDTH - 1]:>{AXIS_WIDTH - 1}}┤" if label else " " * (AXIS_WIDTH - 1) + "│", axis)
            for bits, index in line:
                text.append(chr(0x2800 + bits), styles[index] if index >= 0 else axis)
            if row < height - 1:
                text.append("\n")
        return text
