from __future__ import annotations

from textual.widgets import DataTable

from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from tui.app import TanrenApp


async def test_workbench_opens_on_the_default_model_and_quits(home: Home) -> None:
    app = TanrenApp(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#models", DataTable)
        assert table.row_count >= 1
        assert table.get_row_at(0)[0] == DEFAULT_MODEL
        assert DEFAULT_MODEL in app.sub_title
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"
        await pilot.press("q")
    assert app.return_code == 0


def test_every_binding_has_an_id_and_description() -> None:
    for binding in TanrenApp.BINDINGS:
        assert binding.id and binding.description
