"""The index on disk: load a version and search it, write a new one and swap it in.

Layout of the index folder (txtai-style: a folder with a config beside its vectors):

    index/
      current -> v-20261126T221500-1234   symlink, swapped atomically by a build
      v-.../manifest.json                 format, embedder, chunker, documents and their hashes
      v-.../passages.jsonl                one passage per line, in vector order
      v-.../vectors.faiss                 FAISS index (faiss.write_index; no pickle)
      v-.../vectors.f32                   compressed kind only: the exact vectors, float32 rows
      .lock                               held by the build in progress
      .assistant-index.json               marks the folder as ours; names the versions we wrote

A build refuses a folder that holds anything else without that marker (it may be someone's
files), and cleans up only the versions the marker names. What goes into a version, and when an
HNSW graph or a compressed index keeps dead rows (listed in the manifest, filtered out of every
search), is decided by indexing.build. This is the one module that imports faiss.

Three kinds of index, chosen by the number of vectors (kind_for): exact inner product up to
exact_limit, an HNSW graph over the float vectors up to compressed_limit, and above that the
compressed kind (Compressed): IVF-PQ codes in RAM find candidates, whose exact vectors, read
from vectors.f32 on disk, rank them. At 10M passages the float vectors alone are 15.4 GB; the
codes are 0.6 GB (benchmarks/search.py).
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
import weakref
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
# A compressed rebuild gathers its vectors in SPILL, on disk beside the versions (not in RAM).
SPILL = ".vectors-spill.f32"
PLACEHOLDERS = {"README.md", ".gitkeep", ".gitignore", LOCK_FILE, MARKER, MARKER + ".tmp", SPILL}
RAW = "vectors.f32"  # the compressed kind's exact vectors
# A file larger than this gets a sampled digest (below): hashing all 15.4 GB of vectors.f32 at
# 10M would read it whole at every load (15-60 s, and the page cache) to look for hand edits.
FULL_DIGEST_BYTES = 64 << 20
_SAMPLES, _SAMPLE_BYTES = 256, 64 << 10
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
            if isinstance(faiss_index, Compressed):
                self._search_params = faiss.SearchParametersIVF(
                    sel=self._dead_selector, nprobe=faiss_index.ivf.nprobe
                )
            else:
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
                if _digest(path / name, sampled=digest.startswith(_SAMPLED)) != digest:
                    raise ValueError(f"{name} was changed after the build")
            if manifest.index == "compressed" and RAW not in manifest.files:
                raise ValueError(f"{RAW} is missing from the manifest's files")
        except (OSError, ValueError) as e:
            raise edited(path, e) from None
        try:
            chunks = [
                _chunk_from_json(line)
                for line in (path / "passages.jsonl").read_text("utf-8").splitlines()
                if line
            ]
            vectors = faiss.read_index(str(path / "vectors.faiss"))
            if manifest.index == "compressed":
                faiss.extract_index_ivf(vectors)  # RuntimeError unless it is an IVF index
                raw = RawVectors(path / RAW, vectors.d)
                if len(raw) != vectors.ntotal:
                    raise ValueError(f"{RAW} holds {len(raw)} vectors, not {vectors.ntotal}")
                vectors = Compressed(vectors, [raw], manifest.rerank)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise IndexLoadError(
                f"index files in {path} are damaged ({e}); {REBUILD_HINT}"
            ) from None
        dead = manifest.dead_rows
        dead_ok = not dead or (
            len(set(dead)) == len(dead)
            and 0 <= min(dead) <= max(dead) < vectors.ntotal
            and index_kind(vectors) in ("hnsw", "compressed")
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
        """All stored vectors, in passage order, in RAM (a rebuild gathers them with stack)."""
        return self.vectors_of(range(len(self.chunks)))

    def vectors_of(self, passages: list[int] | range) -> np.ndarray:
        """The stored vectors of these passage numbers, exactly as they were added."""
        rows = self.rows[np.asarray(passages, dtype=np.int64)]
        if not len(rows):
            return np.zeros((0, self.faiss.d), dtype=np.float32)
        if isinstance(self.faiss, Compressed):
            return self.faiss.take(rows)
        return self.faiss.reconstruct_batch(rows).reshape(len(rows), self.faiss.d)

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


def kind_for(count: int, exact_limit: int, compressed_limit: int) -> str:
    """The index kind for a collection of `count` vectors: exact, hnsw or compressed."""
    if count > compressed_limit:
        return "compressed"
    return "hnsw" if count > exact_limit else "exact"


def make_faiss_index(vectors: np.ndarray, exact_limit: int, compressed_limit: int):
    """An index of the kind kind_for picks, holding `vectors` (a memory map is read in blocks)."""
    faiss = _faiss()
    dim = vectors.shape[1]
    kind = kind_for(len(vectors), exact_limit, compressed_limit)
    if kind == "compressed":
        return Compressed.build(vectors)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    add_vectors(index, vectors)
    return index


def add_vectors(faiss_index, vectors: np.ndarray) -> None:
    """Append vectors to an index in place (the new rows follow the last one)."""
    _faiss().omp_set_num_threads(os.cpu_count() or 1)  # building does use every core
    if len(vectors):
        faiss_index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def index_kind(index) -> str:
    if isinstance(index, Compressed):
        return "compressed"
    return "hnsw" if "HNSW" in type(index).__name__ else "exact"


def stack(
    old: Index | None, passages: list[int], new: np.ndarray, dim: int, spill: Path | None
) -> np.ndarray:
    """old's vectors of these passages, then `new`: in RAM, or memory-mapped in the file spill.

    A compressed rebuild spills (to index_dir/SPILL): 10M vectors are 15.4 GB. write_version
    moves that file into the new version rather than copying it.
    """
    total = len(passages) + len(new)
    if spill is None:
        out = np.empty((total, dim), dtype=np.float32)
    else:
        out = np.memmap(spill, dtype=np.float32, mode="w+", shape=(total, dim))
    for start in range(0, len(passages), BLOCK_ROWS):
        assert old is not None  # passages are old's
        stop = min(start + BLOCK_ROWS, len(passages))
        out[start:stop] = old.vectors_of(passages[start:stop])
    out[len(passages) :] = new.reshape(-1, dim)
    return out


BLOCK_ROWS = 65_536  # vectors read, added or written at a time when they may not fit in RAM
# The compressed kind's parameters, measured with benchmarks/search.py (docs/EVAL.md).
FLOATS_PER_CODE_BYTE = 8  # PQ48 for 384-d vectors: 0.5 GB of codes (and ids) at 10M
TRAIN_PER_LIST = 32  # training sample: this many vectors per inverted list
QUANTIZER_EF = 128  # HNSW search depth over the list centres, when adding and searching
# Recall@10 falls as the collection grows at a fixed depth (rerank 300: 0.972 at 1M, 0.926 at
# 2M); nprobe 32 and rerank 1000 gave 0.988 at 1M and 0.973 at 2M, p50 3.3 and 4.0 ms.
NPROBE = 32  # lists searched per query
RERANK = 1000  # candidates ranked by their exact vectors (about 3 us each, from page cache)


class RawVectors:
    """Float32 vectors in a file (row-major, native byte order, no header), read with pread.

    Nothing of the file is held in this process: rows are read on demand (from the page cache
    when the kernel has them), so it adds nothing to the resident memory, unlike a memory map
    whose touched pages count there.
    """

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self._row_bytes = dim * 4
        fd = os.open(path, os.O_RDONLY)
        # Closed with this object; held open, it still reads after a newer build deletes it.
        weakref.finalize(self, os.close, fd)
        self._fd = fd
        size = os.fstat(fd).st_size
        if size % self._row_bytes:
            raise ValueError(f"{path.name} holds {size} bytes, not rows of {dim} float32")
        self.count = size // self._row_bytes

    def __len__(self) -> int:
        return self.count

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of these rows."""
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        buf, size = out.data.cast("B"), self._row_bytes
        for i, row in enumerate(rows.tolist()):
            self._check(os.preadv(self._fd, [buf[i * size : (i + 1) * size]], row * size), size)
        return out

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """The vectors of rows start to stop (excluded)."""
        out = np.empty((stop - start, self.dim), dtype=np.float32)
        want = out.nbytes
        self._check(os.preadv(self._fd, [out.data.cast("B")], start * self._row_bytes), want)
        return out

    def _check(self, got: int, want: int) -> None:
        if got != want:
            raise IndexLoadError(f"{self.path} was truncated while in use; {REBUILD_HINT}")


