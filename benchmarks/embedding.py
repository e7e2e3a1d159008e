"""Embedding backends side by side: torch fp32, ONNX Runtime fp32, ONNX Runtime int8.

    python benchmarks/embedding.py --corpus ../shared/eval/rgb-noise/corpus --repeats 3
    python benchmarks/embedding.py --corpus ../shared/eval/rgb-noise/corpus --profile

On the same passages (the corpus read and split by the project's own reader and chunker, 200
word pieces with 30 overlap), in one process, with every model loaded before the clock starts:

- passages/s of each backend, embedding the passages 256 at a time as a build does, at the
  configured batch size; medians over --repeats (backends in rotating order), ratios to torch;
- one-question latency (what a user waits for before the search), median over the questions;
- agreement with the torch vectors: the least passage cosine to its torch vector, the largest
  change of a question-passage cosine, and how many of torch's 5 nearest passages stay;
- batch sizes, and length-sorted against unsorted batching, on the first --sweep passages;
- load times, each in a fresh process: the one-time ONNX export into an empty cache, then a
  later start (imports included).

--profile instead times where `assistant.indexing.build` spends a full build of the corpus, per
backend, and the start that follows it (loading the index and building BM25, in the Retriever).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import chunking, indexing  # noqa: E402
from assistant.config import default_cache_dir  # noqa: E402
from assistant.embedding import BACKENDS, Embedder  # noqa: E402
from assistant.indexing import ChunkerSettings  # noqa: E402
from assistant.ingest import read_document, scan  # noqa: E402

CHUNK_TOKENS, CHUNK_OVERLAP = 200, 30
BUILD_STEP = 256  # texts per embed() call in indexing._embed_with_progress


def passages(corpus: Path, count_tokens: Callable[[str], int]) -> list[str]:
    """The corpus's passages, as a build reads and splits them."""
    files, _ = scan(corpus)
    out = []
    for f in files:
        doc = read_document(f)
        out += [c.text for c in chunking.split(doc, count_tokens, CHUNK_TOKENS, CHUNK_OVERLAP)]
    return out


def questions(corpus: Path, limit: int = 50) -> list[str]:
    """Questions of the eval set the corpus belongs to (its questions.jsonl), if any."""
    path = corpus.parent / "questions.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows][:limit]


