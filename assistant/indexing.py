"""Building the index: bring it up to date with the seeds folder, embedding only what changed.

    >>> settings = ChunkerSettings(chunk_tokens=256, chunk_overlap=32)
    >>> report = build(Path("seeds"), Path("index"), embedder, settings)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    documents: 1 added, 0 changed, 0 removed, 3 unchanged, 0 skipped
    passages: 212 in index (exact), 41 embedded (local, 80.2 passages/s); build took 0.9 s

One build at a time holds the index folder's lock. The build reads the current version (store),
keeps the passages and vectors of unchanged documents, reads, splits and embeds the new or
changed ones, and has store write the result as a new version and swap it in.

Above `exact_limit` passages the vectors live in an HNSW graph, above `compressed_limit` in a
compressed (IVF-PQ) index. An update adds the new vectors to the existing graph or compressed
index instead of building it again (about 9 minutes at 1M vectors for a graph); the rows of
removed or changed passages stay in it as dead rows (listed in the manifest, filtered out of
every search) until they exceed MAX_DEAD_SHARE of the rows, when it is rebuilt clean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from . import chunking
from .embedding import Embedder
from .errors import AssistantError
from .ingest import (
    READER,
    IngestError,
    SourceFile,
    printable,
    read_bytes,
    read_document,
    scan,
)
from .manifest import DocumentEntry, IndexLoadError, Manifest, SkippedEntry
from .schema import Chunk
from .store import (
    LOCK_FILE,
    SPILL,
    Index,
    add_vectors,
    check_index_folder,
    claim_folder,
    current_version,
    index_kind,
    kind_for,
    make_faiss_index,
    stack,
    write_version,
)

MAX_DEAD_SHARE = 0.1  # dead rows in a graph or compressed index above this share: rebuild it


class BuildBusyError(AssistantError):
    """Another build holds the index lock."""


Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ChunkerSettings:
    """What decides passage boundaries; a change forces a full rebuild."""

    chunk_tokens: int
    chunk_overlap: int
    splitter: str = chunking.SPLITTER_ID


@dataclass(frozen=True)
class SplitFile:
    """A new or changed file, read and split: its entry and passages, or why it is skipped."""

    source: SourceFile  # with the hash and size of the bytes that were read
    entry: DocumentEntry | None  # None: skipped, for `reason`
    chunks: tuple[Chunk, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Embedded:
    """What a Runner gives back: the files in the order given, and their passages' vectors."""

    files: list[SplitFile]
    vectors: np.ndarray  # a row per passage of `files`, in file order, then passage order
    seconds: float  # the work's wall time (the local runner loads its model before the clock)


NOTHING = Embedded([], np.zeros((0, 0), dtype=np.float32), 0.0)


class Runner(Protocol):
    """Reads, splits and embeds the new or changed files of a build: here or on a Ray cluster."""

    name: str  # recorded in the manifest as built_with

    def run(
        self,
        files: list[SourceFile],
        embedder: Embedder,
        settings: ChunkerSettings,
        max_bytes: int,
        progress: Progress,
    ) -> Embedded: ...


def read_and_split(
    source: SourceFile,
    count_tokens: Callable[[str], int],
    settings: ChunkerSettings,
    max_bytes: int,
) -> SplitFile:
    """Read one file and split it into passages; one that cannot be indexed comes back skipped."""
    try:
        # Hash the bytes that are parsed: the file may have changed since the scan.
        data = read_bytes(source, max_bytes)
        source = dataclasses.replace(
            source, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
        )
        doc = read_document(source, max_bytes, data)
        chunks = chunking.split(doc, count_tokens, settings.chunk_tokens, settings.chunk_overlap)
        if not chunks:
            raise IngestError("no text to index")
    except IngestError as e:
        return SplitFile(source, None, reason=str(e))
    entry = DocumentEntry(
        sha256=source.sha256,
        title=doc.title,
        date=doc.date,
        size=source.size,
        passages=tuple(c.id for c in chunks),
        file_date=doc.file_date,
    )
    return SplitFile(source, entry, tuple(chunks))


