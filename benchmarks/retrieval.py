"""Retrieval variants that need no new model, scored on the shared sets against the defaults.

For each set: recall@1, recall@5 (distinct documents of the fused top-10, as `assistant eval`)
and MRR of the default retriever and of variants computed in this process on the same index:

- what the dense vector of a passage is made of: its text (default), the document's title and
  then its text, the title and date and then its text;
- the document's date keyword-indexed with each passage (the title already is);
- candidates per retriever (default 30), RRF k (default 60), the keyword weight (default 1);
- a sentence-level score over the fused candidates (each candidate's best sentence's cosine to
  the question, fused as a third ranking);
- without the default's year ranking (the candidates dated in a year the question names,
  fused once more: `year_weight`), or with it at other weights.

Then, for sets of short answers (RGB), how many questions have their gold answer in the top_k
passages and in the evidence units picked from them, for top_k 5, 8 and 10.

    python benchmarks/retrieval.py ../shared/eval/rgb-noise ../shared/eval/clapnq-dev
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import bm25s
import numpy as np

from assistant.config import Config
from assistant.dates import years_named
from assistant.evaluation import answer_correct, is_short, load_set
from assistant.evidence import select, spans
from assistant.rag import Assistant, build_index, make_embedder
from assistant.retrieval import keywords, merge_overlaps, reading_order
from assistant.schema import Hit
from assistant.store import Index


def ranks(chunks, rows_of: Callable[[int], list[int]], questions) -> str:
    """recall@1, recall@5 and MRR of a ranking function (question number -> passage rows)."""
    found = []
    for i, q in enumerate(questions):
        rows = rows_of(i)
        hits = merge_overlaps([Hit(chunks[r], 0.0, 0.0) for r in rows])[:10]
        docs = list(dict.fromkeys(h.chunk.doc_id for h in hits))
        rank = next((n for n, d in enumerate(docs) if d in q.gold_docs), None)
        found.append(rank)
    r1 = np.mean([r == 0 for r in found])
    r5 = np.mean([r is not None and r < 5 for r in found])
    mrr = np.mean([0.0 if r is None else 1 / (r + 1) for r in found])
    return f"recall@1 {r1:.3f}  recall@5 {r5:.3f}  MRR {mrr:.3f}"


def one_set(set_dir: Path, embedder) -> None:
    """Print the variants' figures for one set."""
    cfg = Config.from_env()
    cfg = dataclasses.replace(
        cfg, seeds_dir=set_dir / "corpus", index_dir=cfg.cache_dir / "retrieval" / set_dir.name
    )
    build_index(cfg, embedder)
    assistant = Assistant(cfg, embedder, None)
    index = Index.load(cfg.index_dir)
    chunks = index.chunks
    questions = [q for q in load_set(set_dir).questions if q.answerable and q.gold_docs]
    qvecs = embedder.embed([q.question for q in questions])

    def texts(fmt: str) -> list[str]:
        return [fmt.format(title=c.title, date=c.date or "", text=c.text) for c in chunks]

    dense_of = {
        "text (default)": index.vectors(),
        "title, text": embedder.embed(texts("{title}\n{text}")),
        "title, date, text": embedder.embed(texts("{title} ({date})\n{text}")),
    }
    bm25_of = {}
    for name, fmt in (
        ("title, text (default)", "{title} {text}"),
        ("+ date", "{title} {date} {text}"),
    ):
        bm25_of[name] = bm25s.BM25()
        bm25_of[name].index([keywords(t) for t in texts(fmt)], show_progress=False)

    def keyword_rows(bm25, question: str, n: int) -> list[int]:
        tokens = [t for t in keywords(question) if t in bm25.vocab_dict]
        if not tokens:
            return []
        scores = bm25.get_scores(tokens)
        return [int(r) for r in np.argsort(-scores, kind="stable")[:n] if scores[r] > 0]

    best_sentence: dict[int, np.ndarray] = {}

    def sentence_cosine(row: int, qvec: np.ndarray) -> float:
        if row not in best_sentence:
            text = chunks[row].text
            best_sentence[row] = embedder.embed([text[a:b] for a, b in spans(text)] or [text])
        return float((best_sentence[row] @ qvec).max())

    def fused(dense="text (default)", bm25="title, text (default)", n=30, k=60, kw=1.0,
              sentences=False, year_w=cfg.year_weight):  # fmt: skip
        def rows_of(i: int) -> list[int]:
            sims = dense_of[dense] @ qvecs[i]
            score: dict[int, float] = {}
            lists = [(np.argsort(-sims, kind="stable")[:n].tolist(), 1.0)]
            lists.append((keyword_rows(bm25_of[bm25], questions[i].question, n), kw))
            for ranked, weight in lists:
                for rank, row in enumerate(ranked):
                    score[row] = score.get(row, 0.0) + weight / (k + rank + 1)
            rows = sorted(score, key=lambda r: (-score[r], r))[:n]
            years = years_named(questions[i].question)
            dated = [r for r in rows if years & years_named(chunks[r].date)]
            for rank, row in enumerate(dated):
                score[row] += year_w / (k + rank + 1)
            rows.sort(key=lambda r: (-score[r], r))
            if sentences:
                by_sentence = sorted(rows, key=lambda r: -sentence_cosine(r, qvecs[i]))
                for rank, row in enumerate(by_sentence):
                    score[row] += 1.0 / (k + rank + 1)
                rows = sorted(rows, key=lambda r: (-score[r], r))
            return rows

        return ranks(chunks, rows_of, questions)

    print(f"\n{set_dir.name}: {len(questions)} questions, {len(chunks)} passages")
    print(f"  {'default':34s} {fused()}")
    for name in list(dense_of)[1:]:
        print(f"  {'dense vector of ' + name:34s} {fused(dense=name)}")
    print(f"  {'keywords: title, date, text':34s} {fused(bm25='+ date')}")
    for n in (20, 50, 100):
        print(f"  {f'candidates {n}':34s} {fused(n=n)}")
    for k in (10, 30):
        print(f"  {f'RRF k {k}':34s} {fused(k=k)}")
    for kw in (0.5, 1.5):
        print(f"  {f'keyword weight {kw}':34s} {fused(kw=kw)}")
    print(f"  {'+ best sentence ranking':34s} {fused(sentences=True)}")
    for w in (0.0, 0.5, 2.0):
        print(f"  {f'year ranking weight {w}':34s} {fused(year_w=w)}")

    short = [q for q in questions if all(is_short(a) for a in q.answers)]
    if len(short) < len(questions):  # long answers (CLAPnq) are not found by matching
        return
    hits_of = {q.id: assistant.retrieve(q.question, k=10) for q in short}
    for top_k in (5, 8, 10):
        in_passages = sum(
            any(answer_correct(h.chunk.text, q.answers) for h in hits_of[q.id][:top_k])
            for q in short
        )
        units = {
            q.id: select(
                q.question,
                reading_order(hits_of[q.id][:top_k]),
                embedder.embed,
                cfg.evidence_units,
                cfg.evidence_words,
            )  # fmt: skip
            for q in short
        }
        in_units = sum(any(answer_correct(u.text, q.answers) for u in units[q.id]) for q in short)
        print(
            f"  top_k {top_k:2d}: gold answer in the passages {in_passages}/{len(short)}, "
            f"in the evidence units {in_units}/{len(short)}"
        )


def main(sets: list[str]) -> None:
    embedder = make_embedder(Config.from_env())
    for set_dir in map(Path, sets):
        one_set(set_dir, embedder)


if __name__ == "__main__":
    main(sys.argv[1:])
