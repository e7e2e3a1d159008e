"""Model replies kept on disk and replayed, so a change after generation is re-scored quickly."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from assistant.config import Config
from assistant.generation import Token, continued

if TYPE_CHECKING:
    from assistant.generation import Generator


class StoredReply(TypedDict):
    """One line of a replies file: the request's hash, the reply as streamed, and its times."""

    key: str
    pieces: list[str]
    logprobs: list[float | None]  # each piece's log-probability, None where the engine gave none
    not_found: float | None  # the first piece's Token.not_found, None where the engine gave none
    first_token_ms: float | None  # None for a reply of no pieces
    total_ms: float


class ReplayGenerator:
    """Wraps a Generator and keeps every finished reply on disk, keyed by the exact request.

    The same messages to the same model replay the stored reply instead of running the model
    again, so a change after generation (support check, abstention rules) is re-scored in
    minutes. A replayed reply keeps the first-token and total times measured when it was made;
    add_replayed_time adds them to an answer's timings. Delete the file to generate afresh.
    """

    def __init__(self, generator: Generator, path: Path) -> None:
        self.inner = generator
        self.name = generator.name
        self.path = Path(path)
        self.replayed: list[StoredReply] = []  # the replies replayed since reset
        self.last_reply = ""  # the model's raw text of the latest call, for diagnosing rows
        self.entries: dict[str, StoredReply] = {}
        if self.path.exists():
            for line in self.path.read_text("utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    if "not_found" in entry:  # older replies lack the scores: made again
                        self.entries[entry["key"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 256,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        blob = json.dumps([self.name, messages, max_new_tokens], ensure_ascii=False)
        key = hashlib.sha256(blob.encode()).hexdigest()
        entry = self.entries.get(key)
        if entry is not None:
            self.replayed.append(entry)
            self._said(messages, "".join(entry["pieces"]))
            first = entry["not_found"]
            for piece, logprob in zip(entry["pieces"], entry["logprobs"]):
                yield piece if logprob is None else Token(piece, logprob, first)
                first = None
            return
        started = time.perf_counter()
        pieces: list[str] = []
        first_ms = None
        for piece in self.inner.stream(messages, max_new_tokens, stop=stop):
            if first_ms is None:
                first_ms = (time.perf_counter() - started) * 1000
            pieces.append(piece)
            yield piece
        self._said(messages, "".join(pieces))
        if stop is not None and stop.is_set():
            return  # a cut-off reply is not the model's answer
        total_ms = (time.perf_counter() - started) * 1000
        stored: StoredReply = {
            "key": key,
            "pieces": [str(p) for p in pieces],
            "logprobs": [getattr(p, "logprob", None) for p in pieces],
            "not_found": getattr(pieces[0], "not_found", None) if pieces else None,
            "first_token_ms": first_ms,
            "total_ms": total_ms,
        }
        self.entries[key] = stored
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(stored, ensure_ascii=False) + "\n")

    def _said(self, messages: list[dict[str, str]], reply: str) -> None:
        """Keep the reply as last_reply; a continued reply ("[" + "3]") is added to the one
        before it ("not found / [3]"), so a row shows both."""
        _, start = continued(messages)
        if start and self.last_reply:
            self.last_reply = f"{self.last_reply} / {start}{reply}"
        else:
            self.last_reply = start + reply


def replaying(cfg: Config, generator: Generator) -> ReplayGenerator:
    """The generator wrapped to keep its replies in <cache>/eval/replies-<model>.jsonl."""
    tag = hashlib.sha256(generator.name.encode()).hexdigest()[:12]
    return ReplayGenerator(generator, cfg.cache_dir / "eval" / f"replies-{tag}.jsonl")


def add_replayed_time(
    timings: dict[str, float | None], replayed: list[StoredReply]
) -> dict[str, float | None]:
    """Timings of an answer whose model calls were replayed, with the time they took when made."""
    *earlier, last = replayed
    before = sum(e["total_ms"] or 0 for e in earlier)
    out = dict(timings)
    first, total = timings.get("first_token_ms"), timings.get("total_ms")
    if first is not None:
        out["first_token_ms"] = round(first + before + (last["first_token_ms"] or 0), 1)
    if total is not None:
        out["total_ms"] = round(total + before + (last["total_ms"] or 0), 1)
    gen_s = ((last["total_ms"] or 0) - (last["first_token_ms"] or 0)) / 1000
    out["tokens_per_s"] = round(len(last["pieces"]) / gen_s, 2) if gen_s > 0 else None
    return out