class LocalRunner:
    """Reads, splits and embeds in this process, with the build's embedder."""

    name = "local"

    def run(
        self,
        files: list[SourceFile],
        embedder: Embedder,
        settings: ChunkerSettings,
        max_bytes: int,
        progress: Progress,
    ) -> Embedded:
        """Each file in turn, then all their passages in steps (the model loads off the clock)."""
        embedder.count_tokens("warm up")
        started = time.perf_counter()
        done = []
        for i, f in enumerate(files):
            progress(0.05 + 0.15 * i / len(files), f"reading {printable(f.id)}")
            done.append(read_and_split(f, embedder.count_tokens, settings, max_bytes))
        chunks = [c for d in done for c in d.chunks]
        progress(0.2, f"embedding {len(chunks)} passages")
        vectors = embed_passages(embedder, chunks, progress)
        return Embedded(done, vectors, time.perf_counter() - started)


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
    embed_seconds: float = 0.0  # reading, splitting and embedding (Embedded.seconds)
    seconds: float = 0.0
    full_rebuild_reason: str | None = None
    index_kind: str = ""
    appended: bool = False  # new vectors went into the existing graph or compressed index
    built_with: str = ""  # the Runner that embedded the new passages ("local", "ray"), if any

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.full_rebuild_reason)

    @property
    def passages_per_s(self) -> float:
        """Passages read, split and embedded per second of that work (Embedded.seconds)."""
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
            kind = self.index_kind + (", added to the existing index" if self.appended else "")
            embedded = (
                f", {self.embedded} embedded ({self.built_with}, "
                f"{self.passages_per_s:.1f} passages/s)"
                if self.embedded
                else ""
            )
            lines.append(
                f"passages: {self.passages} in index ({kind}){embedded}; "
                f"build took {self.seconds:.1f} s"
            )
        for doc_id, reason in sorted(self.removed_reasons.items()):
            lines.append(f"removed {printable(doc_id)}: {reason}")
        for doc_id, reason in self.skipped:
            lines.append(f"skipped {printable(doc_id)}: {reason}")
        return "\n".join(lines)


@contextlib.contextmanager
def build_lock(index_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the index's build lock; raise BuildBusyError if another build keeps it past wait_s."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK_FILE, "a+") as handle:
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
    compressed_limit: int = 2_000_000,
    max_document_bytes: int = 20_000_000,
    progress: Callable[[float, str], None] | None = None,
    lock_wait_s: float = 0.0,
    follow_external_links: bool = False,
    runner: Runner | None = None,
) -> BuildReport:
    """Bring index_dir up to date with seeds_dir, re-embedding only new or changed documents.

    The new version is written to a fresh folder and swapped in with an atomic rename of the
    `current` link, so a crash at any moment leaves the previous version whole. `runner` reads,
    splits and embeds the new or changed documents: in this process (LocalRunner, the default)
    or on a Ray cluster (distributed.RayRunner); everything else is the same for both.
    """
    index_dir, seeds_dir = Path(index_dir), Path(seeds_dir)
    check_index_folder(index_dir, seeds_dir)  # before the lock file is created in it
    with build_lock(index_dir, lock_wait_s):
        claim_folder(index_dir)
        return _build_locked(
            seeds_dir,
            index_dir,
            embedder,
            settings,
            (exact_limit, compressed_limit),
            max_document_bytes,
            progress or _no_progress,
            follow_external_links,
            runner or LocalRunner(),
        )


