"""The llama.cpp engine: a GGUF model run by llama-cpp-python (imported inside the loader)."""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from assistant.generation import (
    LOOKUP_TOKENS,
    NOT_FOUND_STARTS,
    GeneratorError,
    Token,
    check_context,
    continued,
    plain_messages,
)

if TYPE_CHECKING:
    from assistant.config import Config

log = logging.getLogger(__name__)

LLAMACPP_CONTEXT = 4096


class LlamaCppGenerator:
    """A GGUF model run by llama-cpp-python: its chat template, then a streamed completion."""

    def __init__(self, llama: Any, name: str, is_end: Callable[[int], bool] | None = None) -> None:
        self.llama = llama
        # Whether a token ends the reply (end of turn or of text); llama.cpp's own check unless
        # given (a fake Llama has no vocabulary to ask).
        self._is_end = is_end or self._end_of_generation
        self.name = name
        self.context = int(llama.n_ctx())
        self._template: Any = None  # the model's chat template, applied once per request
        # A Llama object holds one KV cache and is not thread-safe: one request at a time.
        self._lock = threading.Lock()
        # The cache's state once it held a system prompt (`prime`), with its tokens: loaded back
        # when a request under another system prompt (the follow-up rewrite) has replaced it.
        self._fronts: list[tuple[list[int], Any]] = []

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
        # The same threads read the prompt and decode: llama.cpp's own default for the prompt
        # is every core, whatever `threads` says, which a shared machine set to 1 cannot afford.
        threads = cfg.threads or os.cpu_count() or 1
        try:
            llama = Llama(
                model_path=source,
                n_ctx=LLAMACPP_CONTEXT,
                n_threads=threads,
                n_threads_batch=threads,
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

    def prime(self, *system_prompts: str) -> None:
        """Read the chat template's front and each system prompt into the model's cache now,
        keeping the state each leaves, so that every request, the first too, reads only what
        follows its system prompt. The last one stays in the cache."""
        fronts = [
            self._prompt_tokens(
                [{"role": "system", "content": p}, {"role": "user", "content": "["}]
            )
            for p in system_prompts
        ]
        with self._lock:
            if self.llama.n_tokens:  # a request came first and the cache holds it
                return
            for tokens in fronts:
                self.llama.reset()
                self.llama.eval(tokens)
                self._fronts.append((tokens, self.llama.save_state()))

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
            self._restore_front(tokens)
            yield from self._generate(tokens, max_new_tokens, stop)
        finally:
            self._lock.release()

    def reset(self) -> None:
        """Empty the model's cache and forget the states read ahead: a cold start."""
        with self._lock:
            self.llama.reset()
            self._fronts.clear()

    def _restore_front(self, tokens: list[int]) -> None:
        """A system prompt's state loaded back into the cache, when the request starts with
        more of it than the cache holds: after the follow-up rewrite, under a system prompt of
        its own, the answer reads only what follows the answer's again (a load takes about
        0.04 s; reading the 72 tokens again about 1 s)."""
        if not self._fronts:
            return
        shared = self.llama.longest_token_prefix  # llama-cpp-python's own, as its cache uses
        kept = [(shared(front, tokens), state) for front, state in self._fronts]
        n, state = max(kept, key=lambda k: k[0])
        if n > shared(self.llama.input_ids[: self.llama.n_tokens], tokens):
            self.llama.load_state(state)

    def _generate(
        self, tokens: list[int], max_new_tokens: int, stop: threading.Event | None
    ) -> Iterator[Token]:
        """Greedy tokens as text, each with the log-probability the model gave it.

        The last position's logits are read after each step (no `logits_all`, which would run
        the output layer over every prompt position): the chosen token is their maximum, so its
        log-probability is that maximum minus their log-sum-exp. At the first position they
        also give the probability of beginning "not" (Token.not_found), on the first Token.
        """
        import numpy as np

        llama = self.llama
        n_vocab = llama.n_vocab()
        starts = {llama.tokenize(w.encode(), add_bos=False)[0] for w in NOT_FOUND_STARTS}
        not_ids = sorted(t for t in starts if t < n_vocab)
        not_found: float | None = None
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = 0.0  # log-probabilities of tokens whose bytes do not yet make a character
        # A token list goes in as is (no BOS added); llama.cpp reuses the KV cache of the
        # longest prefix it shares with the previous request: the system prompt.
        steps = llama.generate(tokens, top_k=1, temp=0.0, repeat_penalty=1.0)
        try:
            for n, token in enumerate(_translated(steps, self.name)):
                if stop is not None and stop.is_set():
                    break
                if self._is_end(token):
                    break
                if len(tokens) + n + 1 >= self.context:
                    raise GeneratorError(
                        f"{self.name} ran out of context ({self.context} tokens): "
                        "send fewer or shorter passages"
                    )
                logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(n_vocab,))
                top = float(logits.max())
                norm = float(np.log(np.exp(logits - top).sum()))
                pending -= norm
                if n == 0:
                    not_found = float(np.exp(logits[not_ids] - top - norm).sum())
                piece = text.decode(llama.detokenize([token]))
                if piece:
                    yield Token(piece, pending, not_found)
                    pending, not_found = 0.0, None
                if n + 1 >= max_new_tokens:
                    break
        finally:
            steps.close()

    def _end_of_generation(self, token: int) -> bool:
        from llama_cpp import llama_cpp as lib

        return bool(lib.llama_vocab_is_eog(self.llama._model.vocab, token))

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template applied to messages (a last assistant message continued),
        tokenised."""
        messages, start = continued(messages)
        if self._template is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            model = self.llama._model
            eos, bos = self.llama.token_eos(), self.llama.token_bos()
            self._template = Jinja2ChatFormatter(
                template=self.llama.metadata["tokenizer.chat_template"],
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )
        text = self._template(messages=messages).prompt + start
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def _translated(steps: Iterator[int], name: str) -> Iterator[int]:
    """llama.cpp's errors on a prompt it cannot take, as a GeneratorError naming the fix."""
    try:
        yield from steps
    except (ValueError, RuntimeError) as e:  # e.g. "Requested tokens (n) exceed context window"
        raise GeneratorError(
            f"{name} cannot take this prompt ({e}): send fewer or shorter passages"
        ) from None
