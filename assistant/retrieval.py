"""Finding passages: dense (FAISS) and keyword (BM25) search, fused, overlapping passages merged.

A question that names a year ranks the candidates whose document is dated that year a third
time: news about "the 2019 U.S. Open" is most often dated 2019 ("Sep 7, 2019 ...") while the
snippets about other editions of the same event are not (docs/EVAL.md). That ranking chooses
which passages are found; each keeps its fused score, by which the answer reads them.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from . import dates
from .embedding import Embedder
from .schema import Chunk, Hit
from .store import Index

STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have he her his how "
    "i if in into is it its me my no not of on or our she so than that the their them then there "
    "these they this those to was we were what when where which who whom why will with would you "
    "your about after also any all before between both each few more most other over same some "
    "such only own under until up very just should now tell said says".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


def keywords(text: str) -> list[str]:
    """Lower-cased content words with a light plural stem: the BM25 vocabulary."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


class Retriever:
    """Dense + BM25 search over one loaded Index, fused by weighted reciprocal rank."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        candidates: int = 30,
        dense_weight: float = 1.0,
        keyword_weight: float = 1.0,
        rrf_k: int = 60,
        year_weight: float = 1.0,
    ) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG when imported and logs every index build there.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.dense_weight = dense_weight
        self.keyword_weight = keyword_weight
        self.rrf_k = rrf_k
        self.year_weight = year_weight
        self.bm25 = None
        corpus = [keywords(c.title + " " + c.text) for c in index.chunks]
        if any(corpus):
            self.bm25 = bm25s.BM25()
            self.bm25.index(corpus, show_progress=False)

    def search(self, query: str, k: int) -> list[Hit]:
        """The k best passages for query, in the order chosen, overlapping neighbours merged.

        Hit.score is the fused relevance, without the year ranking: the order to read them in.
        """
        if not self.index.chunks:
            return []
        qvec = self.embedder.embed([query])[0]
        dense = self.index.search(qvec, self.candidates)
        fused: dict[int, float] = {}
        for rank, (row, _) in enumerate(dense):
            fused[row] = fused.get(row, 0.0) + self.dense_weight / (self.rrf_k + rank + 1)
        for rank, row in enumerate(self._keyword_rows(query)):
            fused[row] = fused.get(row, 0.0) + self.keyword_weight / (self.rrf_k + rank + 1)
        rows = sorted(fused, key=lambda r: (-fused[r], r))[: self.candidates]
        years = dates.years_named(query)
        if years and self.year_weight:
            # The candidates dated in a year the question names, in their fused order, ranked
            # a third time: this ranking chooses the passages, their score stays the fused one.
            chosen = dict(fused)
            dated = [r for r in rows if years & dates.years_named(self.index.chunks[r].date)]
            for rank, row in enumerate(dated):
                chosen[row] += self.year_weight / (self.rrf_k + rank + 1)
            rows.sort(key=lambda r: (-chosen[r], r))
        sims = self._similarities(qvec, rows, dict(dense))
        hits = [Hit(self.index.chunks[r], fused[r], sims[r]) for r in rows]
        return merge_overlaps(hits)[:k]

    def knows(self, word: str) -> bool:
        """Whether the documents hold the word (as a keyword)."""
        terms = keywords(word)
        return (
            self.bm25 is not None and bool(terms) and all(t in self.bm25.vocab_dict for t in terms)
        )

    def _keyword_rows(self, query: str) -> list[int]:
        if self.bm25 is None:
            return []
        vocab = self.bm25.vocab_dict
        tokens = [t for t in keywords(query) if t in vocab]
        if not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        n = min(self.candidates, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        return [int(r) for r in sorted(top, key=lambda r: (-scores[r], r)) if scores[r] > 0]

    def _similarities(self, qvec: np.ndarray, rows: list[int], known: dict[int, float]):
        missing = [r for r in rows if r not in known]
        sims = dict(known)
        if missing:
            vecs = self.index.vectors_of(missing)
            sims.update(zip(missing, (vecs @ qvec).tolist()))
        return sims


def reading_order(hits: list[Hit]) -> list[Hit]:
    """The passages found, most relevant first: one chosen for its date keeps its place."""
    return sorted(hits, key=lambda h: -h.score)


def merge_overlaps(hits: list[Hit]) -> list[Hit]:
    """Join hits of one document whose character ranges overlap or touch, keeping rank order."""
    merged: list[Hit] = []
    for hit in hits:
        for i, kept in enumerate(merged):
            a, b = kept.chunk, hit.chunk
            if a.doc_id == b.doc_id and a.start <= b.end and b.start <= a.end:
                merged[i] = Hit(
                    _join(a, b), max(kept.score, hit.score), max(kept.similarity, hit.similarity)
                )
                break
        else:
            merged.append(hit)
    return merged


def _join(a: Chunk, b: Chunk) -> Chunk:
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.end <= first.end:
        text, end = first.text, first.end
    else:
        text = (
            first.text
            + (" " * max(0, second.start - first.end))
            + second.text[max(0, first.end - second.start) :]
        )
        end = second.end
    return Chunk(
        id=f"{first.id}+{second.id.rsplit('#', 1)[-1]}",
        doc_id=first.doc_id,
        text=text,
        start=first.start,
        end=end,
        paragraph=first.paragraph,
        title=first.title,
        date=first.date,
        page=first.page,
        file_date=first.file_date,
    )
