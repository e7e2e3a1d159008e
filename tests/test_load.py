"""A bounded load test on loopback: 8 chat sessions at once through the Gradio API.

The app is the real Blocks from `assistant.ui.build_app`, served on 127.0.0.1; the models are
fakes (a hashing embedder and a scripted model that sleeps per token, so streams overlap). Each
answer quotes its own question's ticket, so an answer that strayed into another session shows.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
from fakes import HashingEmbedder, ScriptedGenerator, seeded_config

from assistant import server, ui
from assistant.rag import Assistant

ROOT = Path(__file__).parent.parent
SESSIONS = 8
QUESTIONS_PER_SESSION = 3
TOKEN_DELAY_S = 0.02
MAX_RSS_GROWTH_MB = 150
# Tickets are lower-case letters: a capitalised or numbered one would be a name the documents
# do not mention, and the support check would rightly refuse (see citations.anchored).
TICKET = re.compile(r"\btk[a-p]+x[a-p]+\b")


def ticket_of(session: int, q: int) -> str:
    """The ticket of a session's q-th question: both numbers in hex digits spelled a-p."""

    def spell(n: int) -> str:
        return "".join("abcdefghijklmnop"[int(d, 16)] for d in f"{n:x}")

    return f"tk{spell(session)}x{spell(q)}"


class SlowGenerator(ScriptedGenerator):
    """The scripted model, taking TOKEN_DELAY_S per token like a (very fast) real one."""

    def stream(self, messages, max_new_tokens=256, stop=None) -> Iterator[str]:
        for piece in super().stream(messages, max_new_tokens, stop):
            time.sleep(TOKEN_DELAY_S)
            yield piece


def reply(messages) -> str:
    """A supported sentence citing the April 26 passage, then the question's ticket."""
    user = messages[-1]["content"]
    n = next(
        line[1 : line.index("]")]
        for line in user.splitlines()
        if line.startswith("[") and "April 26" in line
    )
    ticket = TICKET.search(user.split("Question:", 1)[1]).group(0)
    return f"The goal is to finalize the deal by April 26 for ticket {ticket} [{n}]."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(tmp_path) -> Iterator[str]:
    """The app on 127.0.0.1 and a free port, its URL; closed afterwards."""
    cfg = seeded_config(tmp_path, port=_free_port())
    assert cfg.host == "127.0.0.1"
    demo = ui.build_app(Assistant(cfg, HashingEmbedder(), SlowGenerator(reply)), cfg)
    server.launch(demo, cfg, None, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{cfg.port}/"
    finally:
        demo.close()


@dataclasses.dataclass
class Turn:
    ticket: str
    seconds: float
    outputs: list  # every streamed update of the chat endpoint
    final: tuple


def chat_session(url: str, session: int) -> list[Turn]:
    """One browser-like session: questions one after another, each with the history so far."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    turns, history = [], []
    try:
        for q in range(QUESTIONS_PER_SESSION):
            ticket = ticket_of(session, q)
            question = f"When should the rare earth deal be finalized, ticket {ticket}?"
            started = time.perf_counter()
            job = client.submit(question, history, api_name="/on_ask")
            final = job.result(timeout=120)
            seconds = time.perf_counter() - started
            turns.append(Turn(ticket, seconds, list(job.outputs()), tuple(final)))
            history = final[1]
    finally:
        client.close()
    return turns


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1e6


def _tickets(value) -> set[str]:
    return set(TICKET.findall(str(value)))


def test_eight_concurrent_sessions_get_complete_unmixed_answers(served):
    chat_session(served, 99)  # warm up: first requests load the page config and caches
    rss_before = _rss_mb()

    started = time.perf_counter()
    with ThreadPoolExecutor(SESSIONS) as pool:
        sessions = list(pool.map(lambda s: chat_session(served, s), range(SESSIONS)))
    wall = time.perf_counter() - started
    rss_after = _rss_mb()

    latencies = []
    streamed = 0
    for s, turns in enumerate(sessions):
        own = {ticket_of(s, q) for q in range(QUESTIONS_PER_SESSION)}
        assert [t.ticket for t in turns] == sorted(own)
        for q, turn in enumerate(turns):
            latencies.append(turn.seconds)
            question_box, history, sources, status = turn.final[:4]
            assert question_box == ""
            # Complete: the whole reply, its checked citation and its timings arrived.
            assert [m["role"] for m in history] == ["user", "assistant"] * (q + 1)
            answer = str(history[-1]["content"])
            assert "finalize the deal by April 26" in answer, answer
            assert f"ticket {turn.ticket}" in answer and 'class="timings"' in answer
            assert "<mark " in sources and status == "", status
            # Unmixed: this session's history holds only this session's tickets, in order ...
            user_tickets = [_tickets(m["content"]) for m in history if m["role"] == "user"]
            assert user_tickets == [{ticket_of(s, i)} for i in range(q + 1)]
            # ... and no streamed update ever showed another session's ticket.
            for output in turn.outputs:
                assert _tickets(output) <= own, (turn.ticket, _tickets(output) - own)
            streamed += len(turn.outputs) > 3

    total = SESSIONS * QUESTIONS_PER_SESSION
    p50, p95 = np.percentile(latencies, [50, 95])
    print(
        f"\nload: {SESSIONS} sessions x {QUESTIONS_PER_SESSION} questions = {total} answers in "
        f"{wall:.1f} s: {total / wall:.2f} answers/s, latency p50 {p50:.2f} s, p95 {p95:.2f} s, "
        f"max {max(latencies):.2f} s; RSS {rss_before:.0f} -> {rss_after:.0f} MB "
        f"({rss_after - rss_before:+.0f} MB); threads {threading.active_count()}"
    )
    assert streamed >= total // 2, "answers should arrive as streams of updates"
    assert rss_after - rss_before < MAX_RSS_GROWTH_MB
    # Generous bounds: one answer is written at a time (chat.Line), the others wait their turn.
    assert p95 < 60 and total / wall > 0.1
