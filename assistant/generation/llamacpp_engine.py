"""The llama.cpp engine: a GGUF model run by llama-cpp-python (imported inside the loader)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from assistant.generation import LOOKUP_TOKENS, GeneratorError, check_context, plain_messages

if TYPE_CHECKING:
    from assistant.config import Config

log = logging.getLogger(__name__)

LLAMACPP_CONTEXT = 4096


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
    def load(
        cls, source: str, cfg: Config, name: str, prompt_lookup: bool = False
    ) -> LlamaCppGenerator:
        """Load a .gguf file; `prompt_lookup` only for benchmarks/generation.py to measure.

        The assistant never turns prompt lookup on here, whatever cfg.prompt_lookup says: its
        drafts are checked with logits_all=True, which runs the 152k-word output layer over every
        prompt position, and RAG prompts are long. On a quiet machine, one 898-token RAG prompt
        and a 396-character reply took 42.3 s with lookup and 35.8 s without, peak memory 3.12
        vs 1.99 GB (docs/GENERATION.md).
        """
        try:
            from llama_cpp import Llama
        except ImportError:
            raise GeneratorError(
                "llama-cpp-python is not installed: pip install '.[llamacpp]'"
            ) from None
        kwargs: dict[str, Any] = {}
        if prompt_lookup:
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
        messages = plain_messages(messages)
        # Wait for the model, giving up if the caller stops first.
        while not self._lock.acquire(timeout=0.1):
            if stop is not None and stop.is_set():
                return
        try:
            tokens = self._prompt_tokens(messages)
            check_context(len(tokens) + 1, self.context, self.name)
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