class Compressed:
    """IVF-PQ codes in RAM find candidates; their exact vectors, read from disk, rank them.

    Vectors are numbered across `parts` in order: the vectors.f32 of the version it was loaded
    from, then the arrays added since; write_version writes them all into the next version's
    vectors.f32. Scores are exact inner products, so a search returns the true cosine
    similarities of the passages it finds, and vectors are stored losslessly.
    """

    def __init__(self, ivf, parts: list[RawVectors | np.ndarray], rerank: int) -> None:
        self.ivf = ivf
        self.parts = parts
        self.rerank = rerank

    @classmethod
    def build(cls, vectors: np.ndarray) -> Compressed:
        """Train on a sample of `vectors`, then add them all in blocks; keeps `vectors`."""
        faiss = _faiss()
        count, dim = vectors.shape
        # About sqrt(count) lists, a power of two: 1,024 at 1M, 4,096 at 10M.
        nlist = 2 ** max(4, round(np.log2(np.sqrt(count))))
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        # Bytes of code per vector: a divisor of dim (each byte codes dim / m of its floats).
        m = next(m for m in range(max(1, dim // FLOATS_PER_CODE_BYTE), 0, -1) if dim % m == 0)
        ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = 10
        sample = np.random.default_rng(0).choice(
            count, min(count, TRAIN_PER_LIST * nlist), replace=False
        )
        _faiss().omp_set_num_threads(os.cpu_count() or 1)
        ivf.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        quantizer.hnsw.efSearch = QUANTIZER_EF
        ivf.nprobe = NPROBE
        for start in range(0, count, BLOCK_ROWS):
            add_vectors(ivf, vectors[start : start + BLOCK_ROWS])
        return cls(ivf, [vectors], RERANK)

    @property
    def ntotal(self) -> int:
        return self.ivf.ntotal

    @property
    def d(self) -> int:
        return self.ivf.d

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors (add_vectors calls this as it would a FAISS index's add)."""
        self.ivf.add(vectors)
        self.parts.append(vectors)

    def search(self, query: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        """Like a FAISS index's search for one query: the best k of `rerank` candidates."""
        _, found = self.ivf.search(query, max(k, self.rerank), params=params)
        candidates = found[0][found[0] >= 0]
        exact = self.take(candidates) @ query[0]
        best = np.argsort(-exact, kind="stable")[:k]
        scores = np.full((1, k), -np.inf, dtype=np.float32)
        rows = np.full((1, k), -1, dtype=np.int64)
        scores[0, : len(best)], rows[0, : len(best)] = exact[best], candidates[best]
        return scores, rows

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The exact vectors of these rows."""
        out = np.empty((len(rows), self.d), dtype=np.float32)
        start = 0
        for part in self.parts:
            mine = np.flatnonzero((rows >= start) & (rows < start + len(part)))
            if len(mine):
                local = rows[mine] - start
                out[mine] = part.read(local) if isinstance(part, RawVectors) else part[local]
            start += len(part)
        return out

    def save_vectors(self, path: Path, spill: Path) -> None:
        """Write every vector to `path` in RawVectors' layout; a spilled rebuild's file is moved."""
        if (
            len(self.parts) == 1
            and isinstance(self.parts[0], np.memmap)
            and Path(os.path.abspath(spill)) == Path(self.parts[0].filename or "")
        ):
            self.parts[0].flush()
            os.replace(spill, path)
            return
        with open(path, "wb") as out:
            for part in self.parts:
                for start in range(0, len(part), BLOCK_ROWS):
                    stop = min(start + BLOCK_ROWS, len(part))
                    block = (
                        part.read_range(start, stop)
                        if isinstance(part, RawVectors)
                        else part[start:stop]
                    )
                    out.write(np.ascontiguousarray(block, dtype=np.float32).tobytes())


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


_SAMPLED = "sampled-sha256:"


def _digest(path: Path, sampled: bool) -> str:
    """sha256 of the file, or of its size and _SAMPLES blocks spread over it when sampled.

    A sampled digest catches a truncated, extended or replaced file and most damage, reading
    16 MiB whatever the size; a one-byte edit between the samples goes unseen.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if not sampled:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
        size = os.fstat(fh.fileno()).st_size
        digest.update(str(size).encode())
        for i in range(_SAMPLES):
            fh.seek(max(0, size - _SAMPLE_BYTES) * i // (_SAMPLES - 1))
            digest.update(fh.read(_SAMPLE_BYTES))
    return _SAMPLED + digest.hexdigest()


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
        names = ["passages.jsonl", "vectors.faiss"]
        if isinstance(faiss_index, Compressed):
            faiss.write_index(faiss_index.ivf, str(tmp / "vectors.faiss"))
            faiss_index.save_vectors(tmp / RAW, index_dir / SPILL)
            names.append(RAW)
            manifest = dataclasses.replace(manifest, rerank=faiss_index.rerank)
        else:
            faiss.write_index(faiss_index, str(tmp / "vectors.faiss"))
        # The manifest goes last: a version folder without one is never a complete version.
        # It records the other files' hashes, so a hand edit is caught at load time.
        files = {
            name: _digest(tmp / name, sampled=(tmp / name).stat().st_size > FULL_DIGEST_BYTES)
            for name in names
        }
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
    (index_dir / SPILL).unlink(missing_ok=True)  # a crashed compressed rebuild's vectors
    for entry in index_dir.glob(".current-*"):
        if entry.is_symlink() and os.readlink(entry) in old | {keep}:
            entry.unlink(missing_ok=True)
    for name in old:
        for path in (index_dir / name, index_dir / f".tmp-{name}"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
    _mark(index_dir, [keep])
