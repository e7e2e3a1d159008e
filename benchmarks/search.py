"""Search latency (p50/p99) of the exact and the approximate (HNSW) index, and HNSW's recall.

    python benchmarks/search.py --sizes 10000,100000,1000000 --repeats 3

Synthetic 384-d unit vectors (the embedder's size), clustered like real embeddings: 2,000
random centres plus noise. Queries are held-out points from the same mixture. Both indexes
come from assistant.store.make_faiss_index (exact_limit picks the kind); one query at a time,
k=30 (the retriever's candidate count). Recall@10 of HNSW is measured against the exact top 10.
HNSW is built only while its projected build time stays under --max-build-s; above that it
is measured on the largest size that fits, and the output says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from assistant.store import make_faiss_index  # noqa: E402

DIM = 384


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """n unit vectors scattered around random centres, generated in blocks to bound memory."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = centres[rng.integers(0, len(centres), m)]
        block += rng.normal(scale=0.06, size=(m, DIM)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out


def latencies_ms(index, queries: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    times, ids = [], np.empty((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries):
        started = time.perf_counter()
        _, rows = index.search(q.reshape(1, -1), k)
        times.append((time.perf_counter() - started) * 1000)
        ids[i] = rows[0]
    return times, ids


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def recall_at(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    pairs = zip(approx, exact, strict=True)
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument(
        "--max-build-s", type=float, default=600.0, help="HNSW build-time budget per size"
    )
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads (0: default)")
    args = parser.parse_args()
    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = clustered(args.queries, rng, centres)
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, dim {DIM}, "
        f"k={args.k}, {args.queries} single queries x {args.repeats} repeats (medians)"
    )
    print(
        f"{'vectors':>9} {'index':<6} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'recall@10':>10}  speed-up p50"
    )
    hnsw_rate = None  # seconds per vector, from the previous size, to project the next build
    for n in (int(s) for s in args.sizes.split(",")):
        data = clustered(n, rng, centres)
        started = time.perf_counter()
        exact = make_faiss_index(data, exact_limit=n)
        exact_build = time.perf_counter() - started
        exact_runs = [latencies_ms(exact, queries, args.k) for _ in range(args.repeats)]
        exact_ids = exact_runs[0][1]
        e50 = statistics.median(pct(t, 50) for t, _ in exact_runs)
        e99 = statistics.median(pct(t, 99) for t, _ in exact_runs)
        print(
            f"{n:>9} {'exact':<6} {exact_build:>8.1f} {e50:>8.2f} {e99:>8.2f} {'1.000':>10}",
            flush=True,
        )
        del exact

        m = n
        if hnsw_rate is not None and hnsw_rate * n * 1.15 > args.max_build_s:
            m = int(args.max_build_s / (hnsw_rate * 1.15))
        started = time.perf_counter()
        hnsw = make_faiss_index(data[:m], exact_limit=0)
        build_s = time.perf_counter() - started
        hnsw_rate = build_s / m
        if m < n:
            # Recall needs the exact answer on the same subset.
            sub_exact = make_faiss_index(data[:m], exact_limit=m)
            exact_ids = latencies_ms(sub_exact, queries, args.k)[1]
            del sub_exact
        runs = [latencies_ms(hnsw, queries, args.k) for _ in range(args.repeats)]
        h50 = statistics.median(pct(t, 50) for t, _ in runs)
        h99 = statistics.median(pct(t, 99) for t, _ in runs)
        recall = recall_at(runs[0][1], exact_ids, 10)
        note = "" if m == n else f"  (HNSW built on {m} vectors: {n} projected over budget)"
        print(
            f"{n:>9} {'hnsw':<6} {build_s:>8.1f} {h50:>8.2f} {h99:>8.2f} {recall:>10.3f}"
            f"  {e50 / h50:.1f}x{note}",
            flush=True,
        )
        del hnsw, data


if __name__ == "__main__":
    main()
