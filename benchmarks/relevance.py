"""How the min_relevance gate splits answerable from unanswerable questions on the shared sets.

Prints, per set, percentiles of the best passage's cosine similarity and the share of questions
below candidate thresholds; the default ASSISTANT_MIN_RELEVANCE was chosen from this output.

    python benchmarks/relevance.py ../shared/eval/clapnq-dev ../shared/eval/rgb-noise \
        ../shared/eval/rgb-reject
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from assistant.config import Config
from assistant.rag import Assistant, build_index, make_embedder

THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35)


def main(sets: list[str]) -> None:
    embedder = None
    for set_dir in map(Path, sets):
        cfg = Config.from_env()
        cfg = dataclasses.replace(
            cfg, seeds_dir=set_dir / "corpus", index_dir=cfg.cache_dir / "relevance" / set_dir.name
        )
        embedder = embedder or make_embedder(cfg)
        build_index(cfg, embedder)
        assistant = Assistant(cfg, embedder, None)
        questions = [json.loads(line) for line in (set_dir / "questions.jsonl").open()]
        for answerable in (True, False):
            best = np.array(
                [
                    max(h.similarity for h in assistant.retrieve(q["question"]))
                    for q in questions
                    if q["answerable"] == answerable
                ]
            )
            if not len(best):
                continue
            p1, p5, p50 = np.percentile(best, [1, 5, 50])
            below = "  ".join(f"<{t}: {(best < t).mean():.3f}" for t in THRESHOLDS)
            kind = "answerable" if answerable else "unanswerable"
            print(
                f"{set_dir.name:12s} {kind:12s} n={len(best):3d} p1={p1:.3f} p5={p5:.3f} "
                f"median={p50:.3f}  share {below}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
