"""Indexing throughput and peak memory: ours vs. LangChain's FAISS store, same embedding model.

    python benchmarks/indexing.py --corpus ../shared/eval/rgb-noise/corpus --repeats 3

Each pipeline runs in a fresh subprocess per repeat (so peak memory, read from the child's
VmHWM, is its own), with the model loaded before the clock starts. Both pipelines read the
files, split them into passages of 200 word pieces with 30 overlap, embed with the shipped
all-MiniLM-L6-v2 (batch 32) and save a FAISS index. Also times an incremental update after
changing 1% of the documents against a full rebuild (ours). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK_TOKENS, CHUNK_OVERLAP = 200, 30


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_ours(corpus: Path, work: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from assistant.embedding import SentenceTransformerEmbedder
    from assistant.indexing import ChunkerSettings, build

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])  # load the model before the clock starts
    started = time.perf_counter()
    report = build(corpus, work / "index", embedder, ChunkerSettings(CHUNK_TOKENS, CHUNK_OVERLAP))
    seconds = time.perf_counter() - started
    return {"passages": report.passages, "seconds": seconds}


def run_langchain(corpus: Path, work: Path) -> dict:
    from langchain_community.document_loaders import DirectoryLoader, TextLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    sys.path.insert(0, str(ROOT))
    from assistant.embedding import shipped_model_path

    embeddings = HuggingFaceEmbeddings(
        model_name=shipped_model_path(),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
    )
    embeddings.embed_query("warm up")
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        embeddings.client.tokenizer, chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP
    )
    started = time.perf_counter()
    loader = DirectoryLoader(
        str(corpus), glob="**/*.*", loader_cls=TextLoader, loader_kwargs={"encoding": "utf-8"}
    )
    docs = splitter.split_documents(loader.load())
    store = FAISS.from_documents(docs, embeddings)
    store.save_local(str(work / "lc-index"))
    seconds = time.perf_counter() - started
    return {"passages": len(docs), "seconds": seconds}


def run_incremental(corpus: Path, work: Path, fraction: float) -> dict:
    """Full build of a copy of the corpus, change `fraction` of its files, update in place."""
    sys.path.insert(0, str(ROOT))
    from assistant.embedding import SentenceTransformerEmbedder
    from assistant.indexing import ChunkerSettings, build

    copy = work / "corpus"
    shutil.copytree(corpus, copy)
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    settings = ChunkerSettings(CHUNK_TOKENS, CHUNK_OVERLAP)
    started = time.perf_counter()
    full = build(copy, work / "index", embedder, settings)
    full_s = time.perf_counter() - started

    files = sorted(p for p in copy.rglob("*") if p.is_file())
    changed = files[:: max(1, round(1 / fraction))][: max(1, math.ceil(len(files) * fraction))]
    for path in changed:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n\nUpdated: a sentence added for the incremental-update benchmark.\n")
    started = time.perf_counter()
    update = build(copy, work / "index", embedder, settings)
    update_s = time.perf_counter() - started
    assert len(update.changed) == len(changed), update.summary()
    return {
        "passages": full.passages,
        "seconds": full_s,
        "changed_docs": len(changed),
        "reembedded": update.embedded,
        "update_seconds": update_s,
    }


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.child == "ours":
            out = run_ours(args.corpus, work)
        elif args.child == "langchain":
            out = run_langchain(args.corpus, work)
        else:
            out = run_incremental(args.corpus, work, args.change)
    out["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(out))


def spawn(kind: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--corpus",
        str(args.corpus),
        "--change",
        str(args.change),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of documents")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--change", type=float, default=0.01, help="fraction of documents changed")
    parser.add_argument(
        "--child", choices=["ours", "langchain", "incremental"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    args.corpus = args.corpus.resolve()
    if args.child:
        child(args)
        return

    runs: dict[str, list[dict]] = {"ours": [], "langchain": [], "incremental": []}
    for i in range(args.repeats):
        # Alternate the order so neither pipeline always runs on a warmer disk cache.
        order = ["ours", "langchain"] if i % 2 == 0 else ["langchain", "ours"]
        for kind in [*order, "incremental"]:
            r = spawn(kind, args)
            runs[kind].append(r)
            print(
                f"repeat {i + 1} {kind:<11} {r['passages']:>6} passages "
                f"{r['seconds']:7.2f} s  peak {r['peak_rss_mb']:7.0f} MB"
                + (f"  update {r['update_seconds']:.2f} s" if "update_seconds" in r else ""),
                file=sys.stderr,
                flush=True,
            )

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    ours_pps = med("ours", "passages") / med("ours", "seconds")
    lc_pps = med("langchain", "passages") / med("langchain", "seconds")
    print(
        f"corpus {args.corpus} ({sum(1 for p in args.corpus.rglob('*') if p.is_file())} "
        f"files), medians of {args.repeats} runs, model loading excluded"
    )
    print(f"{'pipeline':<22}{'passages':>9}{'seconds':>9}{'passages/s':>12}{'peak MB':>9}")
    for name, kind, pps in (("ours", "ours", ours_pps), ("langchain FAISS", "langchain", lc_pps)):
        print(
            f"{name:<22}{med(kind, 'passages'):>9.0f}{med(kind, 'seconds'):>9.2f}"
            f"{pps:>12.1f}{med(kind, 'peak_rss_mb'):>9.0f}"
        )
    print(f"throughput ratio ours/langchain: {ours_pps / lc_pps:.2f}x")
    print(
        f"peak memory ratio ours/langchain: "
        f"{med('ours', 'peak_rss_mb') / med('langchain', 'peak_rss_mb'):.2f}x"
    )
    full, update = med("incremental", "seconds"), med("incremental", "update_seconds")
    print(
        f"incremental update ({runs['incremental'][0]['changed_docs']} documents changed, "
        f"{med('incremental', 'reembedded'):.0f} passages re-embedded): {update:.2f} s "
        f"vs full rebuild {full:.2f} s -> {full / update:.1f}x faster"
    )


if __name__ == "__main__":
    main()
