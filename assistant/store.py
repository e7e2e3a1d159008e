"""The index on disk: FAISS vectors + passages + manifest; incremental, atomic builds.

Layout of the index folder (txtai-style: a folder with a config beside its vectors):

    index/
      current -> v-20261126T221500-1234   symlink, swapped atomically by a build
      v-.../manifest.json                 format, embedder, chunker, documents and their hashes
      v-.../passages.jsonl                one passage per line, in vector order
      v-.../vectors.faiss                 FAISS index (faiss.write_index; no pickle)
      .lock                               held by the build in progress
      .assistant-index.json               marks the folder as ours; names the versions we wrote

A build refuses a folder that holds anything else without that marker (it may be someone's
files), and cleans up only the versions the marker names.

Above `exact_limit` passages the vectors live in an HNSW graph. An update adds the new vectors
to the existing graph instead of building it again (about 9 minutes at 1M vectors); the rows of
removed or changed passages stay in the graph as dead rows (listed in the manifest, filtered out
of every search) until they exceed MAX_DEAD_SHARE of the rows, when the graph is rebuilt clean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import chunking
from .embedding import Embedder
from .files import atomic_write
from .ingest import IngestError, printable, read_bytes, read_document, scan
from .schema import Chunk

log = logging.getLogger(__name__)

FORMAT = "assistant-index v2"
REBUILD_HINT = "rebuild it with: python -m assistant index"
MAX_DEAD_SHARE = 0.1  # dead rows in an HNSW graph above this share of its rows: rebuild it
MARKER = ".assistant-index.json"
# Files a new, empty index folder may already hold (the repository's index/ has a README.md).
PLACEHOLDERS = {"README.md", ".gitkeep", ".gitignore", ".lock", MARKER, MARKER + ".tmp"}
_VERSION_NAME = re.compile(r"v-\d{8}T\d{6}-\d+-\d+")


class IndexLoadError(RuntimeError):
    """The index is missing, damaged or was built with other settings; the message says the fix."""


class BuildBusyError(RuntimeError):
    """Another build holds the index lock."""


class IndexFolderError(ValueError):
    """The index folder cannot be used (someone else's files, or overlaps the seeds folder)."""


@dataclass(frozen=True)
class ChunkerSettings:
    """What decides passage boundaries; a change forces a full rebuild."""

    chunk_tokens: int
    chunk_overlap: int
    splitter: str = chunking.SPLITTER_ID


@dataclass
class BuildReport:
    """What one build did, for the summary line and the UI."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    removed_reasons: dict[str, str] = field(default_factory=dict)  # indexed before, now unreadable
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    passages: int = 0
    embedded: int = 0
    embed_seconds: float = 0.0  # reading, splitting and embedding, model loading excluded
    seconds: float = 0.0
    full_rebuild_reason: str | None = None
    index_kind: str = ""
    appended: bool = False  # new vectors went into the existing HNSW graph (no graph rebuild)

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.full_rebuild_reason)

    @property
    def passages_per_s(self) -> float:
        """Passages read, split and embedded per second of that work (model loading excluded)."""
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def summary(self) -> str:
        """A few human lines: counts, timing, and each skipped file with its reason."""
        lines = []
        if self.full_rebuild_reason:
            lines.append(f"full rebuild: {self.full_rebuild_reason}")
        if not self.changed_anything:
            lines.append(
                f"nothing changed: {self.unchanged} documents, {self.passages} passages "
                f"({self.seconds:.2f} s)"
            )
        else:
            lines.append(
                f"documents: {len(self.added)} added, {len(self.changed)} changed, "
                f"{len(self.removed)} removed, {self.unchanged} unchanged, "
                f"{len(self.skipped)} skipped"
            )
            kind = self.index_kind + (", added to the existing graph" if self.appended else "")
            lines.append(
                f"passages: {self.passages} in index ({kind}), {self.embedded} embedded "
                f"({self.passages_per_s:.1f} passages/s); build took {self.seconds:.1f} s"
            )
        for doc_id, reason in sorted(self.removed_reasons.items()):
            lines.append(f"removed {printable(doc_id)}: {reason}")
        for doc_id, reason in self.skipped:
            lines.append(f"skipped {printable(doc_id)}: {reason}")
        return "\n".join(lines)


class Index:
    """A loaded, read-only index: passages, their vectors in FAISS, and the manifest."""

    def __init__(self, manifest: dict, chunks: list[Chunk], faiss_index, path: Path) -> None:
        self.manifest = manifest
        self.chunks = chunks
        self.faiss = faiss_index
        self.path = path
        self.by_id = {c.id: i for i, c in enumerate(chunks)}
        # Passage i is FAISS row rows[i]: the rows not listed dead, in order.
        dead = np.asarray(manifest.get("dead_rows", []), dtype=np.int64)
        alive = np.ones(faiss_index.ntotal, dtype=bool)
        alive[dead] = False
        self.rows = np.flatnonzero(alive)
        self._passage_of_row = np.full(faiss_index.ntotal, -1, dtype=np.int64)
        self._passage_of_row[self.rows] = np.arange(len(self.rows))
        self._search_params = None
        if len(dead):
            import faiss

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
        import faiss

        try:
            manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise IndexLoadError(
                f"index manifest in {path} is unreadable ({e}); {REBUILD_HINT}"
            ) from None
        found = manifest.get("format") if isinstance(manifest, dict) else None
        if found != FORMAT:
            raise IndexLoadError(
                f"index in {path} has format {found!r}, this version reads {FORMAT!r}; "
                f"{REBUILD_HINT}"
            )
        try:
            dim = int(manifest["embedder"]["dim"])
            str(manifest["embedder"]["id"])
            for d in manifest["documents"].values():
                d["sha256"], d["title"], list(d["passages"])
            for name, digest in manifest["files"].items():
                if _sha256(path / name) != digest:
                    raise ValueError(f"{name} was changed after the build")
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise IndexLoadError(
                f"index in {path} is incomplete or was edited ({type(e).__name__}: {e}); "
                f"{REBUILD_HINT}"
            ) from None
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
        dead = manifest.get("dead_rows", [])
        dead_ok = isinstance(dead, list) and all(type(r) is int for r in dead)
        if dead_ok and dead:
            dead_ok = len(set(dead)) == len(dead) and 0 <= min(dead) <= max(dead) < vectors.ntotal
            dead_ok = dead_ok and index_kind(vectors) == "hnsw"
        if (
            not dead_ok
            or vectors.ntotal - len(dead) != len(chunks)
            or manifest.get("passages") != len(chunks)
        ):
            raise IndexLoadError(
                f"index in {path} is inconsistent ({vectors.ntotal} vectors, "
                f"{len(dead) if isinstance(dead, list) else dead!r} dead, {len(chunks)} "
                f"passages, manifest says {manifest.get('passages')}); {REBUILD_HINT}"
            )
        if vectors.d != dim:
            raise IndexLoadError(
                f"index vectors in {path} have the wrong dimension; {REBUILD_HINT}"
            )
        return cls(manifest, chunks, vectors, path)

    @property
    def embedder_id(self) -> str:
        return self.manifest["embedder"]["id"]

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
        import faiss

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

    def documents(self) -> list[dict]:
        """Indexed documents: id, title, date, passages, sorted by id."""
        return [
            {
                "id": doc_id,
                "title": d["title"],
                "date": d.get("date"),
                "passages": len(d["passages"]),
            }
            for doc_id, d in sorted(self.manifest["documents"].items())
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
    import faiss

    dim = vectors.shape[1]
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building does use every core
    if len(vectors) > exact_limit:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def index_kind(index) -> str:
    return "hnsw" if "HNSW" in type(index).__name__ else "exact"


@contextlib.contextmanager
def build_lock(index_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the index's build lock; raise BuildBusyError if another build keeps it past wait_s."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "?"
                    raise BuildBusyError(
                        f"another build (pid {holder}) is running on {index_dir}; "
                        "wait for it to finish and try again"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(
    seeds_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    settings: ChunkerSettings,
    exact_limit: int = 50_000,
    max_document_bytes: int = 20_000_000,
    progress: Callable[[float, str], None] | None = None,
    lock_wait_s: float = 0.0,
    follow_external_links: bool = False,
) -> BuildReport:
    """Bring index_dir up to date with seeds_dir, re-embedding only new or changed documents.

    The new version is written to a fresh folder and swapped in with an atomic rename of the
    `current` link, so a crash at any moment leaves the previous version whole.
    """
    index_dir, seeds_dir = Path(index_dir), Path(seeds_dir)
    check_index_folder(index_dir, seeds_dir)  # before the lock file is created in it
    with build_lock(index_dir, lock_wait_s):
        _mark(index_dir)
        return _build_locked(
            seeds_dir,
            index_dir,
            embedder,
            settings,
            exact_limit,
            max_document_bytes,
            progress or (lambda f, m: None),
            follow_external_links,
        )


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


def _build_locked(
    seeds_dir, index_dir, embedder, settings, exact_limit, max_bytes, progress, follow_links
):
    started = time.perf_counter()
    report = BuildReport()
    progress(0.0, "scanning documents")
    files, report.skipped = scan(seeds_dir, follow_external_links=follow_links)

    old: Index | None = None
    try:
        old = Index.load(index_dir)
    except IndexLoadError as e:
        if current_version(index_dir) is not None:
            report.full_rebuild_reason = f"previous index unusable ({e})"
    wanted = {"chunker": dataclasses.asdict(settings), "embedder_id": embedder.id}
    if old is not None:
        had = {"chunker": old.manifest.get("chunker"), "embedder_id": old.embedder_id}
        if had != wanted:
            report.full_rebuild_reason = (
                f"settings changed (was {had['embedder_id']} {had['chunker']}, "
                f"now {wanted['embedder_id']} {wanted['chunker']})"
            )
            old = None
    old_docs: dict = old.manifest["documents"] if old else {}
    old_skipped: dict = old.manifest.get("skipped", {}) if old else {}

    keep, todo = [], []
    for f in files:
        previous = old_docs.get(f.id)
        if previous and previous["sha256"] == f.sha256:
            keep.append(f)
        elif f.id in old_skipped and old_skipped[f.id]["sha256"] == f.sha256:
            report.skipped.append((f.id, old_skipped[f.id]["reason"]))
        else:
            todo.append(f)
    present = {f.id for f in files}
    report.removed = sorted(d for d in old_docs if d not in present)
    scan_reasons = dict(report.skipped)
    for doc_id in report.removed:
        if doc_id in scan_reasons:  # still there, but now unreadable or not allowed
            report.removed_reasons[doc_id] = scan_reasons[doc_id]
            report.skipped.remove((doc_id, scan_reasons[doc_id]))
    report.unchanged = len(keep)

    if old is not None and not todo and not report.removed:
        report.passages = len(old.chunks)
        report.seconds = time.perf_counter() - started
        report.index_kind = index_kind(old.faiss)
        progress(1.0, "nothing changed")
        return report

    # Parse and split the new or changed documents.
    new_chunks: list[Chunk] = []
    new_docs: dict[str, dict] = {}
    skipped_now: dict[str, dict] = {}
    if todo:
        embedder.count_tokens("warm up")  # load the model outside the timed part
    embed_started = time.perf_counter()
    for i, f in enumerate(todo):
        progress(0.05 + 0.15 * i / max(len(todo), 1), f"reading {printable(f.id)}")
        try:
            # Hash the bytes that are parsed: the file may have changed since the scan.
            data = read_bytes(f, max_bytes)
            f = dataclasses.replace(f, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
            doc = read_document(f, max_bytes, data)
            chunks = chunking.split(
                doc, embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap
            )
            if not chunks:
                raise IngestError("no text to index")
        except IngestError as e:
            skipped_now[f.id] = {"sha256": f.sha256, "reason": str(e)}
            if f.id in old_docs:  # it was served until now: withdrawing it is a change
                report.removed.append(f.id)
                report.removed_reasons[f.id] = str(e)
            else:
                report.skipped.append((f.id, str(e)))
            continue
        (report.changed if f.id in old_docs else report.added).append(f.id)
        new_docs[f.id] = {
            "sha256": f.sha256,
            "title": doc.title,
            "date": doc.date,
            "size": f.size,
            "passages": [c.id for c in chunks],
        }
        new_chunks.extend(chunks)

    progress(0.2, f"embedding {len(new_chunks)} passages")
    new_vectors = _embed_with_progress(embedder, new_chunks, progress)
    report.embed_seconds = time.perf_counter() - embed_started
    report.embedded = len(new_chunks)

    dim = new_vectors.shape[1] if len(new_vectors) else (old.faiss.d if old else embedder.dim)
    documents = {f.id: old_docs[f.id] for f in keep}
    documents.update(new_docs)
    progress(0.9, "writing index")
    kept = {f.id for f in keep}
    graph = _append_to_graph(old, kept, new_chunks, new_vectors, exact_limit)
    if graph is not None:
        chunks, faiss_index, dead_rows = graph
        report.appended = True
    else:
        chunks, faiss_index = _assemble(old, keep, new_chunks, new_vectors, dim, exact_limit)
        dead_rows = []
    report.index_kind = index_kind(faiss_index)
    report.skipped.sort()
    report.removed.sort()
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "embedder": {"id": embedder.id, "dim": int(dim)},
        "chunker": dataclasses.asdict(settings),
        "index": report.index_kind,
        "passages": len(chunks),
        "dead_rows": dead_rows,
        "documents": dict(sorted(documents.items())),
        "skipped": {
            **{k: v for k, v in old_skipped.items() if k in present and k not in new_docs},
            **skipped_now,
        },
    }
    _write_version(index_dir, manifest, chunks, faiss_index)
    report.passages = len(chunks)
    report.seconds = time.perf_counter() - started
    progress(1.0, "done")
    return report


def _append_to_graph(old: Index | None, kept: set[str], new_chunks, new_vectors, exact_limit):
    """(passages, the old HNSW graph with the new vectors added, dead rows), or None to rebuild.

    Used when the old index is an HNSW graph, the collection stays above exact_limit, and the
    dead rows (passages of removed or changed documents, never searched again) stay within
    MAX_DEAD_SHARE of all rows. Passage order stays row order: survivors keep their rows, the
    new passages take the rows after the last one.
    """
    if old is None or index_kind(old.faiss) != "hnsw":
        return None
    survivors = [i for i, c in enumerate(old.chunks) if c.doc_id in kept]
    if len(survivors) + len(new_chunks) <= exact_limit:
        return None
    alive = np.zeros(old.faiss.ntotal, dtype=bool)
    alive[old.rows[survivors]] = True
    dead = np.flatnonzero(~alive)
    if len(dead) > MAX_DEAD_SHARE * (old.faiss.ntotal + len(new_chunks)):
        return None
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    if len(new_vectors):
        old.faiss.add(np.ascontiguousarray(new_vectors, dtype=np.float32))
    chunks = [old.chunks[i] for i in survivors] + list(new_chunks)
    return chunks, old.faiss, dead.tolist()


def _assemble(old: Index | None, keep, new_chunks, new_vectors, dim, exact_limit):
    """(passages, a new FAISS index): kept documents' passages and vectors, then the new ones."""
    chunks: list[Chunk] = []
    parts: list[np.ndarray] = []
    if old is not None and keep:
        old_vectors = old.vectors()
        rows = [old.by_id[cid] for f in keep for cid in old.manifest["documents"][f.id]["passages"]]
        chunks.extend(old.chunks[r] for r in rows)
        parts.append(old_vectors[rows])
    chunks.extend(new_chunks)
    parts.append(new_vectors)
    vectors = np.concatenate([p.reshape(-1, dim) for p in parts])
    return chunks, make_faiss_index(vectors, exact_limit)


def _embed_with_progress(embedder: Embedder, chunks: list[Chunk], progress) -> np.ndarray:
    texts = [c.text for c in chunks]
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    step = 256
    out = []
    for i in range(0, len(texts), step):
        out.append(embedder.embed(texts[i : i + step], progress=len(texts) > step))
        progress(
            0.2 + 0.7 * min(i + step, len(texts)) / len(texts),
            f"embedded {min(i + step, len(texts))}/{len(texts)} passages",
        )
    return np.concatenate(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_version(index_dir: Path, manifest: dict, chunks: list[Chunk], faiss_index) -> Path:
    import faiss

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
        manifest = {
            **manifest,
            "files": {name: _sha256(tmp / name) for name in ("passages.jsonl", "vectors.faiss")},
        }
        with open(tmp / "manifest.json", "w", encoding="utf-8") as out:
            json.dump(manifest, out, ensure_ascii=False, indent=1)
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
