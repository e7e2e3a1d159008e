"""The Assistant: retrieval + generation + citations, and building its index from config."""

from __future__ import annotations

from collections.abc import Callable

from .config import Config
from .embedding import SentenceTransformerEmbedder
from .store import BuildReport, ChunkerSettings, build


def make_embedder(cfg: Config) -> SentenceTransformerEmbedder:
    """The configured embedder (loaded on first use)."""
    return SentenceTransformerEmbedder(cfg.embedder, batch_size=cfg.embed_batch_size)


def chunker_settings(cfg: Config) -> ChunkerSettings:
    return ChunkerSettings(cfg.chunk_tokens, cfg.chunk_overlap)


def build_index(
    cfg: Config,
    embedder=None,
    progress: Callable[[float, str], None] | None = None,
    lock_wait_s: float = 0.0,
) -> BuildReport:
    """Bring cfg.index_dir up to date with cfg.seeds_dir."""
    return build(
        cfg.seeds_dir,
        cfg.index_dir,
        embedder or make_embedder(cfg),
        chunker_settings(cfg),
        exact_limit=cfg.exact_search_limit,
        max_document_bytes=cfg.max_document_bytes,
        progress=progress,
        lock_wait_s=lock_wait_s,
    )
