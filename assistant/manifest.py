"""The manifest of an index version: a typed record of manifest.json, checked when it is read.

It says how the version was built (format, embedder, chunker, index kind), what it holds (the
documents with their hashes and passage ids, the files it could not index and why) and the
hashes of its own files, so loading refuses a version that was damaged, edited or built with
other settings, with the command that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import AssistantError

FORMAT = "assistant-index v2"
# The document reader of manifests written before it was recorded (ingest.READER names today's).
FIRST_READER = "reader-v1"
REBUILD_HINT = "rebuild it with: python -m assistant index"


class IndexLoadError(AssistantError):
    """The index is missing, damaged or was built with other settings; the message says the fix."""


@dataclass(frozen=True)
class DocumentEntry:
    """An indexed document: hash and size of the bytes read, title, dates, its passages' ids."""

    sha256: str
    title: str
    date: str | None
    size: int
    passages: tuple[str, ...]
    file_date: str | None = None  # the file's modification day when it was read

    @classmethod
    def from_dict(cls, data: object) -> DocumentEntry:
        """Read one entry of the manifest's documents; TypeError or KeyError if malformed."""
        return cls(
            sha256=_field(data, "sha256", str),
            title=_field(data, "title", str),
            date=_field(data, "date", (str, type(None))),
            size=_field(data, "size", int),
            passages=tuple(_field(data, "passages", list, of=str)),
            # Absent from the manifests written before file dates were recorded.
            file_date=_field(data, "file_date", (str, type(None)))
            if isinstance(data, dict) and "file_date" in data
            else None,
        )

    def to_dict(self) -> dict:
        return {
            "sha256": self.sha256,
            "title": self.title,
            "date": self.date,
            "file_date": self.file_date,
            "size": self.size,
            "passages": list(self.passages),
        }


@dataclass(frozen=True)
class SkippedEntry:
    """A file a build could not index, and why; it is not read again until its hash changes."""

    sha256: str
    reason: str

    @classmethod
    def from_dict(cls, data: object) -> SkippedEntry:
        """Read one entry of the manifest's skipped files; TypeError or KeyError if malformed."""
        return cls(sha256=_field(data, "sha256", str), reason=_field(data, "reason", str))

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "reason": self.reason}


@dataclass(frozen=True)
class Manifest:
    """A version's manifest.json: how it was built, what it holds, the hashes of its files."""

    created: str  # UTC, ISO 8601
    embedder_id: str
    dim: int
    chunker: dict  # the build's ChunkerSettings as written; any difference means a full rebuild
    index: str  # "exact", "hnsw" or "compressed" (store.kind_for)
    passages: int
    documents: dict[str, DocumentEntry]  # by document id, sorted
    skipped: dict[str, SkippedEntry]  # by document id
    dead_rows: tuple[int, ...] = ()  # HNSW rows of removed passages, never returned by a search
    files: dict[str, str] = field(default_factory=dict)  # name: sha256, set when it is written
    reader: str = FIRST_READER  # how the documents were read (ingest.READER when built)
    # The build that wrote this version: "local", or "ray" when its new passages were read,
    # split and embedded on Ray (indexing.Runner.name). Each kind updates the other's index.
    built_with: str = "local"
    rerank: int = 0  # compressed: candidates ranked by their exact vectors in every search

    @classmethod
    def from_dict(cls, data: object, path: Path) -> Manifest:
        """Read the parsed manifest.json of the version in `path`, or raise IndexLoadError."""
        found = data.get("format") if isinstance(data, dict) else None
        if found != FORMAT:
            raise IndexLoadError(
                f"index in {path} has format {found!r}, this version reads {FORMAT!r}; "
                f"{REBUILD_HINT}"
            )
        assert isinstance(data, dict)  # it holds the right format
        try:
            embedder = _field(data, "embedder", dict)
            documents = _field(data, "documents", dict)
            skipped = _field(data, "skipped", dict)
            files = _field(data, "files", dict)
            return cls(
                created=_field(data, "created", str),
                embedder_id=_field(embedder, "id", str),
                dim=_field(embedder, "dim", int),
                chunker=_field(data, "chunker", dict),
                reader=_field(data, "reader", str) if "reader" in data else FIRST_READER,
                # Absent from the manifests written before Ray builds: those were all local.
                built_with=_field(data, "built_with", str) if "built_with" in data else "local",
                index=_field(data, "index", str),
                # Absent from the manifests written before the compressed kind.
                rerank=_field(data, "rerank", int) if "rerank" in data else 0,
                passages=_field(data, "passages", int),
                # Absent from the manifests written before graphs were updated in place.
                dead_rows=tuple(
                    _field(data, "dead_rows", list, of=int) if "dead_rows" in data else ()
                ),
                documents={k: DocumentEntry.from_dict(v) for k, v in documents.items()},
                skipped={k: SkippedEntry.from_dict(v) for k, v in skipped.items()},
                files={k: _field(files, k, str) for k in files},
            )
        except (KeyError, TypeError) as e:
            raise edited(path, e) from None

    def to_dict(self) -> dict:
        """The content of manifest.json, keys in the order every build has written them."""
        return {
            "format": FORMAT,
            "created": self.created,
            "embedder": {"id": self.embedder_id, "dim": self.dim},
            "chunker": self.chunker,
            "reader": self.reader,
            "built_with": self.built_with,
            "index": self.index,
            "rerank": self.rerank,
            "passages": self.passages,
            "dead_rows": list(self.dead_rows),
            "documents": {doc_id: d.to_dict() for doc_id, d in self.documents.items()},
            "skipped": {doc_id: s.to_dict() for doc_id, s in self.skipped.items()},
            "files": self.files,
        }


def _field(data: object, key: str, kind: type | tuple[type, ...], of: type | None = None):
    """data[key], checked to be a `kind` (of `of` items); KeyError or TypeError if it is not."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object holding {key!r}, found {type(data).__name__}")
    value = data[key]
    if not _is(value, kind) or (of is not None and not all(_is(v, of) for v in value)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        what = " or ".join(k.__name__ for k in kinds) + (f" of {of.__name__}" if of else "")
        raise TypeError(f"{key!r} is not a {what}")
    return value


def _is(value: object, kind: type | tuple[type, ...]) -> bool:
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is int)


def edited(path: Path, e: Exception) -> IndexLoadError:
    return IndexLoadError(
        f"index in {path} is incomplete or was edited ({type(e).__name__}: {e}); {REBUILD_HINT}"
    )
