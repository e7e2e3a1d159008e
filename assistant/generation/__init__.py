"""Generator protocol, the registry of engines, and loading the configured model.

One module per engine (transformers_engine, llamacpp_engine), each importing its library only
inside its loader, and one for the shipped model (shipped), so importing this package is cheap:

    >>> from assistant.config import Config
    >>> gen = load_generator(Config())  # doctest: +SKIP
    >>> messages = [{"role": "user", "content": "Say hi."}]
    >>> "".join(gen.stream(messages, max_new_tokens=8))  # doctest: +SKIP
    'Hi! How can I help you today?'

An engine is a name in ENGINES and a loader `(source, cfg, name) -> Generator`. Config and the
CLI accept "auto" or any registered name; tests register a scripted engine the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.config import Config

    from .llamacpp_engine import LlamaCppGenerator
    from .shipped import SHIPPED_NAME, SHIPPED_PARTS, join_parts, resolve_model, shipped_gguf_path
    from .transformers_engine import CONVERTED_FORMAT, TransformersGenerator, pick_dtype

log = logging.getLogger(__name__)

AUTO = "auto"
# Tokens copied per prompt-lookup draft (transformers' default is 10; ours was measured, see
# docs/GENERATION.md).
LOOKUP_TOKENS = 10


class Token(str):
    """A piece of a streamed reply with the log-probability the model gave it (greedy).

    Engines that can read their scores yield these; a plain str piece has no score. The
    decision reads the model's confidence in its answer from them (decision.confidence). A
    reply's first Token also carries `not_found`: the probability the model gave, at that first
    position, to beginning its reply with "not" (NOT_FOUND_STARTS), the first word of the
    refusal "not found" that the system prompt asks for; None where it was not read.
    """

    logprob: float
    not_found: float | None

    def __new__(cls, text: str, logprob: float, not_found: float | None = None) -> Token:
        piece = super().__new__(cls, text)
        piece.logprob = logprob
        piece.not_found = not_found
        return piece


# The ways the model may begin the reply "not found" (Config.system_prompt): the first token of
# each is read at a reply's first position (Token.not_found).
NOT_FOUND_STARTS = ("not", " not", "Not", "NOT")


class Generator(Protocol):
    """A local chat model that streams greedy replies (str pieces, or Tokens with scores)."""

    name: str

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 256,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the reply as text deltas, greedy decoding; setting `stop` ends it early.

        A last message from the assistant is the start of the reply, which the model continues
        (its text is not yielded again): `continued`.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Number of the model's tokens in `text` (no special tokens added)."""
        ...


class GeneratorError(AssistantError):
    """Model missing, corrupt or not installed, or a request it cannot serve; names the fix."""


# --- the registry -------------------------------------------------------------------------------

# (what to load: a file, folder or hub id; the Config; the generator's name) -> a loaded model.
Loader = Callable[[str, "Config", str], Generator]


def _load_transformers(source: str, cfg: Config, name: str) -> Generator:
    from .transformers_engine import TransformersGenerator

    return TransformersGenerator.load(source, cfg, name=name)


def _load_llamacpp(source: str, cfg: Config, name: str) -> Generator:
    from .llamacpp_engine import LlamaCppGenerator

    return LlamaCppGenerator.load(source, cfg, name=name)


# Engine name -> loader. Each name is a value of cfg.engine (ASSISTANT_ENGINE, --engine) beside
# "auto"; an engine's module is imported only when it is loaded.
ENGINES: dict[str, Loader] = {"transformers": _load_transformers, "llamacpp": _load_llamacpp}


def engine_choices() -> list[str]:
    """The values cfg.engine accepts: auto, then every registered engine."""
    return [AUTO, *ENGINES]


def load_generator(cfg: Config) -> Generator:
    """Load the model named by cfg.generator with the engine named by cfg.engine."""
    from .shipped import resolve_model

    source, name, is_gguf = resolve_model(cfg)
    engine = choose_engine(cfg.engine, is_gguf, llamacpp_installed())
    log.info("loading %s with %s", source, engine)
    return ENGINES[engine](source, cfg, f"{engine}:{name}")


def llamacpp_installed() -> bool:
    """Whether llama-cpp-python can be imported (without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def choose_engine(requested: str, is_gguf: bool, have_llamacpp: bool) -> str:
    """The engine to use: auto picks llama.cpp for a GGUF when it is installed."""
    if requested == AUTO:
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
    if requested in ENGINES:
        return requested
    choices = engine_choices()
    raise GeneratorError(
        f"unknown engine {requested!r}: use {', '.join(choices[:-1])} or {choices[-1]}"
    )


# --- what every engine checks in a request ------------------------------------------------------


def check_context(prompt_tokens: int, limit: int, name: str) -> None:
    """A GeneratorError if a prompt of `prompt_tokens` leaves no room in a `limit` context."""
    if prompt_tokens >= limit:
        raise GeneratorError(
            f"prompt has {prompt_tokens} tokens but {name} holds at most {limit}: "
            "send fewer or shorter passages"
        )


def continued(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """(the messages to template, the text the reply starts with).

    A last assistant message is not a finished turn but the start of the reply: the prompt is
    the template of the messages before it, then that text ("[" makes the model's next token a
    sentence number).
    """
    if messages and messages[-1]["role"] == "assistant":
        return messages[:-1], messages[-1]["content"]
    return messages, ""


def plain_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
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


# --- names that live in the submodules, importable from here ------------------------------------

_ELSEWHERE = {
    "TransformersGenerator": "transformers_engine",
    "CONVERTED_FORMAT": "transformers_engine",
    "pick_dtype": "transformers_engine",
    "LlamaCppGenerator": "llamacpp_engine",
    "SHIPPED_NAME": "shipped",
    "SHIPPED_PARTS": "shipped",
    "join_parts": "shipped",
    "resolve_model": "shipped",
    "shipped_gguf_path": "shipped",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the submodules import GeneratorError from here, and importing
    # this package (config does, for engine_choices) stays as light as it looks.
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(f"{__name__}.{_ELSEWHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUTO",
    "CONVERTED_FORMAT",
    "ENGINES",
    "SHIPPED_NAME",
    "SHIPPED_PARTS",
    "Generator",
    "GeneratorError",
    "LlamaCppGenerator",
    "Loader",
    "Token",
    "TransformersGenerator",
    "check_context",
    "choose_engine",
    "continued",
    "engine_choices",
    "join_parts",
    "llamacpp_installed",
    "load_generator",
    "pick_dtype",
    "plain_messages",
    "resolve_model",
    "shipped_gguf_path",
]
