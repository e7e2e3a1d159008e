"""The transformers engine: a causal LM streamed greedily, and the de-quantized copy of a GGUF.

torch and transformers are imported inside the functions that use them, never at import.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.files import atomic_write
from assistant.generation import (
    LOOKUP_TOKENS,
    GeneratorError,
    check_context,
    continued,
    plain_messages,
)

if TYPE_CHECKING:
    from assistant.config import Config

log = logging.getLogger(__name__)

# Version of the converted-model cache folder layout; bump it to make old copies be rebuilt.
CONVERTED_FORMAT = "generation-converted v1"


class TransformersGenerator:
    """A transformers causal LM streamed through a new TextIteratorStreamer per request."""

    def __init__(self, model: Any, tokenizer: Any, name: str, prompt_lookup: bool = False) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.prompt_lookup = prompt_lookup
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 32768)
        self.eos_token_ids = _end_token_ids(model, tokenizer)
        # One generate() at a time. torch ops are thread-safe for inference, but two concurrent
        # generate() calls each use every core's torch threads: on 2 cores they oversubscribe
        # and both slow down, and single-sequence decoding is memory-bound anyway, so
        # serialising costs little throughput and keeps each reply's latency predictable.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, source: str, cfg: Config, name: str) -> TransformersGenerator:
        """Load a GGUF file (via a cached de-quantized copy), a model folder or a hub id."""
        try:
            import torch
            import transformers  # noqa: F401
        except ImportError as e:
            raise GeneratorError(
                f"transformers engine unavailable ({e.name} is not installed): pip install -e ."
            ) from None
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        dtype = pick_dtype()
        started = time.perf_counter()
        if source.lower().endswith(".gguf"):
            model, tokenizer = _load_gguf_converted(Path(source), Path(cfg.cache_dir), dtype)
        else:
            model, tokenizer = _load_pretrained(source, dtype)
        model.eval()
        log.info("loaded %s in %.1f s", name, time.perf_counter() - started)
        return cls(model, tokenizer, name=name, prompt_lookup=cfg.prompt_lookup)

    def count_tokens(self, text: str) -> int:
        """Number of the model's tokens in `text` (no special tokens added)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 256,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the reply as text deltas, greedy decoding; setting `stop` ends it early."""
        messages, start = continued(plain_messages(messages))
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        text += start
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        check_context(len(ids), self.context, self.name)
        yield from self._generate(ids, max_new_tokens, stop)

    def _generate(
        self, ids: list[int], max_new_tokens: int, stop: threading.Event | None
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        input_ids = torch.tensor([ids])
        max_new_tokens = max(1, min(max_new_tokens, self.context - input_ids.shape[1]))
        ended = threading.Event()  # set when the caller stops or walks away from the stream

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                import torch

                done = ended.is_set() or (stop is not None and stop.is_set())
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids,
            attention_mask=input_ids.new_ones(input_ids.shape),
            streamer=streamer,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=None,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.eos_token_ids[0],
            stopping_criteria=StoppingCriteriaList([_Stop()]),
        )
        if self.prompt_lookup:
            kwargs["prompt_lookup_num_tokens"] = LOOKUP_TOKENS
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock:
                    if not ended.is_set() and not (stop is not None and stop.is_set()):
                        import torch

                        with torch.inference_mode():
                            self.model.generate(**kwargs)
            except BaseException as e:  # handed to the caller's thread below
                failure.append(e)
            finally:
                streamer.end()

        worker = threading.Thread(target=run, name="generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            ended.set()
            worker.join()
        if failure:
            error = failure[0]
            raise GeneratorError(f"{self.name} failed while generating: {error}") from error


def pick_dtype() -> Any:
    """bfloat16 on CPUs with native bf16 instructions, else float32 (see docs/GENERATION.md)."""
    import torch

    override = os.environ.get("ASSISTANT_TORCH_DTYPE", "")
    if override in ("float32", "bfloat16"):
        return getattr(torch, override)
    # Measured on an AVX2-only CPU: bf16 halves the bytes read per token but its matmuls are
    # emulated, so a 900-token prompt took 7-9x longer than in fp32 and decoding was no faster.
    # With avx512_bf16 / amx_bf16 the halved memory traffic wins.
    flags = _cpu_flags()
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return torch.bfloat16
    return torch.float32


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float", "fp")


def _load_pretrained(source: str | Path, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        raise GeneratorError(f"cannot load generator model {source}: {e}") from None
    return model, tokenizer


def _load_gguf_converted(gguf: Path, cache_dir: Path, dtype: Any) -> tuple[Any, Any]:
    """Load `gguf` from its de-quantized safetensors copy, making that copy on first use."""
    stat = gguf.stat()
    stamp = {
        "format": CONVERTED_FORMAT,
        "source": gguf.name,
        "source_bytes": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "dtype": _dtype_name(dtype),
    }
    folder = cache_dir / "models" / f"{gguf.stem.lower()}-{_dtype_name(dtype)}"
    if _read_stamp(folder) == stamp:
        try:
            return _load_pretrained(folder, dtype)
        except Exception as e:  # a damaged copy: rebuild it below
            log.warning("converted model in %s does not load (%s); converting again", folder, e)
    model, tokenizer = _load_gguf(gguf, dtype)
    try:
        _save_converted(model, tokenizer, folder, stamp)
    except OSError as e:  # a read-only or full cache only costs the next start its speed
        log.warning("could not keep a converted copy in %s: %s", folder, e)
    return model, tokenizer


def _load_gguf(gguf: Path, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for package in ("gguf", "accelerate"):
        if importlib.util.find_spec(package) is None:
            raise GeneratorError(
                f"loading a GGUF with transformers needs {package}: pip install {package}"
            )
    log.info("de-quantizing %s with transformers (takes about a minute, once)", gguf)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    except Exception as e:  # a damaged file surfaces as struct.error, KeyError, ... from the reader
        raise GeneratorError(
            f"{gguf} is not a GGUF model transformers can load ({e}); delete it to rejoin the "
            "shipped model, or point ASSISTANT_GENERATOR at another file"
        ) from None
    return model, tokenizer


def _save_converted(model: Any, tokenizer: Any, folder: Path, stamp: dict[str, Any]) -> None:
    """Write the de-quantized model to `folder` atomically (temp folder, then rename)."""
    _forget_quantization(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder) as tmp:
        tmp.mkdir()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # The stamp is written last: a folder without it is never trusted.
        (tmp / "converted.json").write_text(json.dumps(stamp, indent=2) + "\n")
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)  # whatever the umask; the model is not a secret
    log.info("kept a converted copy in %s", folder)


def _forget_quantization(model: Any) -> None:
    """Clear the GGUF quantizer markers that make save_pretrained refuse a de-quantized model."""
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            try:
                delattr(model, attr)
            except AttributeError:
                setattr(model, attr, None)
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "converted.json").read_text())
    except (OSError, ValueError):
        return None


def _end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a reply: the model's EOS plus the chat template's end-of-turn token."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        for i in value if isinstance(value, list) else [value]:
            if isinstance(i, int) and i not in ids:
                ids.append(i)
    vocab = tokenizer.get_vocab()
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"):
        if token in vocab and vocab[token] not in ids:
            ids.append(vocab[token])
    if not ids:
        raise GeneratorError("the model's tokenizer names no end-of-sequence token")
    return ids
