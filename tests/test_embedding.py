"""Embedding backends: the setting, the embedder id, the one-time ONNX export, its vectors.

Most tests run a tiny random BERT made here (two heads, 32 wide, the shipped tokenizer), so the
export and both runtimes are exercised in seconds; the shipped model's are marked real.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant import embedding
from assistant.config import Config, ConfigError
from assistant.embedding import EmbedderError, OnnxEmbedder, SentenceTransformerEmbedder
from assistant.rag import Assistant, build_index, make_embedder

TEXTS = [
    "Rubio met European leaders in Paris to discuss the talks.",
    "The rare earth minerals deal should be finalized by April 26. " * 8,
    "x",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A sentence-transformers folder: a random 1-layer BERT, mean pooling, normalisation."""
    pytest.importorskip("onnxruntime")
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("tiny-bert")
    shipped = Path(embedding.shipped_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(shipped / name, base / name)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(base)
    transformer = models.Transformer(str(base), max_seq_length=64)
    pooling = models.Pooling(32, pooling_mode="mean")
    folder = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()]).save(str(folder))
    return folder


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    """One cache folder for the module: the tiny model is exported into it once."""
    return tmp_path_factory.mktemp("cache")


def test_the_backend_is_a_validated_setting():
    assert Config.from_env({"ASSISTANT_EMBED_BACKEND": "onnx-int8"}).embed_backend == "onnx-int8"
    assert Config().embed_backend == "onnx"
    with pytest.raises(
        ConfigError,
        match=r"ASSISTANT_EMBED_BACKEND\) must be torch, onnx or onnx-int8, not 'gpu'",
    ):
        Config(embed_backend="gpu")


@pytest.mark.parametrize(
    "backend, id",
    [
        ("torch", "all-MiniLM-L6-v2"),  # as before: indexes built until now stay valid
        ("onnx", "all-MiniLM-L6-v2+onnx"),
        ("onnx-int8", "all-MiniLM-L6-v2+onnx-int8"),
    ],
)
def test_the_backend_is_part_of_the_embedder_id(tmp_path, backend, id):
    assert make_embedder(Config(embed_backend=backend, cache_dir=tmp_path)).id == id


def _built_with_torch(tmp_path: Path, tiny_model: Path, onnx_cache: Path) -> dict:
    """Settings of a seeds folder holding TEXTS, indexed with the torch backend."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("\n\n".join(TEXTS), encoding="utf-8")
    settings = dict(
        seeds_dir=seeds,
        index_dir=tmp_path / "index",
        cache_dir=onnx_cache,
        embedder=str(tiny_model),
    )
    torch_cfg = Config(**settings, embed_backend="torch")
    build_index(torch_cfg, make_embedder(torch_cfg))
    return settings


def test_switching_backends_rebuilds_the_index_and_says_why(tmp_path, tiny_model, onnx_cache):
    settings = _built_with_torch(tmp_path, tiny_model, onnx_cache)
    onnx_cfg = Config(**settings, embed_backend="onnx-int8")
    report = build_index(onnx_cfg, make_embedder(onnx_cfg))
    assert report.added == ["a.txt"] and report.embedded > 0
    assert report.full_rebuild_reason is not None
    assert (
        report.full_rebuild_reason.startswith(f"settings changed (was {tiny_model} {{")
        and f"now {tiny_model}+onnx-int8 {{" in report.full_rebuild_reason
    ), report.summary()
    assert build_index(onnx_cfg, make_embedder(onnx_cfg)).full_rebuild_reason is None


def test_the_app_rebuilds_an_index_another_backend_built(tmp_path, tiny_model, onnx_cache):
    settings = _built_with_torch(tmp_path, tiny_model, onnx_cache)
    # A start after the default backend changed: the index is rebuilt, not refused.
    assistant = Assistant.from_config(
        Config(**settings, embed_backend="onnx"), load_generator=False
    )
    assert assistant.index_error is None
    assert assistant.retrieve(TEXTS[0].split(".")[0])


def test_onnx_reproduces_the_torch_vectors_and_token_counts(tiny_model, onnx_cache):
    torch_embedder = SentenceTransformerEmbedder(str(tiny_model))
    onnx = OnnxEmbedder(str(tiny_model), 2, onnx_cache)  # batches of 2: sorting and padding matter
    np.testing.assert_allclose(onnx.embed(TEXTS), torch_embedder.embed(TEXTS), atol=1e-5)
    assert [onnx.count_tokens(t) for t in TEXTS] == [torch_embedder.count_tokens(t) for t in TEXTS]
    assert (onnx.dim, onnx.max_tokens) == (32, 64)
    assert onnx.embed([]).shape == (0, 32)


def test_the_export_happens_once(tiny_model, onnx_cache, monkeypatch):
    first = OnnxEmbedder(str(tiny_model), 32, onnx_cache, quantized=True).embed(TEXTS)
    folders = list((onnx_cache / "models").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("tiny-bert-"), folders
    assert {"model.onnx", "model-int8.onnx", "tokenizer.json", "embedder.json"} <= {
        p.name for p in folders[0].iterdir()
    }

    def export_again(*args: object) -> None:
        raise AssertionError("exported a second time")

    monkeypatch.setattr(embedding, "export_onnx", export_again)
    again = OnnxEmbedder(str(tiny_model), 32, onnx_cache, quantized=True).embed(TEXTS)
    np.testing.assert_array_equal(first, again)
    OnnxEmbedder(str(tiny_model), 32, onnx_cache).embed(TEXTS)  # fp32 was exported with it


def test_without_onnxruntime_the_error_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime: ImportError
    with pytest.raises(EmbedderError, match="pip install onnxruntime onnx") as caught:
        OnnxEmbedder("", 32, tmp_path).embed(["a question"])
    assert "ASSISTANT_EMBED_BACKEND=torch" in str(caught.value)


@pytest.mark.real
# int8 measured 0.968 on the one-letter text, 0.983 at least on rgb-noise's passages.
@pytest.mark.parametrize("backend, least", [("onnx", 0.9999), ("onnx-int8", 0.95)])
def test_the_shipped_model_on_onnx_is_close_to_torch(tmp_path, backend, least):
    passages = (Path(__file__).parent.parent / "seeds").glob("*.txt")
    texts = TEXTS + [p.read_text(encoding="utf-8")[:1500] for p in sorted(passages)]
    reference = make_embedder(Config()).embed(texts)
    vectors = make_embedder(Config(embed_backend=backend, cache_dir=tmp_path)).embed(texts)
    assert (vectors * reference).sum(axis=1).min() >= least
