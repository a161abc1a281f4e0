"""engine, export and evals are headless: they never import Textual or the TUI."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HEADLESS = ("engine", "export", "evals")


def _all_modules(package: str) -> list[str]:
    path = REPO / package
    found = pkgutil.walk_packages([str(path)], prefix=f"{package}.")
    return [package] + [m.name for m in found if not m.name.endswith("__main__")]


@pytest.mark.parametrize("package", HEADLESS)
def test_headless_package_never_loads_textual(package: str) -> None:
    modules = _all_modules(package)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert len(modules) >= 1
    assert json.loads(result.stdout) == []


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken" in result.stdout
