"""The index on disk: load a version and search it, write a new one and swap it in.

Layout of the index folder (txtai-style: a folder with a config beside its vectors):

    index/
      current -> v-20261126T221500-1234   symlink, swapped atomically by a build
      v-.../manifest.json                 format, embedder, chunker, documents and their hashes
      v-.../passages.jsonl                one passage per line, in vector order
      v-.../vectors.faiss                 FAISS index (faiss.write_index; no pickle)
      .lock                               held by the build in progress
      .assistant-index.json               marks the folder as ours; names the versions we wrote

A build refuses a folder that holds anything else without that marker (it may be someone's
files), and cleans up only the versions the marker names. What goes into a version, and when an
HNSW graph keeps dead rows (listed in the manifest, filtered out of every search), is decided
by indexing.build. This is the one module that imports faiss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from .errors import AssistantError
from .files import atomic_write
from .manifest import FORMAT, REBUILD_HINT, IndexLoadError, Manifest, edited
from .schema import Chunk, IndexedDocument

log = logging.getLogger(__name__)

MARKER = ".assistant-index.json"
LOCK_FILE = ".lock"  # held by the build in progress (indexing.build_lock)
# Files a new, empty index folder may already hold (the repository's index/ has a README.md).
PLACEHOLDERS = {"README.md", ".gitkeep", ".gitignore", LOCK_FILE, MARKER, MARKER + ".tmp"}
_VERSION_NAME = re.compile(r"v-\d{8}T\d{6}-\d+-\d+")


def _faiss():
    """The faiss module, imported on first use: importing the package does not load it."""
    import faiss

    return faiss


class IndexFolderError(AssistantError):
    """The index folder cannot be used (someone else's files, or overlaps the seeds folder)."""


class Index:
    """A loaded, read-only index: passages, their vectors in FAISS, and the manifest."""

    def __init__(self, manifest: Manifest, chunks: list[Chunk], faiss_index, path: Path) -> None:
        self.manifest = manifest
        self.chunks = chunks
        self.faiss = faiss_index
        self.path = path
        self.by_id = {c.id: i for i, c in enumerate(chunks)}
        # Passage i is FAISS row rows[i]: the rows not listed dead, in order.
        dead = np.asarray(manifest.dead_rows, dtype=np.int64)
        alive = np.ones(faiss_index.ntotal, dtype=bool)
        alive[dead] = False
        self.rows = np.flatnonzero(alive)
        self._passage_of_row = np.full(faiss_index.ntotal, -1, dtype=np.int64)
        self._passage_of_row[self.rows] = np.arange(len(self.rows))
        self._search_params = None
        if len(dead):
            faiss = _faiss()
            self._dead_selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))
            self._search_params = faiss.SearchParametersHNSW(
                sel=self._dead_selector, efSearch=faiss_index.hnsw.efSearch
            )

    @classmethod
    def load(cls, index_dir: Path) -> Index:
        """Load the current version under index_dir, or raise IndexLoadError with the fix."""
        version = current_version(Path(index_dir))
        if version is None:
            raise IndexLoadError(
                f"no index in {index_dir}: build it with: python -m assistant index"
            )
        return cls._load_version(version)

    @classmethod
    def _load_version(cls, path: Path) -> Index:
        faiss = _faiss()
        try:
            data = json.loads((path / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise IndexLoadError(
                f"index manifest in {path} is unreadable ({e}); {REBUILD_HINT}"
            ) from None
        manifest = Manifest.from_dict(data, path)
        try:
            for name, digest in manifest.files.items():
                if _sha256(path / name) != digest:
                    raise ValueError(f"{name} was changed after the build")
        except (OSError, ValueError) as e:
            raise edited(path, e) from None
        try:
            chunks = [
                _chunk_from_json(line)
                for line in (path / "passages.jsonl").read_text("utf-8").splitlines()
                if line
            ]
            vectors = faiss.read_index(str(path / "vectors.faiss"))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise IndexLoadError(
                f"index files in {path} are damaged ({e}); {REBUILD_HINT}"
            ) from None
        dead = manifest.dead_rows
        dead_ok = not dead or (
            len(set(dead)) == len(dead)
            and 0 <= min(dead) <= max(dead) < vectors.ntotal
            and index_kind(vectors) == "hnsw"
        )
        if (
            not dead_ok
            or vectors.ntotal - len(dead) != len(chunks)
            or manifest.passages != len(chunks)
        ):
            raise IndexLoadError(
                f"index in {path} is inconsistent ({vectors.ntotal} vectors, {len(dead)} dead, "
                f"{len(chunks)} passages, manifest says {manifest.passages}); {REBUILD_HINT}"
            )
        if vectors.d != manifest.dim:
            raise IndexLoadError(
                f"index vectors in {path} have the wrong dimension; {REBUILD_HINT}"
            )
        return cls(manifest, chunks, vectors, path)

    @property
    def embedder_id(self) -> str:
        return self.manifest.embedder_id

    def check_embedder(self, embedder_id: str) -> None:
        """Refuse to search with a different embedder than the index was built with."""
        if embedder_id != self.embedder_id:
            raise IndexLoadError(
                f"index was built with embedder {self.embedder_id!r} but {embedder_id!r} is "
                f"configured; {REBUILD_HINT}"
            )

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Row numbers and cosine similarities of the k passages nearest to one query vector."""
        if not self.chunks:
            return []
        faiss = _faiss()
        # One query is too small to share: FAISS's default threads made exact search over 10k
        # vectors 30x slower (1.8 ms vs 60 ms p50, benchmarks/search.py).
        faiss.omp_set_num_threads(1)
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        k = min(k, len(self.chunks))
        scores, rows = self.faiss.search(query, k, params=self._search_params)
        return [
            (int(self._passage_of_row[r]), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0
        ]

    def vectors(self) -> np.ndarray:
        """All stored vectors, in passage order."""
        if not self.chunks:
            return np.zeros((0, self.faiss.d), dtype=np.float32)
        every = self.faiss.reconstruct_n(0, self.faiss.ntotal)
        return every if len(self.rows) == self.faiss.ntotal else every[self.rows]

    def vectors_of(self, passages: list[int]) -> np.ndarray:
        """The stored vectors of these passage numbers."""
        return np.stack([self.faiss.reconstruct(int(self.rows[p])) for p in passages])

    def documents(self) -> list[IndexedDocument]:
        """Indexed documents: id, title, date, passages, sorted by id."""
        return [
            {
                "id": doc_id,
                "title": d.title,
                "date": d.date,
                "file_date": d.file_date,
                "passages": len(d.passages),
            }
            for doc_id, d in sorted(self.manifest.documents.items())
        ]


def current_version(index_dir: Path) -> Path | None:
    """The folder the `current` link points at, if any."""
    link = index_dir / "current"
    if not link.is_symlink() and not link.exists():
        return None
    target = index_dir / os.readlink(link) if link.is_symlink() else link
    return target if target.is_dir() else None


def _chunk_to_json(chunk: Chunk) -> str:
    return json.dumps(dataclasses.asdict(chunk), ensure_ascii=False)


def _chunk_from_json(line: str) -> Chunk:
    return Chunk(**json.loads(line))


def make_faiss_index(vectors: np.ndarray, exact_limit: int):
    """Exact inner product for small collections, HNSW above exact_limit vectors."""
    faiss = _faiss()
    dim = vectors.shape[1]
    if len(vectors) > exact_limit:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    add_vectors(index, vectors)
    return index


def add_vectors(faiss_index, vectors: np.ndarray) -> None:
    """Append vectors to a FAISS index in place (the new rows follow the last one)."""
    _faiss().omp_set_num_threads(os.cpu_count() or 1)  # building does use every core
    if len(vectors):
        faiss_index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def index_kind(index) -> str:
    return "hnsw" if "HNSW" in type(index).__name__ else "exact"


def check_index_folder(index_dir: Path, seeds_dir: Path) -> None:
    """Raise IndexFolderError unless index_dir is new, empty, ours, and apart from seeds_dir."""
    index, seeds = index_dir.resolve(), seeds_dir.resolve()
    where = None
    if index == seeds:
        where = "is"
    elif index.is_relative_to(seeds):
        where = "is inside"
    elif seeds.is_relative_to(index):
        where = "contains"
    if where:
        raise IndexFolderError(
            f"index folder {index_dir} {where} the seeds folder {seeds_dir}: "
            "choose an index folder apart from the documents (--index or ASSISTANT_INDEX_DIR)"
        )
    if not index_dir.is_dir() or (index_dir / MARKER).is_file() or _legacy_version(index_dir):
        return
    foreign = sorted(p.name for p in index_dir.iterdir() if p.name not in PLACEHOLDERS)
    if foreign:
        raise IndexFolderError(
            f"index folder {index_dir} holds files this assistant did not write "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
            "choose a new or empty folder (--index or ASSISTANT_INDEX_DIR); nothing was changed"
        )


def _legacy_version(index_dir: Path) -> str | None:
    """The version `current` names in a folder an earlier release built (no marker yet)."""
    version = current_version(index_dir)
    if version is None:
        return None
    try:
        manifest = json.loads((version / "manifest.json").read_text("utf-8"))
        link = os.readlink(index_dir / "current")  # ours is a link to a sibling folder
    except (OSError, ValueError):
        return None
    ours = isinstance(manifest, dict) and str(manifest.get("format")).startswith("assistant-index")
    return link if ours and link == version.name and _VERSION_NAME.fullmatch(link) else None


def _recorded(index_dir: Path) -> list[str]:
    """Version folders our builds created here (written, or begun and not yet cleaned up)."""
    try:
        names = json.loads((index_dir / MARKER).read_text("utf-8"))["versions"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [n for n in names if isinstance(n, str) and _VERSION_NAME.fullmatch(n)]


def claim_folder(index_dir: Path) -> None:
    """Mark index_dir as ours if it is not yet, adopting the version an earlier release built."""
    _mark(index_dir)


def _mark(index_dir: Path, versions: list[str] | None = None) -> None:
    """Write the marker; without versions, only if missing (adopting an earlier release's)."""
    if versions is None:
        if (index_dir / MARKER).is_file():
            return
        legacy = _legacy_version(index_dir)
        versions = [legacy] if legacy else []
    # A fixed temp name, listed in PLACEHOLDERS: a crash's leftover must not look foreign.
    with atomic_write(index_dir / MARKER, temp=index_dir / (MARKER + ".tmp")) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, "versions": versions}) + "\n", "utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_version(index_dir: Path, manifest: Manifest, chunks: list[Chunk], faiss_index) -> Path:
    """Write a new version folder and make it current; a crash at any moment keeps the old one."""
    faiss = _faiss()
    name = f"v-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{time.monotonic_ns()}"
    _mark(index_dir, [*_recorded(index_dir), name])  # recorded before it exists: a crash's debris
    final = index_dir / name
    # The temp names are ones _remove_stale knows, so a crash's leftovers are cleaned up.
    with atomic_write(final, temp=index_dir / f".tmp-{name}") as tmp:
        tmp.mkdir(parents=True)
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as out:
            for chunk in chunks:
                out.write(_chunk_to_json(chunk) + "\n")
        faiss.write_index(faiss_index, str(tmp / "vectors.faiss"))
        # The manifest goes last: a version folder without one is never a complete version.
        # It records the other files' hashes, so a hand edit is caught at load time.
        files = {name: _sha256(tmp / name) for name in ("passages.jsonl", "vectors.faiss")}
        manifest = dataclasses.replace(manifest, files=files)
        with open(tmp / "manifest.json", "w", encoding="utf-8") as out:
            json.dump(manifest.to_dict(), out, ensure_ascii=False, indent=1)
    with atomic_write(index_dir / "current", temp=index_dir / f".current-{os.getpid()}") as link:
        link.unlink(missing_ok=True)
        os.symlink(name, link)  # swapped in by a rename: readers see the old version or the new
    _remove_stale(index_dir, keep=name)
    return final


def _remove_stale(index_dir: Path, keep: str) -> None:
    """Delete the versions our builds wrote, but keep, and their crash leftovers (under lock)."""
    old = set(_recorded(index_dir)) - {keep}
    for entry in index_dir.glob(".current-*"):
        if entry.is_symlink() and os.readlink(entry) in old | {keep}:
            entry.unlink(missing_ok=True)
    for name in old:
        for path in (index_dir / name, index_dir / f".tmp-{name}"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
    _mark(index_dir, [keep])
