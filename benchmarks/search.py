"""Search latency (p50/p99) of the exact, HNSW and compressed indexes, their recall and memory.

    python benchmarks/search.py --sizes 10000,100000,1000000 --repeats 3
    python benchmarks/search.py --sizes 10000000 --kinds compressed --rerank 1000,3000

Synthetic 384-d unit vectors (the embedder's size), clustered like real embeddings: 2,000
random centres plus noise. Queries are held-out points from the same mixture. The indexes
come from assistant.store.make_faiss_index (the limits pick the kind); one query at a time,
k=30 (the retriever's candidate count). Recall@10 is measured against the exact top 10.
HNSW is built only while its projected build time stays under --max-build-s; above that it
is measured on the largest size that fits, and the output says so.

The vectors are written in blocks to a file under --dir (10M are 15.4 GB) and memory-mapped,
and the exact top 10 is computed block by block, so no size needs them all in RAM. The
compressed index then searches as a loaded one does, reading exact vectors from that file
with pread; its line gives the process's resident memory after the searches (VmRSS, and
RssAnon: the part that is not file pages the kernel can drop), its peak while searching
(VmHWM, reset after the build), and the peak up to the end of the build, which counts the
pages of the memory-mapped vector file that generation, exact search and build touched.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from assistant.store import RawVectors, make_faiss_index  # noqa: E402

DIM = 384


def clustered(
    n: int, rng: np.random.Generator, centres: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """n unit vectors scattered around random centres, generated in blocks into out (or RAM)."""
    out = np.empty((n, DIM), dtype=np.float32) if out is None else out
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


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The exact top k rows of data for each query, computed 250,000 rows at a time."""
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(data), 250_000):
        block = np.ascontiguousarray(data[start : start + 250_000])
        scores, rows = make_faiss_index(block, len(block), len(block)).search(queries, k)
        scores, rows = np.hstack([best, scores]), np.hstack([ids, rows + start])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)
    return ids


def memory_gb() -> dict[str, float]:
    """VmRSS, RssAnon and VmHWM of this process, in GB."""
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {k: int(fields[k].split()[0]) / 1e6 for k in ("VmRSS", "RssAnon", "VmHWM")}


def compressed_rows(path: Path, n: int, queries, exact_ids, args) -> None:
    """Build the compressed index over the vectors in path; one line per nprobe and rerank."""
    data = np.memmap(path, dtype=np.float32, mode="r", shape=(n, DIM))
    started = time.perf_counter()
    index = make_faiss_index(data, 0, 0)
    build_s = time.perf_counter() - started
    # Search as a loaded index does: exact vectors read from the file, nothing of it mapped.
    index.parts = [RawVectors(path, DIM)]
    del data
    gc.collect()
    build_peak = memory_gb()["VmHWM"]
    Path("/proc/self/clear_refs").write_text("5")  # restart VmHWM: from here it is the search's
    for nprobe in (int(x) for x in args.nprobe.split(",")) if args.nprobe else [None]:
        for rerank in (int(x) for x in args.rerank.split(",")) if args.rerank else [None]:
            index.ivf.nprobe = nprobe or index.ivf.nprobe
            index.rerank = rerank or index.rerank
            runs = [latencies_ms(index, queries, args.k) for _ in range(args.repeats)]
            c50 = statistics.median(pct(t, 50) for t, _ in runs)
            c99 = statistics.median(pct(t, 99) for t, _ in runs)
            recall = recall_at(runs[0][1], exact_ids, 10)
            mem = memory_gb()
            print(
                f"{n:>9} {'compr.':<6} {build_s:>8.1f} {c50:>8.2f} {c99:>8.2f} {recall:>10.3f}"
                f"  nlist {index.ivf.nlist}, PQ{index.ivf.pq.M}, nprobe {index.ivf.nprobe}, "
                f"rerank {index.rerank}; RSS {mem['VmRSS']:.2f} GB (anon "
                f"{mem['RssAnon']:.2f}), search peak {mem['VmHWM']:.2f} GB, "
                f"build peak {build_peak:.2f} GB",
                flush=True,
            )


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def recall_at(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    pairs = zip(approx, exact, strict=True)
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--kinds", default="exact,hnsw", help="of exact, hnsw, compressed")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument(
        "--max-build-s", type=float, default=600.0, help="HNSW build-time budget per size"
    )
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads (0: default)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/search-bench"), help="vectors")
    parser.add_argument("--nprobe", default="", help="compressed: lists searched, e.g. 8,16")
    parser.add_argument("--rerank", default="", help="compressed: candidates, e.g. 100,300")
    parser.add_argument("--keep", action="store_true", help="keep the vector files in --dir")
    args = parser.parse_args()
    kinds = set(args.kinds.split(","))
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
    args.dir.mkdir(parents=True, exist_ok=True)
    for n in (int(s) for s in args.sizes.split(",")):
        path = args.dir / f"vectors-{n}.f32"
        data = clustered(n, rng, centres, np.memmap(path, np.float32, "w+", shape=(n, DIM)))
        data.flush()
        started = time.perf_counter()
        exact_ids = exact_top(data, queries, args.k)
        print(f"{n:>9} exact top {args.k} in blocks: {time.perf_counter() - started:.1f} s")
        e50 = None
        if "exact" in kinds:
            started = time.perf_counter()
            exact = make_faiss_index(np.asarray(data), n, n)
            exact_build = time.perf_counter() - started
            exact_runs = [latencies_ms(exact, queries, args.k) for _ in range(args.repeats)]
            e50 = statistics.median(pct(t, 50) for t, _ in exact_runs)
            e99 = statistics.median(pct(t, 99) for t, _ in exact_runs)
            print(
                f"{n:>9} {'exact':<6} {exact_build:>8.1f} {e50:>8.2f} {e99:>8.2f} {'1.000':>10}",
                flush=True,
            )
            del exact

        if "hnsw" in kinds:
            m = n
            if hnsw_rate is not None and hnsw_rate * n * 1.15 > args.max_build_s:
                m = int(args.max_build_s / (hnsw_rate * 1.15))
            started = time.perf_counter()
            hnsw = make_faiss_index(np.asarray(data[:m]), 0, m)
            build_s = time.perf_counter() - started
            hnsw_rate = build_s / m
            # Recall needs the exact answer on the same subset.
            hnsw_exact = exact_ids if m == n else exact_top(data[:m], queries, args.k)
            runs = [latencies_ms(hnsw, queries, args.k) for _ in range(args.repeats)]
            h50 = statistics.median(pct(t, 50) for t, _ in runs)
            h99 = statistics.median(pct(t, 99) for t, _ in runs)
            recall = recall_at(runs[0][1], hnsw_exact, 10)
            note = "" if m == n else f"  (HNSW built on {m} vectors: {n} projected over budget)"
            speed = f"  {e50 / h50:.1f}x" if e50 else ""
            print(
                f"{n:>9} {'hnsw':<6} {build_s:>8.1f} {h50:>8.2f} {h99:>8.2f} {recall:>10.3f}"
                f"{speed}{note}",
                flush=True,
            )
            del hnsw
        del data
        if "compressed" in kinds:
            compressed_rows(path, n, queries, exact_ids, args)
        if not args.keep:
            path.unlink()


if __name__ == "__main__":
    main()
