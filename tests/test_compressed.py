"""The compressed index kind (IVF-PQ, exact vectors on disk), with its limit lowered to 1,000."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from fakes import HashingEmbedder

from assistant import store
from assistant.indexing import ChunkerSettings, build
from assistant.store import Index, IndexLoadError, kind_for

SETTINGS = ChunkerSettings(chunk_tokens=40, chunk_overlap=5)
LIMITS = {"exact_limit": 10, "compressed_limit": 1_000}
WORDS = [f"w{i}" for i in range(3000)]


def make_docs(count: int, seed: int = 0) -> dict[str, str]:
    """`count` documents of 1,500 random words: about 43 passages each."""
    rng = random.Random(seed)
    return {f"d{i:03}.txt": " ".join(rng.choices(WORDS, k=1500)) for i in range(count)}


def write_docs(seeds, docs: dict[str, str]) -> None:
    seeds.mkdir(exist_ok=True)
    for name, text in docs.items():
        (seeds / name).write_text(text)


def run_build(seeds, index_dir, embedder=None):
    return build(seeds, index_dir, embedder or HashingEmbedder(), SETTINGS, **LIMITS)


@pytest.fixture
def built(tmp_path):
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, make_docs(30))
    report = run_build(seeds, index_dir)
    return seeds, index_dir, report


def assert_exact_neighbours(index: Index, emb: HashingEmbedder, passages: list[int]) -> None:
    """Each passage's own vector finds it first, and every score is the exact cosine."""
    vectors = emb.embed([index.chunks[p].text for p in passages])
    for p, vector in zip(passages, vectors, strict=True):
        hits = index.search(vector, 5)
        assert hits[0][0] == p and hits[0][1] == pytest.approx(1.0, abs=1e-5)
        found = emb.embed([index.chunks[r].text for r, _ in hits])
        np.testing.assert_allclose([s for _, s in hits], found @ vector, atol=1e-5)


def test_the_kind_is_chosen_by_size(built):
    assert [kind_for(n, 10, 1_000) for n in (10, 11, 1_000, 1_001)] == [
        "exact",
        "hnsw",
        "hnsw",
        "compressed",
    ]
    _, index_dir, report = built
    assert report.index_kind == "compressed" and report.passages > 1_000
    version = store.current_version(index_dir)
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["index"] == "compressed" and manifest["rerank"] == store.RERANK
    assert set(manifest["files"]) == {"passages.jsonl", "vectors.faiss", "vectors.f32"}
    assert (version / "vectors.f32").stat().st_size == report.passages * 256 * 4


def test_search_finds_exact_neighbours_the_same_after_a_reload(built):
    _, index_dir, _ = built
    emb = HashingEmbedder()
    index = Index.load(index_dir)
    passages = list(range(0, len(index.chunks), 97))
    assert_exact_neighbours(index, emb, passages)
    again = Index.load(index_dir)
    for vector in emb.embed([index.chunks[p].text for p in passages]):
        assert again.search(vector, 30) == index.search(vector, 30)
    # Stored vectors are the embedder's, exactly: rebuilds and retrieval lose nothing.
    np.testing.assert_array_equal(index.vectors(), emb.embed([c.text for c in index.chunks]))


def test_an_update_appends_and_never_returns_dead_rows(built):
    seeds, index_dir, first = built
    emb = HashingEmbedder()
    removed = Index.load(index_dir)
    gone = [c.text for c in removed.chunks if c.doc_id in ("d003.txt", "d005.txt")]
    (seeds / "d003.txt").write_text(make_docs(1, seed=9)["d000.txt"])
    (seeds / "d005.txt").unlink()
    write_docs(seeds, {"new.txt": make_docs(1, seed=7)["d000.txt"]})
    report = run_build(seeds, index_dir, emb)
    assert report.appended and report.index_kind == "compressed"
    assert (report.added, report.changed, report.removed) == (
        ["new.txt"],
        ["d003.txt"],
        ["d005.txt"],
    )
    index = Index.load(index_dir)
    assert len(index.manifest.dead_rows) == len(gone)
    assert index.faiss.ntotal == len(index.chunks) + len(gone)
    np.testing.assert_array_equal(index.vectors(), emb.embed([c.text for c in index.chunks]))
    live = {c.text for c in index.chunks}
    for vector in emb.embed(gone[::5]):
        hits = index.search(vector, 50)
        assert len(hits) == 50 and all(index.chunks[r].text in live for r, _ in hits)
    new = [p for p, c in enumerate(index.chunks) if c.doc_id in ("new.txt", "d003.txt")]
    assert_exact_neighbours(index, emb, new[::7])

    # Past the dead share, a clean rebuild, its vectors gathered on disk, not in RAM.
    for i in range(6, 10):
        (seeds / f"d{i:03}.txt").unlink()
    report = run_build(seeds, index_dir)
    assert not report.appended and report.index_kind == "compressed"
    index = Index.load(index_dir)
    assert index.manifest.dead_rows == () and index.faiss.ntotal == len(index.chunks)
    assert not (index_dir / store.SPILL).exists()
    np.testing.assert_array_equal(index.vectors(), emb.embed([c.text for c in index.chunks]))
    assert_exact_neighbours(index, emb, list(range(0, len(index.chunks), 101)))

    # Below the limit it becomes an HNSW graph again.
    for path in sorted(seeds.iterdir())[20:]:
        path.unlink()
    assert run_build(seeds, index_dir).index_kind == "hnsw"


def test_the_vectors_file_is_read_on_demand_not_loaded(built):
    _, index_dir, _ = built
    index = Index.load(index_dir)
    raw = store.current_version(index_dir) / store.RAW
    row = int(index.rows[7])
    marker = np.full(256, 0.5, dtype=np.float32)
    with open(raw, "r+b") as fh:  # an edit after loading is seen: nothing was copied to RAM
        fh.seek(row * 256 * 4)
        fh.write(marker.tobytes())
    np.testing.assert_array_equal(index.vectors_of([7])[0], marker)


def test_a_big_file_gets_a_sampled_digest_that_still_catches_truncation(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "FULL_DIGEST_BYTES", 1 << 20)
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, make_docs(30))
    run_build(seeds, index_dir)
    version = store.current_version(index_dir)
    files = json.loads((version / "manifest.json").read_text())["files"]
    assert files["vectors.f32"].startswith("sampled-sha256:")
    assert not files["passages.jsonl"].startswith("sampled")  # under 1 MiB: hashed whole
    Index.load(index_dir)
    raw = version / store.RAW
    raw.write_bytes(raw.read_bytes()[: -256 * 4])
    with pytest.raises(IndexLoadError, match="vectors.f32 was changed after the build"):
        Index.load(index_dir)


def test_a_version_written_before_the_compressed_kind_still_loads(tmp_path):
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, make_docs(2))
    build(seeds, index_dir, HashingEmbedder(), SETTINGS, exact_limit=10)
    path = store.current_version(index_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["rerank"]  # as the previous release wrote it
    path.write_text(json.dumps(manifest))
    index = Index.load(index_dir)
    assert index.manifest.index == "hnsw" and index.manifest.rerank == 0
