"""The real embedding model end to end: build the index of seeds/ and find the right passage."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.rag import Assistant, build_index, make_embedder
from assistant.store import Index

pytestmark = pytest.mark.real
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    shutil.copytree(ROOT / "seeds", tmp / "seeds")
    cfg = Config(seeds_dir=tmp / "seeds", index_dir=tmp / "index")
    embedder = make_embedder(cfg)
    report = build_index(cfg, embedder)
    return cfg, embedder, report


def test_builds_and_finds_the_right_passage(built):
    cfg, embedder, report = built
    assert report.added == ["rubio-us-mediation-russia-ukraine-talks.txt"]
    a = Assistant(cfg, embedder, None)
    hits = a.retrieve("By what date should the rare earth agreement be finalised?")
    assert "April 26" in hits[0].chunk.text
    hits = a.retrieve("Who is Ukraine's foreign minister?")
    assert "Sibiha" in hits[0].chunk.text


def test_no_passage_is_truncated_by_the_model(built):
    cfg, embedder, _ = built
    index = Index.load(cfg.index_dir)
    limit = embedder.max_tokens - 2  # [CLS] and [SEP]
    assert max(embedder.count_tokens(c.text) for c in index.chunks) <= limit


def test_cli_second_run_is_fast_and_changes_reembed_only_that_file(built):
    cfg, _, _ = built
    (cfg.seeds_dir / "second.md").write_text("# Second\n\nA note about the Black Sea ceasefire.")
    args = [
        sys.executable,
        "-m",
        "assistant",
        "index",
        "--seeds",
        str(cfg.seeds_dir),
        "--index",
        str(cfg.index_dir),
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "1 added" in out and "1 unchanged" in out
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    elapsed = time.perf_counter() - started
    assert "nothing changed" in out
    assert elapsed < 5, f"a no-change rebuild took {elapsed:.1f} s"
