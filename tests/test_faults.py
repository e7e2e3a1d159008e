"""Faults: a build killed with SIGKILL at several points, or failing to write, loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes import HashingEmbedder

from assistant.indexing import ChunkerSettings, build
from assistant.store import Index

SETTINGS = ChunkerSettings(chunk_tokens=40, chunk_overlap=5)
TESTS = Path(__file__).parent

# A build in a child process that announces when it reaches `point` and then waits to be killed.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    import faiss
    from fakes import HashingEmbedder
    from assistant import indexing
    point = {point!r}

    def pause(name):
        if name == point:
            print("AT", name, flush=True)
            time.sleep(60)

    class Embedder(HashingEmbedder):
        def embed(self, texts, progress=False):
            pause("embedding")
            return super().embed(texts)

    write_index = faiss.write_index
    def slow_write(index, path):
        write_index(index, path)
        pause("writing")
    faiss.write_index = slow_write

    symlink = os.symlink
    def slow_symlink(src, dst):
        symlink(src, dst)
        pause("swapping")
    os.symlink = slow_symlink

    indexing.build({seeds!r}, {index!r}, Embedder(), indexing.ChunkerSettings(40, 5))
    print("DONE", flush=True)
    """
)


@pytest.mark.parametrize("point", ["embedding", "writing", "swapping"])
def test_sigkill_mid_build_keeps_previous_index(tmp_path, point):
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    (seeds / "old.txt").write_text("The old document about the ceasefire talks in Paris.")
    build(seeds, index_dir, HashingEmbedder(), SETTINGS)
    (seeds / "new.txt").write_text("A new document about rare earth metals and April 26.")

    script = CHILD.format(tests=str(TESTS), point=point, seeds=str(seeds), index=str(index_dir))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == f"AT {point}", line
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)

    index = Index.load(index_dir)  # the previous version, whole
    assert sorted(index.manifest.documents) == ["old.txt"]
    hits = index.search(HashingEmbedder().embed(["ceasefire talks in Paris"])[0], 1)
    assert index.chunks[hits[0][0]].doc_id == "old.txt"

    report = build(seeds, index_dir, HashingEmbedder(), SETTINGS)  # the next build completes
    assert report.added == ["new.txt"]
    assert sorted(Index.load(index_dir).manifest.documents) == ["new.txt", "old.txt"]
    leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith((".tmp", ".current-"))]
    assert leftovers == []
    versions = [p for p in index_dir.iterdir() if p.name.startswith("v-")]
    assert len(versions) == 1


def test_failed_write_keeps_old_index_and_says_what_happened(tmp_path, monkeypatch):
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    (seeds / "a.txt").write_text("First document.")
    build(seeds, index_dir, HashingEmbedder(), SETTINGS)
    (seeds / "b.txt").write_text("Second document.")

    import builtins

    real_open = builtins.open

    def full_disk(path, mode="r", *args, **kwargs):
        if "passages.jsonl" in str(path) and "w" in mode:
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(OSError, match="No space left"):
        build(seeds, index_dir, HashingEmbedder(), SETTINGS)
    monkeypatch.undo()
    assert sorted(Index.load(index_dir).manifest.documents) == ["a.txt"]


def test_assistant_starts_with_damaged_index_and_says_how_to_fix(tmp_path):
    from assistant.config import Config
    from assistant.rag import Assistant
    from assistant.store import current_version

    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    (seeds / "a.txt").write_text("First document.")
    build(seeds, index_dir, HashingEmbedder(), SETTINGS)
    (current_version(index_dir) / "vectors.faiss").write_bytes(b"truncated")
    a = Assistant(Config(seeds_dir=seeds, index_dir=index_dir), HashingEmbedder(), None)
    assert a.index_error and "python -m assistant index" in a.index_error
    answer = a.ask("anything?")
    assert answer.abstained and "python -m assistant index" in answer.text
