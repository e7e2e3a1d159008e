"""Atomic writes: the target is the old one or the new one, never a part, and no temp is left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.files import atomic_write


def test_a_file_replaces_the_old_one_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "notes.json"
    target.write_text("old")
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and not tmp.exists()
        tmp.write_text("new")
        assert target.read_text() == "old"  # nobody sees the new one before the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json"]


def test_an_error_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "notes.json"
    target.write_text("old")
    with pytest.raises(OSError, match="disk full"), atomic_write(target) as tmp:
        tmp.write_text("ha")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json"]


def test_a_folder_replaces_the_old_one_under_a_named_temp(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with atomic_write(target, temp=tmp_path / ".building") as tmp:
        assert tmp == tmp_path / ".building"
        tmp.mkdir()
        (tmp / "new.bin").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_link_is_swapped_without_touching_what_it_pointed_at(tmp_path: Path) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    (tmp_path / "current").symlink_to("v1")
    with atomic_write(tmp_path / "current") as link:
        os.symlink("v2", link)
    assert os.readlink(tmp_path / "current") == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1", "v2"]
