"""Fakes that satisfy the real protocols, so unit tests run in seconds without model weights."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from assistant.config import Config, default_cache_dir
from assistant.generation import Token
from assistant.rag import build_index

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Hashed lower-cased words and word pairs, L2-normalised: shared words, close vectors."""

    def __init__(self, dim: int = 256, id: str = "hashing-test") -> None:
        self.id = id
        self.dim = dim
        self.max_tokens = 256
        self.calls: list[int] = []  # sizes of embed() batches, to check what was re-embedded

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w.lower() for w in _WORD.findall(text)]
            for token in words + [a + " " + b for a, b in zip(words, words[1:])]:
                h = int.from_bytes(
                    hashlib.blake2b(token.encode(), digest_size=8).digest(), "little"
                )
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


class ScriptedGenerator:
    """Replies with a scripted text (or a function of the messages), streamed word by word;
    with `logprob`, each word is a Token the model gave that log-probability, the first with
    `not_found` as the probability it gave to beginning "not"."""

    name = "scripted"

    def __init__(
        self,
        reply: str | Callable[[list[dict[str, str]]], str] = "",
        logprob: float | None = None,
        not_found: float | None = None,
    ) -> None:
        self.reply = reply
        self.logprob = logprob
        self.not_found = not_found
        self.prompts: list[list[dict[str, str]]] = []
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 256,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        with self._lock:
            self.prompts.append(messages)
        text = self.reply(messages) if callable(self.reply) else self.reply
        for i, piece in enumerate(re.findall(r"\S+\s*", text)):
            if i >= max_new_tokens or (stop is not None and stop.is_set()):
                return
            if self.logprob is None:
                yield piece
            else:
                yield Token(piece, self.logprob, self.not_found if i == 0 else None)


class SilentGenerator(ScriptedGenerator):
    """The scripted model, silent for `delay_s` before it answers (as a real one reading its
    prompt) and `token_s` between words; a follow-up rewrite comes at once."""

    def __init__(self, reply, delay_s: float, token_s: float = 0.0) -> None:
        super().__init__(reply)
        self.delay_s = delay_s
        self.token_s = token_s

    def stream(self, messages, max_new_tokens=256, stop=None):
        rewrite = "Follow-up" in messages[-1]["content"]
        if not rewrite:
            time.sleep(self.delay_s)
        for piece in super().stream(messages, max_new_tokens, stop):
            if not rewrite:
                time.sleep(self.token_s)
            yield piece


class ScriptedEngine:
    """A generation engine for the registry: its loader gives a ScriptedGenerator of `reply`.

    Registered as "scripted" by the scripted_engine fixture (conftest.py); a Config with
    SETTINGS then loads it through load_generator, as the app and the CLI do.
    """

    name = "scripted"
    # The generator is shaped like a hub id, which resolves without touching disk or network
    # (an empty one would join the shipped model's parts first).
    SETTINGS = {"engine": "scripted", "generator": "tests/scripted"}

    def __init__(self, reply: str | Callable[[list[dict[str, str]]], str] = "") -> None:
        self.reply = reply
        self.loaded: list[ScriptedGenerator] = []

    def load(self, source: str, cfg: Config, name: str) -> ScriptedGenerator:
        generator = ScriptedGenerator(self.reply)
        self.loaded.append(generator)
        return generator


def config_env(cfg: Config) -> dict[str, str]:
    """ASSISTANT_* variables from which Config.from_env() makes cfg again (what the CLI reads)."""
    env = {
        f"ASSISTANT_{f.name.upper()}": str(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
    }
    assert Config.from_env(env) == cfg
    return env


SEEDS = Path(__file__).parent.parent / "seeds"
# A preview of the 2019 final (dated 2018) says more of "Who won the U.S. Open women's final in
# 2019?" than the report dated 2019: the year ranking's test documents.
YEAR_DOCS = {
    "preview.txt": "Aug 30, 2018\n\nPreview: who will win the 2019 U.S. Open women's final? "
    "The 2019 draw, the 2019 seeds and the U.S. Open final's favourites.",
    "report.txt": "Sep 7, 2019\n\nAndreescu beat Williams in the U.S. Open final.",
}


def seeded_config(tmp_path: Path, extra: dict[str, str] | None = None, **overrides) -> Config:
    """The shipped seeds (plus `extra` documents, name: text) copied under tmp_path and indexed
    with the hashing embedder."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    for name, text in (extra or {}).items():
        (tmp_path / "seeds" / name).write_text(text, encoding="utf-8")
    settings = dict(
        seeds_dir=tmp_path / "seeds",
        index_dir=tmp_path / "index",
        cache_dir=tmp_path / "cache",
        feedback_dir=tmp_path / "feedback",
        chunk_tokens=120,
        chunk_overlap=10,
        min_relevance=0.05,
        # The decision's weights and the closeness an answer needs are fitted to the real
        # embedder's similarities; with the hashing embedder every answer goes on to the
        # grounding, and tests of the decision set their own thresholds.
        answer_threshold=0.0,
        statement_threshold=0.0,
        min_answer_similarity=-1.0,
    )
    # Converted models (the ONNX export of the embedder) are shared with every other run: one
    # export per machine, not one per test.
    (tmp_path / "cache").mkdir()
    shared = default_cache_dir() / "models"
    shared.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache" / "models").symlink_to(shared, target_is_directory=True)
    cfg = Config(**{**settings, **overrides})
    build_index(cfg, HashingEmbedder())
    return cfg


def passage_number(messages: list[dict[str, str]], needle: str) -> int:
    """Which [n] the prompt gave to the evidence unit containing needle."""
    for line in messages[-1]["content"].splitlines():
        if line.startswith("[") and needle in line:
            return int(line[1 : line.index("]")])
    raise AssertionError(f"{needle!r} not in prompt")


def pdf_bytes(
    pages: list[list[str]], password: str | None = None, owner_only: bool = False
) -> bytes:
    """A real PDF written by pypdf, one page per list of lines (Helvetica 10 pt, Latin-1),
    optionally encrypted (owner_only: it opens without a password; only printing and copying
    are restricted). `benchmarks/article_pdf.py` typesets its sets with it too."""
    import io

    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for lines in pages:
        page = writer.add_blank_page(600, 800)
        stream = DecodedStreamObject()
        shown = "\n".join(f"({_pdf_string(line)}) Tj T*" for line in lines)
        stream.set_data(f"BT /F1 10 Tf 12 TL 20 760 Td\n{shown}\nET".encode("latin-1", "replace"))
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password is not None:
        writer.encrypt(
            user_password="" if owner_only else password,
            owner_password=password,
            algorithm="RC4-128",  # pure Python: AES needs the cryptography package
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf_string(line: str) -> str:
    """A line as a PDF string's body: its backslashes and parentheses escaped."""
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
