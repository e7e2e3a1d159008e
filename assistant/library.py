"""The documents folder as the window uses it: what it offers, uploads, removals, and a document
read whole to be shown.

What counts as a document is ingest's: the listing is ingest.walk's and an upload's name is
checked with ingest.ignored, so the documents tab offers exactly the files the index build
reads (or reports as skipped), and an upload lands only where the build will read it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from .config import Config
from .files import atomic_write
from .ingest import SUFFIXES, IngestError, SourceFile, ignored, read_bytes, read_document, walk
from .render import shown
from .schema import Document

NAME_MAX_BYTES = 200  # an uploaded file's name, in UTF-8 (file systems allow 255 bytes)
_UNSAFE_NAME = re.compile(r"[^\w.\- ()+,]+", re.UNICODE)


def check_upload_name(name: str) -> tuple[str | None, str]:
    """(safe file name, "") for an acceptable upload name, or (None, reason) for a refused one.

    The safe name is at most NAME_MAX_BYTES in UTF-8, keeps its type and is one the index
    build reads (not one that ingest.ignored passes over).
    """
    raw = str(name or "")
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", raw) or os.path.isabs(raw):
        return None, "absolute file names are not allowed"
    parts = re.split(r"[\\/]+", raw)
    if any(p == ".." for p in parts):
        return None, "path traversal (..) is not allowed"
    if len([p for p in parts if p not in ("", ".")]) > 1:
        return None, "folder names are not allowed; upload the file itself"
    base = parts[-1] if parts else ""
    safe = _UNSAFE_NAME.sub("_", shown(base)).strip(" .")  # a leading dot would hide the file
    stem, suffix = safe[: len(safe) - len(Path(safe).suffix)], Path(safe).suffix
    if len(safe.encode()) > NAME_MAX_BYTES:  # cut the stem, keep the type
        room = NAME_MAX_BYTES - len(suffix.encode())
        stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .")
        safe = stem + suffix
    if not stem:
        return None, "the file name is empty"
    if suffix.lower() not in SUFFIXES:
        shown_suffix = suffix or "(none)"
        return None, f"file type {shown_suffix} is not allowed (allowed: {' '.join(SUFFIXES)})"
    why = ignored(safe, top_level=True)
    if why:
        return None, f"{why}; rename it"
    return safe, ""


def save_uploads(
    cfg: Config, files: Iterable[tuple[str, str | Path]]
) -> tuple[list[str], list[tuple[str, str]]]:
    """Copy uploaded (original name, temp path) files into the seeds folder.

    Returns (saved names, [(name, reason)] refused), one entry per file: a file that cannot
    be saved never stops the others. A file lands only directly inside cfg.seeds_dir, under a
    sanitised name, written to a hidden temp file then renamed.
    """
    seeds = Path(cfg.seeds_dir)
    seeds.mkdir(parents=True, exist_ok=True)
    saved: list[str] = []
    refused: list[tuple[str, str]] = []
    for name, source in files:
        try:
            safe, reason = _save_upload(cfg, seeds, name, source)
        except OSError as e:
            safe, reason = None, f"cannot save: {e.strerror or e}"
        if safe is None:
            refused.append((shown(name), reason))
        else:
            saved.append(safe)
    return saved, refused


def _save_upload(cfg: Config, seeds: Path, name: str, source: str | Path) -> tuple[str | None, str]:
    safe, reason = check_upload_name(name)
    if safe is None:
        return None, reason
    try:
        size = os.path.getsize(source)
    except OSError as e:
        return None, f"cannot read the upload: {e.strerror or e}"
    if size > cfg.max_document_bytes:
        limit = cfg.max_document_bytes / 1e6
        return None, f"file is too large ({size / 1e6:.1f} MB; the limit is {limit:.1f} MB)"
    target = seeds / safe
    real = Path(os.path.realpath(target))  # unlike Path.resolve, no RuntimeError on a link loop
    if real.parent != Path(os.path.realpath(seeds)) or (target.exists() and not target.is_file()):
        return None, "the name points outside the documents folder"
    # The temp name is short and fixed (any safe name fits beside it) and ingest.scan skips it.
    with atomic_write(target, temp=seeds / f".upload-{uuid.uuid4().hex}.part") as tmp:
        shutil.copyfile(source, tmp)
    return safe, ""


def _listing(cfg: Config) -> dict[str, list[Path]]:
    """Files the documents tab offers, by id: what ingest.walk finds with a document's type.

    That is each document the build reads and each one it reports as skipped (a name that is
    not UTF-8, a link out of the folder), so that one can be removed; never a file the build
    passes over in silence (a hidden or temporary file, the folder's own README.md).
    """
    found: dict[str, list[Path]] = {}
    if not Path(cfg.seeds_dir).is_dir():
        return found
    for doc_id, path, _ in walk(cfg.seeds_dir, cfg.follow_external_links):
        if path.suffix.lower() in SUFFIXES and not path.is_dir():
            found.setdefault(doc_id, []).append(path)
    return found


def seed_files(cfg: Config) -> list[str]:
    """Document files in the seeds folder (ids: paths below it), for the removal list."""
    return sorted(_listing(cfg))


def open_document(cfg: Config, doc_id: str) -> Document:
    """A document of the folder read as the index build reads it, to be shown whole; IngestError
    (with the reason) if it is gone or cannot be read."""
    paths = _listing(cfg).get(shown(doc_id), [])
    if len(paths) != 1:
        raise IngestError(f"{doc_id} is no longer in the documents folder")
    data = read_bytes(SourceFile(doc_id, paths[0], "", 0), cfg.max_document_bytes)
    source = SourceFile(doc_id, paths[0], hashlib.sha256(data).hexdigest(), len(data))
    return read_document(source, cfg.max_document_bytes, data)


def remove_documents(
    cfg: Config, doc_ids: Iterable[str]
) -> tuple[list[str], list[tuple[str, str]]]:
    """Delete documents (ids as seed_files() shows them); returns (removed, [(id, reason)])."""
    seeds = Path(cfg.seeds_dir)
    root = seeds.resolve()
    listing = _listing(cfg)
    removed: list[str] = []
    refused: list[tuple[str, str]] = []
    for doc_id in doc_ids or ():
        doc_id = shown(doc_id)
        paths = listing.get(doc_id, [])
        if not paths:
            refused.append((doc_id, "no such document in the seeds folder"))
            continue
        if len(paths) > 1:  # e.g. "caf\\xe9.txt" and a name with undecodable bytes shown alike
            refused.append((doc_id, "two files are shown under this name; remove it in the folder"))
            continue
        path = paths[0]
        parent = path.parent.resolve()
        if parent != root and root not in parent.parents:
            refused.append((doc_id, "not a document of the seeds folder"))
            continue
        try:
            path.unlink()  # a symlink is removed, never what it points at
        except OSError as e:
            refused.append((doc_id, f"cannot remove: {e.strerror or e}"))
            continue
        removed.append(doc_id)
    return removed, refused
