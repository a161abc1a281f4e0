"""The wrapping log: lines wrap at the log's own width, whenever they are written."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tui.widgets.log_lines import LogLines


class OneLog(App):
    def compose(self) -> ComposeResult:
        yield LogLines(id="log")


async def test_lines_written_after_an_empty_first_layout_wrap_at_the_logs_width() -> None:
    # the log is laid out before it has any line, as a run's log is before its events are read
    async with OneLog().run_test(size=(120, 20)) as pilot:
        await pilot.pause()
        log = pilot.app.query_one(LogLines)
        log.write_lines(["x" * 100, "y" * 200])
        await pilot.pause()
        width = log.scrollable_content_region.width
        assert width > 100
        assert [strip.text.rstrip() for strip in log.lines] == ["x" * 100, "y" * width, "y" * (200 - width)]
