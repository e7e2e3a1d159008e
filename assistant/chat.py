"""Answering in the window, without Gradio: respond() streams one chat turn as it should look.

While the model works, the turn shows its stage and a ticking clock: Assistant.stream runs in a
worker thread (_Answering), so the reader can update every TICK_S even while the model is
silent. The window's questions take the model one at a time in a Line, where each waiting one
knows its place; StopSignals lets Stop end one session's stream only.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import explain
from .rag import Line, QuestionError
from .render import (
    ADD_DOCUMENTS_HELP,
    escape,
    escape_markdown,
    progress_label,
    render_answer,
    render_progress,
    render_sources,
)
from .schema import Answer

if TYPE_CHECKING:
    from .rag import Assistant

log = logging.getLogger(__name__)

Message = dict[str, Any]

TICK_S = 1.0  # an answer in progress updates its stage and clock at least this often


def respond(
    assistant: Assistant,
    message: str,
    history: Sequence[Message] | None,
    answers: Sequence[Answer] = (),
    stop: threading.Event | None = None,
    line: Line | None = None,
) -> Iterator[tuple[list[Message], str, str, list[Answer]]]:
    """Answer one chat message, yielding (chat history, sources html, status line, answers).

    The chat history grows a user and an assistant message. Until the answer is final the
    assistant message shows its stage (queued in `line`, by default the assistant's, which the
    API's questions join too; finding evidence, reading, writing) and the seconds since the
    question came, updated at least every TICK_S; the last update carries the final answer
    with its citations checked and its timings. Only the last update has a
    status line or a new answer (is_last tells it apart as it arrives).
    """
    started = time.monotonic()
    history = [dict(m) for m in history or ()]
    answers = list(answers)
    # The conversation the model sees is the Answers kept in state, never the page's HTML.
    pairs = [(a.question, a.text) for a in answers]
    question = (message or "").strip()
    sources = render_sources(answers)
    if not question:
        yield history, sources, "Please type a question.", answers
        return
    asked = {"role": "user", "content": escape(question)}
    if not assistant.documents():
        error = assistant.index_error
        reply = escape(error) if error else ADD_DOCUMENTS_HELP
        history += [asked, {"role": "assistant", "content": reply}]
        yield history, sources, "No documents are indexed yet.", answers
        return
    turn = len(answers) + 1
    stop = stop or threading.Event()
    work = _Answering(assistant, question, pairs, stop, line or assistant.line)
    answer: Answer | None = None
    history += [asked, {"role": "assistant", "content": ""}]
    try:
        for answer in work.updates():
            label = progress_label(answer, work.ahead(), stopping=stop.is_set())
            bubble = render_answer(answer, turn, render_progress(label, time.monotonic() - started))
            history[-1] = {"role": "assistant", "content": bubble}
            shown = render_sources([*answers, answer]) if answer is not None else sources
            yield list(history), shown, "", answers
    except QuestionError as e:
        history = history[:-2]
        yield history, sources, f"⚠ {e}", answers
        return
    except Exception as e:  # noqa: BLE001 - one line for the page; a bug's traceback to the log
        reason = explain(e, f"answering {question!r}")
        failed = escape(f"⚠ Sorry, answering failed: {reason}")
        history[-1] = {"role": "assistant", "content": failed}
        yield history, sources, f"⚠ answering failed: {escape_markdown(reason)}", answers
        return
    finally:
        work.close()
    if answer is None:  # stopped while it waited for its turn
        history[-1] = {"role": "assistant", "content": "Stopped before the answer was started."}
        yield history, sources, "Stopped.", answers
        return
    answers = [*answers, answer]  # a new list: the updates before keep theirs
    history[-1] = {"role": "assistant", "content": render_answer(answer, turn)}
    stopped = "Stopped: the part written so far was checked and kept." if stop.is_set() else ""
    yield history, render_sources(answers), stopped, answers


def is_last(status: str, answers: Sequence[Answer], before: Sequence[Answer]) -> bool:
    """Whether an update of respond() is its last: it alone says something in the status line
    or holds a new answer."""
    return bool(status) or len(answers) > len(before)


class _Answering:
    """Assistant.stream run in a worker thread, so the window can tick while the model is silent.

    updates() yields None while the question waits for its turn or for the evidence, then each
    Answer of the stream; at least every TICK_S it yields the latest again. The worker runs at
    most one update ahead of the reader (a queue of one), and ends when the reader goes away.
    """

    def __init__(
        self,
        assistant: Assistant,
        question: str,
        pairs: list[tuple[str, str]],
        stop: threading.Event,
        line: Line,
    ) -> None:
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        self._gone = threading.Event()
        self._ended = False  # the worker said it is done (or failed)
        self._stop = stop
        self._line = line
        self._ticket = line.join()
        self._thread = threading.Thread(
            target=self._run, args=(assistant, question, pairs), name="answer", daemon=True
        )
        self._thread.start()

    def ahead(self) -> int:
        return self._line.ahead(self._ticket)

    def _run(self, assistant: Assistant, question: str, pairs: list[tuple[str, str]]) -> None:
        try:
            if not self._line.wait(self._ticket, self._stop):
                return
            for answer in assistant.stream(question, pairs, stop=self._stop):
                if not self._put(("answer", answer)):
                    return
        except BaseException as e:  # handed to the reader's thread, which explains it
            self._put(("error", e))
        finally:
            self._line.leave(self._ticket)
            self._put(("done", None))

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._gone.is_set():
            try:
                self._items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def updates(self) -> Iterator[Answer | None]:
        latest: Answer | None = None
        yield latest
        while True:
            try:
                kind, value = self._items.get(timeout=TICK_S)
            except queue.Empty:
                yield latest  # nothing new: the same stage, a later time
                continue
            if kind == "done":
                self._ended = True
                return
            if kind == "error":
                self._ended = True
                raise value
            latest = value
            yield latest

    def close(self) -> None:
        """The reader is gone (finished, failed or cancelled): let the worker end."""
        if not self._ended:
            self._stop.set()
        self._gone.set()


class StopSignals:
    """One stop Event per browser session, so Stop ends only that session's stream."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> threading.Event:
        with self._lock:
            event = self._events[session] = threading.Event()
            self._running[session] = self._running.get(session, 0) + 1
            return event

    def finish(self, session: str, event: threading.Event) -> None:
        with self._lock:
            self._running[session] = self._running.get(session, 1) - 1
            if self._running[session] <= 0:
                self._running.pop(session, None)
            if self._events.get(session) is event:
                del self._events[session]

    def busy(self, session: str) -> bool:
        """Whether a stream of this session is running."""
        with self._lock:
            return session in self._running

    def stop(self, session: str, wait_s: float = 0.0) -> bool:
        """Ask the session's stream to stop; wait up to wait_s for it to end. True if it ended."""
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()
        deadline = time.monotonic() + wait_s
        while session in self._running and time.monotonic() < deadline:
            time.sleep(0.05)
        return session not in self._running
