"""Plain data passed between modules: documents, passages, hits, citations, answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


@dataclass(frozen=True)
class Document:
    """One source file read from the seeds folder; `id` is its path below that folder."""

    id: str
    title: str
    text: str
    date: str | None = None  # as the document states it (metadata, a dateline), else None
    # Offset where each PDF page starts (page n at page_starts[n-1]); empty for other formats.
    page_starts: tuple[int, ...] = ()
    file_date: str | None = None  # the file's modification day (ISO), shown without a `date`


class IndexedDocument(TypedDict):
    """A document as the index lists it (a dict: the window renders it as is)."""

    id: str
    title: str
    date: str | None
    file_date: str | None
    passages: int


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, with its exact place: text == document.text[start:end]."""

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    paragraph: int
    title: str
    date: str | None = None
    page: int | None = None
    file_date: str | None = None  # never shown to the model: the file's date, not the text's


@dataclass(frozen=True)
class Hit:
    """A passage returned by retrieval: fused rank score and cosine similarity to the query."""

    chunk: Chunk
    score: float
    similarity: float = 0.0


@dataclass(frozen=True)
class Citation:
    """One [n] marker of an answer, resolved to the passage it points at."""

    n: int
    doc_id: str
    passage_id: str
    supported: bool
    quote: str  # the sentence of the passage that best supports the cited claim


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer with the markers it carries and whether they support it."""

    text: str
    markers: tuple[int, ...]
    supported: bool
    reason: str = ""  # why it was left out of the answer, in words ("" for a kept sentence)


@dataclass(frozen=True)
class Evidence:
    """A sentence of a retrieved passage put before the model, numbered `n` in the prompt.

    `text == document.text[start:end]`; `passage` is the 1-based number of its Hit in the Answer.
    """

    n: int
    passage: int
    doc_id: str
    passage_id: str
    text: str
    start: int
    end: int
    date: str = ""
    similarity: float = 0.0
    score: float = 0.0
    title: str = ""  # its document's title
    doc_rank: int = 1  # the place of its document among the retrieved passages' documents


@dataclass(frozen=True)
class Answer:
    """The reply to one question: text, evidence and how long it took."""

    question: str
    text: str
    abstained: bool
    passages: tuple[Hit, ...] = ()
    citations: tuple[Citation, ...] = ()
    sentences: tuple[Sentence, ...] = ()
    standalone_question: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    # The evidence units the model was shown; the first streamed update carries them.
    evidence: tuple[Evidence, ...] = ()
    # The answer-or-refuse decision: its score, the threshold and the features it used.
    decision: dict[str, float] = field(default_factory=dict)
    # Sentences of the model's reply left out of the text, each with its reason.
    dropped: tuple[Sentence, ...] = ()
