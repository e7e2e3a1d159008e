"""Building with Ray (assistant/distributed.py): the same index as a local build, in one Ray
session of 2 CPUs for the module (starting one takes seconds and memory)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import fakes
import numpy as np
import pytest
from fakes import HashingEmbedder

from assistant import cli
from assistant.config import Config
from assistant.indexing import BuildReport, build
from assistant.manifest import Manifest
from assistant.rag import build_index, chunker_settings
from assistant.store import Index

pytestmark = pytest.mark.ray

CORPUS = Path(__file__).parent / "data" / "evalset" / "corpus"


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance with 2 CPUs for the module, stopped after it."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[ray]'")
    from assistant import distributed

    # The fakes live beside the tests, where Ray's workers do not look: send them by value.
    ray.cloudpickle.register_pickle_by_value(fakes)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with distributed.session(num_cpus=2):
        yield
    assert not ray.is_initialized()


def corpus_config(tmp_path: Path, name: str) -> Config:
    """The eval corpus and a file no reader takes, copied to tmp_path/name, at test settings."""
    seeds = tmp_path / name / "seeds"
    shutil.copytree(CORPUS, seeds)
    (seeds / "broken.pdf").write_bytes(b"not a pdf")
    return Config(
        seeds_dir=seeds,
        index_dir=tmp_path / name / "index",
        cache_dir=tmp_path / "cache",
        chunk_tokens=60,
        chunk_overlap=10,
    )


def contents(cfg: Config) -> tuple[list[dict], np.ndarray, dict]:
    """The passages, vectors and manifest of cfg's index."""
    current = cfg.index_dir / "current"
    passages = [
        json.loads(line) for line in (current / "passages.jsonl").read_text().split("\n")[:-1]
    ]
    manifest = json.loads((current / "manifest.json").read_text())
    return passages, Index.load(cfg.index_dir).vectors(), manifest


def assert_same_index(local: Config, ray: Config) -> None:
    passages, vectors, manifest = contents(local)
    ray_passages, ray_vectors, ray_manifest = contents(ray)
    assert ray_passages == passages
    np.testing.assert_allclose(ray_vectors, vectors, atol=1e-5, rtol=0)
    assert ray_manifest["documents"] == manifest["documents"]
    assert ray_manifest["skipped"] == manifest["skipped"]
    assert (manifest["built_with"], ray_manifest["built_with"]) == ("local", "ray")


@pytest.mark.real
def test_ray_build_is_the_local_build(ray_session, tmp_path):
    """The real embedder on 2 workers: same passages, vectors within 1e-5; an update after one
    changed file embeds only that file's passages, on Ray as here."""
    local, ray = corpus_config(tmp_path, "local"), corpus_config(tmp_path, "ray")
    build_index(local)
    report = build_index(ray, ray="auto")
    assert report.built_with == "ray" and "embedded (ray, " in report.summary()
    assert report.skipped == [("broken.pdf", report.skipped[0][1])]
    assert_same_index(local, ray)

    for cfg in (local, ray):
        with open(cfg.seeds_dir / "museum-theft.md", "a", encoding="utf-8") as fh:
            fh.write("\n\nThe stolen painting was found in a garage in 2024.\n")
    build_index(local)
    update = build_index(ray, ray="auto")
    assert update.changed == ["museum-theft.md"] and not update.added
    assert update.unchanged == len(list(CORPUS.iterdir())) - 1
    _, _, manifest = contents(ray)
    assert update.embedded == len(manifest["documents"]["museum-theft.md"]["passages"])
    assert_same_index(local, ray)


class FailingEmbedder(HashingEmbedder):
    """Breaks in the worker, as a bug or a broken model would."""

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        raise RuntimeError("the embedder broke")


class DyingEmbedder(HashingEmbedder):
    """Kills its worker process at the first batch, once (the marker file remembers)."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return super().embed(texts, progress)


def ray_build(cfg: Config, make: Callable[[], HashingEmbedder]) -> BuildReport:
    """Build cfg's index on Ray, with workers that embed with make()."""
    from assistant.distributed import RayRunner

    runner = RayRunner(make)
    return build(
        cfg.seeds_dir, cfg.index_dir, HashingEmbedder(), chunker_settings(cfg), runner=runner
    )


def test_failed_ray_build_keeps_the_index(ray_session, tmp_path):
    cfg = corpus_config(tmp_path, "failing")
    build_index(cfg, HashingEmbedder())
    before = os.readlink(cfg.index_dir / "current")
    (cfg.seeds_dir / "new.md").write_text("# New\n\nA document added after the first build.\n")
    from assistant.distributed import RayError

    with pytest.raises(RayError, match="index is unchanged: RuntimeError: the embedder broke"):
        ray_build(cfg, FailingEmbedder)
    assert os.readlink(cfg.index_dir / "current") == before
    assert "new.md" not in Index.load(cfg.index_dir).manifest.documents


def test_dead_worker_is_retried(ray_session, tmp_path):
    local, ray = corpus_config(tmp_path, "local"), corpus_config(tmp_path, "ray")
    build_index(local, HashingEmbedder())
    report = ray_build(ray, functools.partial(DyingEmbedder, tmp_path / "died"))
    assert (tmp_path / "died").exists() and report.embedded > 0
    assert_same_index(local, ray)


def test_without_ray_the_cli_says_how_to_install_it(cfg, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    args = ["index", "--ray", "--seeds", str(cfg.seeds_dir), "--index", str(cfg.index_dir)]
    assert cli.main(args) == 1
    assert capsys.readouterr().err.strip() == "error: Ray is not installed: pip install '.[ray]'"


def test_manifests_from_before_ray_read_as_local(cfg):
    path = cfg.index_dir / "current" / "manifest.json"
    data = json.loads(path.read_text())
    del data["built_with"]
    assert Manifest.from_dict(data, path.parent).built_with == "local"


def test_ray_client_addresses_are_refused(cfg, capsys):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[ray]'")
    args = ["index", "--ray", "ray://head:10001", "--index", str(cfg.index_dir)]
    assert cli.main(args + ["--seeds", str(cfg.seeds_dir)]) == 1
    assert "give the cluster's address HEAD:6379" in capsys.readouterr().err


def test_an_unreachable_cluster_fails_at_once():
    from assistant.distributed import RayError, check_reachable

    with socket.socket() as listening:  # a port that answers, then one nobody listens on
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}")
        free = listening.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(RayError, match=f"cannot reach Ray at 127.0.0.1:{free}"):
        check_reachable(f"127.0.0.1:{free}")
    assert time.monotonic() - started < 5
    with pytest.raises(RayError, match="HEAD:PORT"):
        check_reachable("head:port")