def _build_locked(
    seeds_dir, index_dir, embedder, settings, limits, max_bytes, progress, follow_links, runner
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
        had = {"chunker": old.manifest.chunker, "embedder_id": old.embedder_id}
        if had != wanted:
            report.full_rebuild_reason = (
                f"settings changed (was {had['embedder_id']} {had['chunker']}, "
                f"now {wanted['embedder_id']} {wanted['chunker']})"
            )
            old = None
    if old is not None and old.manifest.reader != READER:
        # Titles and dates feed the keyword search and the prompt: every document is read again.
        report.full_rebuild_reason = (
            f"documents are read in a new way ({old.manifest.reader} -> {READER}: "
            "titles and dates from their text)"
        )
        old = None
    old_docs: dict[str, DocumentEntry] = old.manifest.documents if old else {}
    old_skipped: dict[str, SkippedEntry] = old.manifest.skipped if old else {}

    keep, todo = [], []
    for f in files:
        previous = old_docs.get(f.id)
        if previous and previous.sha256 == f.sha256:
            keep.append(f)
        elif f.id in old_skipped and old_skipped[f.id].sha256 == f.sha256:
            report.skipped.append((f.id, old_skipped[f.id].reason))
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

    # Read, split and embed the new or changed documents, here or on a Ray cluster.
    work = runner.run(todo, embedder, settings, max_bytes, progress) if todo else NOTHING
    new_chunks: list[Chunk] = []
    new_docs: dict[str, DocumentEntry] = {}
    skipped_now: dict[str, SkippedEntry] = {}
    for done in work.files:
        f = done.source
        if done.entry is None:
            skipped_now[f.id] = SkippedEntry(sha256=f.sha256, reason=done.reason)
            if f.id in old_docs:  # it was served until now: withdrawing it is a change
                report.removed.append(f.id)
                report.removed_reasons[f.id] = done.reason
            else:
                report.skipped.append((f.id, done.reason))
            continue
        (report.changed if f.id in old_docs else report.added).append(f.id)
        new_docs[f.id] = done.entry
        new_chunks.extend(done.chunks)
    new_vectors = work.vectors
    report.built_with = runner.name
    report.embed_seconds = work.seconds
    report.embedded = len(new_chunks)

    dim = new_vectors.shape[1] if len(new_vectors) else (old.faiss.d if old else embedder.dim)
    documents = {f.id: old_docs[f.id] for f in keep}
    documents.update(new_docs)
    progress(0.9, "writing index")
    kept = {f.id for f in keep}
    graph = _append_to_graph(old, kept, new_chunks, new_vectors, limits)
    if graph is not None:
        chunks, faiss_index, dead_rows = graph
        report.appended = True
    else:
        chunks, faiss_index = _assemble(
            old, keep, new_chunks, new_vectors, dim, limits, index_dir / SPILL
        )
        dead_rows = []
    report.index_kind = index_kind(faiss_index)
    report.skipped.sort()
    report.removed.sort()
    manifest = Manifest(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        embedder_id=embedder.id,
        dim=int(dim),
        chunker=dataclasses.asdict(settings),
        reader=READER,
        built_with=runner.name,
        index=report.index_kind,
        passages=len(chunks),
        dead_rows=tuple(dead_rows),
        documents=dict(sorted(documents.items())),
        skipped={
            **{k: v for k, v in old_skipped.items() if k in present and k not in new_docs},
            **skipped_now,
        },
    )
    write_version(index_dir, manifest, chunks, faiss_index)
    report.passages = len(chunks)
    report.seconds = time.perf_counter() - started
    progress(1.0, "done")
    return report


def _append_to_graph(old: Index | None, kept: set[str], new_chunks, new_vectors, limits):
    """(passages, the old index with the new vectors added, dead rows), or None to rebuild.

    Used when the old index is an HNSW graph or a compressed index, the collection stays of
    that kind (store.kind_for with limits: exact and compressed), and the dead rows (passages
    of removed or changed documents, never searched again) stay within MAX_DEAD_SHARE of all
    rows. Passage order stays row order: survivors keep their rows, the new passages take the
    rows after the last one.
    """
    if old is None or index_kind(old.faiss) == "exact":
        return None
    survivors = [i for i, c in enumerate(old.chunks) if c.doc_id in kept]
    if kind_for(len(survivors) + len(new_chunks), *limits) != index_kind(old.faiss):
        return None
    alive = np.zeros(old.faiss.ntotal, dtype=bool)
    alive[old.rows[survivors]] = True
    dead = np.flatnonzero(~alive)
    if len(dead) > MAX_DEAD_SHARE * (old.faiss.ntotal + len(new_chunks)):
        return None
    add_vectors(old.faiss, new_vectors)
    chunks = [old.chunks[i] for i in survivors] + list(new_chunks)
    return chunks, old.faiss, dead.tolist()


def _assemble(old: Index | None, keep, new_chunks, new_vectors, dim, limits, spill: Path):
    """(passages, a new index): kept documents' passages and vectors, then the new ones.

    For a compressed index the vectors are gathered in the file `spill`, not in RAM.
    """
    rows = []
    if old is not None and keep:
        rows = [old.by_id[cid] for f in keep for cid in old.manifest.documents[f.id].passages]
    chunks = [old.chunks[r] for r in rows] if old is not None else []
    chunks.extend(new_chunks)
    compressed = kind_for(len(chunks), *limits) == "compressed"
    vectors = stack(old, rows, new_vectors, dim, spill if compressed else None)
    return chunks, make_faiss_index(vectors, *limits)


def embed_passages(
    embedder: Embedder, chunks: list[Chunk], progress: Progress | None = None
) -> np.ndarray:
    """The passages' vectors, one row each, embedded in steps of 256 (progress from 0.2 to 0.9)."""
    progress = progress or _no_progress
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


def _no_progress(fraction: float, message: str) -> None:
    pass
