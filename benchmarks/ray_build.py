"""Full index builds on this machine: local vs. Ray (a local instance), same corpus, one process.

    python benchmarks/ray_build.py --corpus ../shared/eval/rgb-noise/corpus --repeats 3

Builds each corpus from scratch with indexing.build, once with the local runner and once with
distributed.RayRunner, alternating which goes first, and prints the medians' passages/s and the
ratio Ray / local. Corpora: --corpus, and a larger synthetic one of --synthetic documents made
by recombining --corpus's sentences (seeded, so every run builds the same one).

Both use the shipped all-MiniLM-L6-v2, passages of 200 word pieces with 30 overlap. The local
build loads its model before the clock starts, as `assistant index` does; the Ray instance is
started once, before the clock (its start time is printed apart), and each Ray build's time
includes starting its workers and loading one model in each, which every `--ray` build pays.
On one machine Ray can only add overhead: the local build already uses every core in torch.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import distributed  # noqa: E402
from assistant.embedding import SentenceTransformerEmbedder  # noqa: E402
from assistant.indexing import ChunkerSettings, LocalRunner, Runner, build  # noqa: E402

SETTINGS = ChunkerSettings(chunk_tokens=200, chunk_overlap=30)


def synthesize(corpus: Path, documents: int, out: Path) -> Path:
    """Write `documents` files of 4-16 sentences drawn from corpus's files (seed 0) into out."""
    sentences = []
    for path in sorted(corpus.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 40]
    rng = random.Random(0)
    out.mkdir(parents=True)
    for i in range(documents):
        body = " ".join(rng.choice(sentences) for _ in range(rng.randint(4, 16)))
        (out / f"synthetic-{i:05d}.txt").write_text(f"Synthetic document {i}\n\n{body}\n")
    return out


def _name(corpus: Path) -> str:
    """rgb-noise for ../shared/eval/rgb-noise/corpus, else the folder's name."""
    corpus = corpus.resolve()
    return corpus.parent.name if corpus.name == "corpus" else corpus.name


def timed_build(corpus: Path, embedder: SentenceTransformerEmbedder, runner: Runner) -> dict:
    """One full build of corpus into a fresh folder: passages and wall seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report = build(corpus, Path(tmp) / "index", embedder, SETTINGS, runner=runner)
        return {"passages": report.passages, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of documents")
    parser.add_argument("--synthetic", type=int, default=3000, help="documents in the larger one")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])  # the local build's model loads before the clock
    runners: dict[str, Runner] = {
        "local": LocalRunner(),
        "ray": distributed.RayRunner(SentenceTransformerEmbedder),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, distributed.session():
        ray_start_s = time.perf_counter() - started
        corpora = {
            _name(args.corpus): args.corpus.resolve(),
            f"synthetic-{args.synthetic}": synthesize(args.corpus, args.synthetic, Path(tmp) / "s"),
        }
        runs: dict[tuple[str, str], list[dict]] = {}
        for name, corpus in corpora.items():
            for i in range(args.repeats):
                # Alternate the order so neither always runs on a warmer disk cache.
                for kind in ("local", "ray") if i % 2 == 0 else ("ray", "local"):
                    r = timed_build(corpus, embedder, runners[kind])
                    runs.setdefault((name, kind), []).append(r)
                    print(
                        f"{name} repeat {i + 1} {kind:<5} {r['passages']:>6} passages "
                        f"{r['seconds']:7.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )

    print(
        f"medians of {args.repeats} full builds; local Ray instance started in {ray_start_s:.1f} s"
    )
    print(f"{'corpus':<24}{'build':<7}{'passages':>9}{'seconds':>9}{'passages/s':>12}")
    for name in corpora:
        pps = {}
        for kind in ("local", "ray"):
            passages = statistics.median(r["passages"] for r in runs[(name, kind)])
            seconds = statistics.median(r["seconds"] for r in runs[(name, kind)])
            pps[kind] = passages / seconds
            print(f"{name:<24}{kind:<7}{passages:>9.0f}{seconds:>9.2f}{pps[kind]:>12.1f}")
        print(f"{name:<24}throughput ratio ray/local: {pps['ray'] / pps['local']:.2f}x")


if __name__ == "__main__":
    main()
