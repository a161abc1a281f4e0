"""The new-run form's memory estimate (ctrl+g): what `tanren train --estimate` says, in the form."""

from __future__ import annotations

from pathlib import Path

from engine.paths import Home
from tests.tui_helpers import fill, fixed_system, wait_until
from tui.app import TanrenApp


async def test_the_form_shows_the_estimate_and_starts_nothing(home: Home, tiny_model_dir: Path) -> None:
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("3", "n")
        form = app.screen
        await fill(pilot, "field-model-base", str(tiny_model_dir))
        await fill(pilot, "field-data-max-length", "128")
        await pilot.press("ctrl+g")
        status = lambda: str(form.query_one(".form-error").render())  # noqa: E731
        await wait_until(pilot, lambda: "memory estimate" in status(), "the estimate")
        assert "activations" in status() and "fits" in status()
        assert app.screen is form and not home.runs.exists()
