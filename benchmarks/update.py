"""Updating a large index: new vectors added to the HNSW graph vs. the graph built again.

    python benchmarks/update.py --passages 100000 --changed 0.01 --repeats 3

Builds an index of about --passages passages (one per paragraph, ten paragraphs per file)
through the product's own `indexing.build`, above `exact_search_limit`, so it is an HNSW graph.
Then, per repeat, rewrites --changed of the files and updates the index twice: once as the
product does (new vectors added to the existing graph, old rows left dead) and once with the
graph rebuilt from every vector (the previous behaviour, forced by MAX_DEAD_SHARE = 0). Both
times cover the whole `build` call: loading the old index, splitting and embedding the changed
files, the graph work and writing the new version. The embedder is a synthetic one (vectors
of 384 dimensions like the shipped model's, scattered around 2,000 random centres as in
benchmarks/search.py, seeded by the passage's hash), so the figure is the index's work, not the
model's; benchmarks/indexing.py measures the model.

After each update it also measures recall@10 of the graph against exact search over the same
live vectors (200 queries), so adding to the graph is shown to keep search quality.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import indexing  # noqa: E402
from assistant.indexing import ChunkerSettings, build  # noqa: E402
from assistant.store import Index  # noqa: E402

PER_FILE = 10
WORDS = 30


class SyntheticEmbedder:
    """A unit vector per text near one of 2,000 centres, seeded by the text's hash."""

    id = "synthetic-384"
    dim = 384
    max_tokens = 256

    def __init__(self) -> None:
        self.centres = np.random.default_rng(0).normal(size=(2000, self.dim))

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            v = self.centres[rng.integers(len(self.centres))] + rng.normal(0, 0.06, self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def write_file(path: Path, rng: random.Random) -> None:
    paragraphs = [
        " ".join(f"w{rng.randrange(100000)}" for _ in range(WORDS)) + "." for _ in range(PER_FILE)
    ]
    path.write_text("\n\n".join(paragraphs), encoding="utf-8")


def recall_at_10(index: Index, queries: np.ndarray) -> float:
    vectors = index.vectors()
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found = [{r for r, _ in index.search(q, 10)} for q in queries]
    return float(np.mean([len(f & set(e)) / 10 for f, e in zip(found, exact)]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--changed", type=float, default=0.01, help="share of files rewritten")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    rng = random.Random(0)
    embedder = SyntheticEmbedder()
    settings = ChunkerSettings(chunk_tokens=WORDS + 10, chunk_overlap=0)
    limit = 10_000  # below --passages, so the index is a graph; the product default is 50,000
    queries = embedder.embed([f"query {i}" for i in range(200)])
    work = Path(tempfile.mkdtemp(prefix="bench-update-"))
    seeds, index_dir = work / "seeds", work / "index"
    seeds.mkdir()
    files = [seeds / f"doc{i:07}.txt" for i in range(max(1, args.passages // PER_FILE))]
    try:
        for path in files:
            write_file(path, rng)
        started = time.perf_counter()
        report = build(seeds, index_dir, embedder, settings, exact_limit=limit)
        print(
            f"first build: {report.passages} passages ({report.index_kind}) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        times: dict[str, list[float]] = {"add to graph": [], "rebuild graph": []}
        recalls: dict[str, list[float]] = {"add to graph": [], "rebuild graph": []}
        n_changed = max(1, round(len(files) * args.changed))
        for repeat in range(args.repeats):
            ways = list(times) if repeat % 2 == 0 else list(reversed(times))
            for way in ways:
                for path in rng.sample(files, n_changed):
                    write_file(path, rng)
                indexing.MAX_DEAD_SHARE = 0.1 if way == "add to graph" else 0.0
                started = time.perf_counter()
                report = build(seeds, index_dir, embedder, settings, exact_limit=limit)
                times[way].append(time.perf_counter() - started)
                assert report.appended == (way == "add to graph"), report.summary()
                index = Index.load(index_dir)
                recalls[way].append(recall_at_10(index, queries))
                dead = len(index.manifest.dead_rows)
                print(
                    f"repeat {repeat + 1} {way}: {n_changed} files changed, "
                    f"{times[way][-1]:.2f} s, {dead} dead rows, recall@10 {recalls[way][-1]:.3f}",
                    flush=True,
                )
        add, rebuild = (statistics.median(times[w]) for w in times)
        print(
            f"\nmedian over {args.repeats}: add to graph {add:.2f} s, rebuild graph "
            f"{rebuild:.2f} s: {rebuild / add:.1f}x faster; recall@10 "
            f"{statistics.median(recalls['add to graph']):.3f} vs "
            f"{statistics.median(recalls['rebuild graph']):.3f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
