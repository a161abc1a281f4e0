"""Reproducible installs: the set-up installs the versions pinned in scripts/constraints.txt, the pins
sit inside pyproject.toml's ranges, and the libraries tanren drives have upper bounds."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
BOUNDED = ("transformers", "trl", "peft", "accelerate", "bitsandbytes", "textual")
NOT_PINNED = ("torch",)  # the set-up installs it first, a CPU or a CUDA build


def _dependencies() -> dict[str, Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return {canonicalize_name(r.name): r for r in map(Requirement, requirements)}


def _pins() -> dict[str, str]:
    lines = (REPO / "scripts" / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pins}


def test_every_dependency_is_pinned_inside_its_range() -> None:
    pins = _pins()
    for name, requirement in _dependencies().items():
        if name in NOT_PINNED:
            continue
        assert name in pins, f"{name} is not pinned in scripts/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"the pin {name}=={pins[name]} is outside pyproject.toml's {requirement}"


def test_the_libraries_tanren_drives_stop_below_their_next_major_release() -> None:
    dependencies = _dependencies()
    for name in BOUNDED:
        assert any(spec.operator == "<" for spec in dependencies[name].specifier), f"{name} has no upper bound"


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the pins are for the Python the suite runs on")
def test_the_suite_runs_on_the_pinned_versions() -> None:
    """What `make test` installed is what the file pins: a pin moved without running the suite fails here."""
    for name, version in _pins().items():
        assert metadata.version(name) == version, f"{name} {metadata.version(name)} is installed, {version} is pinned"


def test_tanren_version_lists_what_results_depend_on(home) -> None:
    import json

    from tests.cli import tanren

    result = tanren("version", "--json", home=home)
    assert result.returncode == 0, result.stderr
    versions = json.loads(result.stdout)
    assert {"python", "tanren", "torch", "transformers", "trl", "peft", "bitsandbytes", "llama-cpp-python",
            "textual"} <= set(versions)
    assert versions["transformers"] == metadata.version("transformers")
    assert versions["torch"].split(" (")[0] == metadata.version("torch")  # then its CUDA, or "CPU build"
