"""Every workbench screen in Japanese at 80x24 and 120x40, from the same fixed data as the English
snapshots (update after a deliberate change: pytest --snapshot-update, then look at them)."""

from __future__ import annotations

import pytest

from engine.paths import Home
from tests.test_tui_snapshots import SCREENS, SIZES, app_for, stage  # noqa: F401 - stage is a fixture


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_every_screen_in_japanese(stage: Home, snap_compare, screen: str, size) -> None:  # noqa: F811
    assert snap_compare(app_for(stage, "ja"), terminal_size=size, run_before=SCREENS[screen])
