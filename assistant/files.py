"""File writes a crash cannot leave half done: write beside the target, fsync, then rename.

    >>> with atomic_write(Path("notes.json")) as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")

Readers see the old `notes.json` or the new one, never a part of it, and after the block the
new one is on disk (the file and the folder entry naming it were fsynced).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(target: Path, temp: Path | None = None) -> Iterator[Path]:
    """Yield a temp path beside `target`; the file or folder written there replaces `target` whole.

    On leaving the block the temp is fsynced (a folder: every file in it, then the folder),
    moved onto `target` with os.replace, and `target`'s folder is fsynced. On an error the temp
    is removed and `target` is left as it was. `temp` names the temp path when the caller needs
    a name it can recognise later; by default it is `.<name>.<random>.tmp`, so writers running
    at once do not share one. Whatever holds the name of a new folder is moved aside first and
    deleted after: unlike a file, a folder is not replaced in one step, so there is a moment
    without one.
    """
    target = Path(target)
    temp = Path(temp) if temp else target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    aside = None
    try:
        yield temp
        _fsync_tree(temp)
        if temp.is_dir() and not temp.is_symlink() and os.path.lexists(target):
            aside = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.replace(target, aside)
        os.replace(temp, target)
    except BaseException:
        _remove(temp)
        raise
    fsync_dir(target.parent)
    if aside is not None:
        _remove(aside)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder `path` (names created, renamed, removed) durable.

    Best effort: some file systems (network and FUSE mounts) cannot sync a folder, and by the
    time this runs the rename it would secure has already happened, so failing here would report
    a write that succeeded as failed.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        log.debug("cannot open %s to sync it: %s", path, e)
        return
    try:
        os.fsync(fd)
    except OSError as e:
        log.debug("cannot sync folder %s: %s", path, e)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if path.is_symlink():  # the link itself is a folder entry: fsync_dir of its folder covers it
        return
    if path.is_dir():
        for child in path.iterdir():
            _fsync_tree(child)
        fsync_dir(path)
        return
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
