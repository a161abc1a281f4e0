from __future__ import annotations

from pathlib import Path

import pytest

from engine.atomic import atomic_directory, atomic_write_text
from engine.errors import InvalidNameError
from engine.paths import Home, validate_name


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "/abs", "x" * 200, "a\nb", "a b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(name)


def test_run_dirs_stay_inside_home(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert home.run_dir("jp-faq_v1.2") == tmp_path / "runs" / "jp-faq_v1.2"
    with pytest.raises(InvalidNameError):
        home.run_dir("../outside")


def test_home_follows_the_environment(home: Home, tmp_path: Path) -> None:
    assert home.root == tmp_path / "home"


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "一")
    atomic_write_text(target, "二")
    assert target.read_text(encoding="utf-8") == "二"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_directory_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_old_folder(tmp_path: Path) -> None:
    final = tmp_path / "model"
    final.mkdir()
    (final / "old").write_text("old")
    with atomic_directory(final) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