def embed_as_build(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Embed the way indexing.build does: BUILD_STEP texts per call."""
    return np.concatenate(
        [embedder.embed(texts[i : i + BUILD_STEP]) for i in range(0, len(texts), BUILD_STEP)]
    )


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def rotations(names: list[str], repeats: int) -> Iterator[tuple[int, list[str]]]:
    """Each repeat starts with the next backend, so none always runs first or last."""
    for r in range(repeats):
        yield r, names[r % len(names) :] + names[: r % len(names)]


def load_seconds(backend: str, cache_dir: Path) -> float:
    """Seconds from a fresh process's first import to a loaded embedder that has embedded."""
    code = (
        "import sys, time; t = time.perf_counter(); sys.path.insert(0, sys.argv[3]);"
        "from assistant.embedding import BACKENDS; from pathlib import Path;"
        "e = BACKENDS[sys.argv[1]]('', 32, Path(sys.argv[2])); e.embed(['warm up']);"
        "print('SECONDS', time.perf_counter() - t)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, backend, str(cache_dir), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"loading {backend} failed:\n{proc.stderr[-3000:]}")
    return float(next(x for x in proc.stdout.splitlines() if x.startswith("SECONDS")).split()[1])


def agreement(vectors: np.ndarray, reference: np.ndarray, queries: np.ndarray, qref: np.ndarray):
    """(least passage cosine to its reference vector, largest question-passage cosine change,
    mean share of the reference's 5 nearest passages kept)."""
    own = (vectors * reference).sum(axis=1)
    scores, ref_scores = queries @ vectors.T, qref @ reference.T
    top = np.argsort(-scores, axis=1)[:, :5]
    ref_top = np.argsort(-ref_scores, axis=1)[:, :5]
    kept = [len(set(a) & set(b)) / 5 for a, b in zip(top, ref_top)]
    return float(own.min()), float(np.abs(scores - ref_scores).max()), float(np.mean(kept))


def compare(args: argparse.Namespace) -> None:
    cache = args.cache_dir
    embedders = {b: BACKENDS[b]("", args.batch_size, cache) for b in args.backends}
    for e in embedders.values():
        e.embed(["warm up"])  # load (and export, the first time) before any clock starts
    reference = embedders[args.backends[0]]
    started = time.perf_counter()
    texts = passages(args.corpus, reference.count_tokens)
    chunk_s = time.perf_counter() - started
    if args.limit:
        texts = texts[: args.limit]
    qs = questions(args.corpus)
    print(
        f"corpus {args.corpus}: {len(texts)} passages (read and split in {chunk_s:.1f} s), "
        f"{len(qs)} questions; batch {args.batch_size}, {BUILD_STEP} passages per embed() call; "
        f"medians of {args.repeats} runs"
    )
    for name, e in embedders.items():
        same = all(e.count_tokens(t) == reference.count_tokens(t) for t in texts)
        print(f"  {name}: token counts {'identical to' if same else 'DIFFER from'} the reference")

    seconds = collections.defaultdict(list)
    vectors: dict[str, np.ndarray] = {}
    for r, order in rotations(args.backends, args.repeats):
        for name in order:
            started = time.perf_counter()
            vectors[name] = embed_as_build(embedders[name], texts)
            seconds[name].append(time.perf_counter() - started)
            print(f"  repeat {r + 1} {name:<10} {seconds[name][-1]:7.2f} s", file=sys.stderr)
    query_ms = {
        name: 1000 * statistics.median(timed(lambda q=q, e=e: e.embed([q])) for q in qs or ["a"])
        for name, e in embedders.items()
    }
    qvecs = {name: e.embed(qs or ["a"]) for name, e in embedders.items()}

    base = args.backends[0]
    base_pps = len(texts) / statistics.median(seconds[base])
    print(
        f"\n{'backend':<11}{'passages/s':>11}{'ratio':>7}{'query ms':>10}"
        f"{'min cos':>9}{'max |dcos|':>11}{'top-5 kept':>11}"
    )
    for name in args.backends:
        pps = len(texts) / statistics.median(seconds[name])
        least, change, kept = agreement(vectors[name], vectors[base], qvecs[name], qvecs[base])
        print(
            f"{name:<11}{pps:>11.1f}{pps / base_pps:>6.2f}x{query_ms[name]:>10.1f}"
            f"{least:>9.4f}{change:>11.4f}{kept:>11.3f}"
        )

    subset = texts[: args.sweep]
    print(f"\nbatch size and sorting, first {len(subset)} passages: passages/s (median)")
    sizes = [8, 16, 32, 64, 128]
    print(f"{'backend':<11}" + "".join(f"{'batch ' + str(s):>10}" for s in sizes))
    for name, e in embedders.items():
        row = []
        for size in sizes:
            e.batch_size = size  # type: ignore[attr-defined]  # both backends have it
            runs = [timed(lambda e=e: e.embed(subset)) for _ in range(args.repeats)]
            row.append(len(subset) / statistics.median(runs))
        e.batch_size = args.batch_size  # type: ignore[attr-defined]
        print(f"{name:<11}" + "".join(f"{pps:>10.1f}" for pps in row))
    print(
        f"\nsorting at batch {args.batch_size}: unsorted = one embed() per batch in corpus order; "
        f"per {BUILD_STEP} = embed() sorts within each call, as a build calls it; all = one call"
    )
    ways: dict[str, Callable[[Embedder], object]] = {
        "unsorted": lambda e: [
            e.embed(subset[i : i + args.batch_size]) for i in range(0, len(subset), args.batch_size)
        ],
        f"per {BUILD_STEP}": lambda e: embed_as_build(e, subset),
        "all": lambda e: e.embed(subset),
    }
    print(f"{'backend':<11}" + "".join(f"{w:>10}" for w in ways))
    for name, e in embedders.items():
        pps = [
            len(subset)
            / statistics.median(timed(lambda w=way, e=e: w(e)) for _ in range(args.repeats))
            for way in ways.values()
        ]
        print(f"{name:<11}" + "".join(f"{x:>10.1f}" for x in pps))

    print(
        "\nload, each in a fresh process, imports included: first use with an empty cache "
        "(the ONNX export included), then the median of later starts"
    )
    for name in args.backends:
        with tempfile.TemporaryDirectory() as empty:
            first = load_seconds(name, Path(empty))
            later = statistics.median(load_seconds(name, Path(empty)) for _ in range(args.repeats))
        print(f"{name:<11} first use {first:6.1f} s   later starts {later:6.1f} s")


class Stopwatch:
    """Total seconds spent inside wrapped functions, by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)

    def wrap(self, label: str, fn: Callable) -> Callable:
        def timed_call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        return timed_call


def profile(args: argparse.Namespace) -> None:
    """Where a full build's time goes, per backend, and the start that follows it."""
    from assistant.retrieval import Retriever
    from assistant.store import Index

    print(f"full build of {args.corpus}, seconds (one run each, in this process)")
    phases = ["model load", "scan", "read", "split", "(of which count tokens)", "embed", "faiss"]
    phases += ["write", "other", "build total", "index load", "BM25 (at start)"]
    table: dict[str, dict[str, float]] = {}
    for name in args.backends:
        watch = Stopwatch()
        embedder = BACKENDS[name]("", args.batch_size, args.cache_dir)
        started = time.perf_counter()
        embedder.count_tokens("warm up")
        embedder.embed(["warm up"])
        load = time.perf_counter() - started
        embedder.count_tokens = watch.wrap("(of which count tokens)", embedder.count_tokens)
        embedder.embed = watch.wrap("embed", embedder.embed)
        patches = {
            "scan": "scan",
            "read_bytes": "read",
            "read_document": "read",
            "make_faiss_index": "faiss",
            "write_version": "write",
        }
        originals = {attr: getattr(indexing, attr) for attr in patches}
        split = chunking.split
        for attr, label in patches.items():
            setattr(indexing, attr, watch.wrap(label, originals[attr]))
        chunking.split = watch.wrap("split", split)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                report = indexing.build(
                    args.corpus,
                    Path(tmp) / "index",
                    embedder,
                    ChunkerSettings(CHUNK_TOKENS, CHUNK_OVERLAP),
                )
                total = time.perf_counter() - started
                started = time.perf_counter()
                index = Index.load(Path(tmp) / "index")
                index_load = time.perf_counter() - started
                started = time.perf_counter()
                Retriever(index, embedder)
                bm25 = time.perf_counter() - started
        finally:
            for attr in patches:
                setattr(indexing, attr, originals[attr])
            chunking.split = split
        s = watch.seconds
        counted = sum(s[p] for p in ("scan", "read", "split", "embed", "faiss", "write"))
        table[name] = {
            **s,
            "model load": load,
            "other": total - counted,
            "build total": total,
            "index load": index_load,
            "BM25 (at start)": bm25,
        }
        print(f"  {name}: {report.passages} passages", file=sys.stderr)
    print(f"{'phase':<26}" + "".join(f"{n:>12}" for n in args.backends))
    for phase in phases:
        print(f"{phase:<26}" + "".join(f"{table[n].get(phase, 0.0):>12.2f}" for n in table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of documents")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="only the first N passages")
    parser.add_argument("--sweep", type=int, default=512, help="passages for batch and sorting")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="ONNX copies")
    parser.add_argument("--profile", action="store_true", help="where a full build's time goes")
    args = parser.parse_args()
    args.corpus = args.corpus.resolve()
    (profile if args.profile else compare)(args)


if __name__ == "__main__":
    main()
