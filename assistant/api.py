"""The OpenAI-compatible API: POST /v1/chat/completions and GET /v1/models over one Assistant.

    curl http://127.0.0.1:7860/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{"model": "local-doc-assistant",
           "messages": [{"role": "user", "content": "When is the rare earth deal due?"}]}'

The only owner of OpenAI's request and response shapes; server.launch mounts `ChatAPI.routes()`
on the window's own app. The last user message is the question and the earlier user and
assistant turns are the history. The reply's `content` is the checked answer with its [n]
markers; `citations` and `abstained` travel beside it as extra top-level fields, which OpenAI
clients keep and otherwise ignore. A stream sends the answer once it is checked: the check may
cut a claim or refuse, and a stream cannot take back text it has sent, so the model's draft is
never streamed. Until then the stream sends SSE comments; its first chunk carries the citations,
then come the answer text, the finish chunk and `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .citations import find_quote
from .config import is_loopback
from .errors import AssistantError, explain
from .rag import QuestionError, clean_question
from .schema import Answer

if TYPE_CHECKING:
    from .rag import Assistant
    from .server import LoginThrottle

log = logging.getLogger(__name__)

MODEL_ID = "local-doc-assistant"  # the one model /v1/models lists and requests must name
MAX_REQUEST_BYTES = 256 * 1024  # a whole request body; a long conversation is a few kB
CONCURRENCY = 4  # answers worked on at once; the window answers its own questions one at a time
MAX_WAITING = 64  # requests waiting for a turn beyond those, as the window's queue; then 429
KEEPALIVE_S = 5.0  # a stream sends an SSE comment this often while the answer is worked on
DISCONNECT_POLL_S = 0.5  # how often a non-streamed request checks that its client is still there
ROLES = ("system", "developer", "user", "assistant")  # system and developer turns are ignored


class APIError(AssistantError):
    """A request the API refuses, for its client to read: the HTTP status and OpenAI's error."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        retry_after_s: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = (
            {"Retry-After": str(math.ceil(self.retry_after_s))} if self.retry_after_s else None
        )
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


@dataclass(frozen=True)
class ChatRequest:
    """What the assistant takes from a chat completion request."""

    question: str
    history: tuple[tuple[str, str], ...] = ()
    stream: bool = False
    include_usage: bool = False


def parse_request(body: bytes) -> ChatRequest:
    """The ChatRequest in a request body, or APIError saying what is wrong with it."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _too_large()
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise APIError(400, f"The request body is not valid JSON: {e}.") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.")
    model = data.get("model")
    if model is None:
        raise APIError(400, f'Name the model: "model": "{MODEL_ID}".', "model")
    if model != MODEL_ID:
        raise APIError(
            404,
            f"The model {str(model)[:100]!r} does not exist; this server answers as "
            f"{MODEL_ID!r} (GET /v1/models).",
            "model",
            "model_not_found",
        )
    if data.get("n", 1) not in (1, None):
        raise APIError(400, "Only one choice per request is supported (n=1).", "n")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise APIError(400, '"stream" must be true or false.', "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise APIError(400, '"stream_options" must be an object.', "stream_options")
    turns = _turns(data.get("messages"))
    if not turns or turns[-1][0] != "user":
        raise APIError(400, "The last message must be the user's question.", "messages")
    try:
        question = clean_question(turns[-1][1])
    except QuestionError as e:
        raise APIError(400, str(e), "messages") from None
    history: list[tuple[str, str]] = []
    for role, text in turns[:-1]:
        if role == "user":
            history.append((text, ""))
        elif history and not history[-1][1]:
            history[-1] = (history[-1][0], text)
    return ChatRequest(question, tuple(history), stream, options.get("include_usage") is True)


def _turns(messages: object) -> list[tuple[str, str]]:
    """(role, text) of the user and assistant messages, checked."""
    if not isinstance(messages, list) or not messages:
        raise APIError(400, '"messages" must be a non-empty list of messages.', "messages")
    turns = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{where} must be an object with a role and content.", where)
        role = message.get("role")
        if role not in ROLES:
            raise APIError(
                400,
                f"{where}.role {str(role)[:40]!r} is not supported: use {', '.join(ROLES)}.",
                f"{where}.role",
            )
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""  # an assistant turn that only called tools
        text = _text(content)
        if text is None:
            raise APIError(
                400,
                f"{where}.content must be a string (or a list of text parts).",
                f"{where}.content",
            )
        if role in ("user", "assistant"):
            turns.append((role, text))
    return turns


def _text(content: object) -> str | None:
    """The text of a message's content: a string, or a list of {"type": "text"} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(content) and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)  # type: ignore[arg-type]
    return None


def _too_large() -> APIError:
    return APIError(
        413,
        f"The request is larger than {MAX_REQUEST_BYTES // 1024} kB; send a shorter question "
        "and conversation.",
        "messages",
        "request_too_large",
    )


# --- response shapes ---------------------------------------------------------------------------


def citations_of(answer: Answer) -> list[dict[str, Any]]:
    """The answer's citations with their documents and where the quote is in each."""
    out = []
    for c in answer.citations:
        chunk = answer.passages[c.n - 1].chunk
        at = find_quote(chunk.text, c.quote)
        start, end = chunk.start, chunk.end  # the whole passage, unless the quote is found
        if at:
            start, end = chunk.start + at.start(), chunk.start + at.end()
        out.append(
            {
                "n": c.n,
                "doc_id": c.doc_id,
                "title": chunk.title,
                "date": chunk.date,
                "quote": c.quote,
                "start": start,
                "end": end,
                "supported": c.supported,
                "passage_id": c.passage_id,
            }
        )
    return out


def content_of(answer: Answer) -> str:
    """The reply's text: the answer with its [n] markers, or the refusal with its reason."""
    return answer.text


def completion(answer: Answer, cid: str, created: int, usage: dict[str, int]) -> dict[str, Any]:
    """A chat.completion object for a final answer."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content_of(answer)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
        "citations": citations_of(answer),
        "abstained": answer.abstained,
    }


def chunk(
    cid: str, created: int, delta: dict | None, finish: str | None = None, **extra: Any
) -> str:
    """One server-sent event holding a chat.completion.chunk (no choices when delta is None)."""
    body = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        if delta is not None
        else [],
        **extra,
    }
    return _event(body)


def _event(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


# --- the endpoints -----------------------------------------------------------------------------


class ChatAPI:
    """The OpenAI-compatible endpoints over one Assistant (the window's, sharing its model).

    `api_key` None: no key is asked (loopback only; server.resolve_api_key decides). Failed
    keys go through `throttle` like failed logins. At most CONCURRENCY answers are worked on at
    once and MAX_WAITING more wait; a client that goes away stops its answer.
    """

    def __init__(
        self,
        assistant: Assistant,
        api_key: str | None = None,
        throttle: LoginThrottle | None = None,
        concurrency: int = CONCURRENCY,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.assistant = assistant
        self._key = hashlib.sha256(api_key.encode()).digest() if api_key else None
        self._throttle = throttle
        self._concurrency = concurrency
        self._max_open = concurrency + max_waiting
        self._open = 0  # requests answering or waiting to; only touched on the event loop
        self._limiter: anyio.CapacityLimiter | None = None

    def routes(self) -> list[BaseRoute]:
        """The routes to mount at the app's root."""
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/v1/{rest:path}", self.unknown, methods=["GET", "POST", "PUT", "DELETE"]),
        ]

    # --- access ------------------------------------------------------------------------

    def check_key(self, request: Request) -> None:
        """APIError unless the request carries the API key, or, without a key, names this machine.

        Without a key the server is on loopback; a Host that is not a loopback name is a web
        page's request through a rebound DNS name, which must not read the documents.
        """
        if self._key is None:
            if not is_loopback(_host_name(request.headers.get("host", ""))):
                raise APIError(
                    403,
                    "Without an API key this API answers only requests addressed to this "
                    "machine (Host: 127.0.0.1 or localhost); set ASSISTANT_API_KEY to serve "
                    "other names.",
                    code="forbidden_host",
                )
            return
        address = request.client.host if request.client else "unknown"
        if self._throttle is not None:
            wait = self._throttle.waiting(address)
            if wait > 0:
                raise APIError(
                    429,
                    f"Too many requests with a wrong API key: try again in {math.ceil(wait)} s.",
                    code="rate_limit_exceeded",
                    kind="rate_limit_error",
                    retry_after_s=wait,
                )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Digests of equal length, compared in constant time: the time says nothing of the key.
        digest = hashlib.sha256(given.strip().encode()).digest()
        if scheme.lower() == "bearer" and hmac.compare_digest(digest, self._key):
            if self._throttle is not None:
                self._throttle.succeeded(address)
            return
        if self._throttle is not None:
            self._throttle.attempt(address)
        raise APIError(
            401,
            "Missing or wrong API key: send the header 'Authorization: Bearer <key>' with the "
            "key set in ASSISTANT_API_KEY on the server.",
            code="invalid_api_key",
        )

    # --- handlers ----------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        try:
            self.check_key(request)
        except APIError as e:
            return e.response()
        return JSONResponse({"object": "list", "data": [_model_card()]})

    async def model(self, request: Request) -> Response:
        try:
            self.check_key(request)
            if request.path_params["model"] != MODEL_ID:
                raise APIError(
                    404,
                    f"The model does not exist; this server has {MODEL_ID!r}.",
                    "model",
                    "model_not_found",
                )
        except APIError as e:
            return e.response()
        return JSONResponse(_model_card())

    async def unknown(self, request: Request) -> Response:
        served = "this server has POST /v1/chat/completions and GET /v1/models"
        path = request.url.path.rstrip("/")
        if path in ("/v1/chat/completions", "/v1/models"):
            return APIError(405, f"{request.method} {path} is not allowed: {served}.").response()
        return APIError(
            404, f"{request.method} {path} is not served here: {served}.", code="unknown_url"
        ).response()

    async def chat_completions(self, request: Request) -> Response:
        try:
            self.check_key(request)
            # JSON only: a web page cannot send it to another site without CORS preflight,
            # which this server refuses to foreign pages on loopback.
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                raise APIError(
                    415,
                    "Send the request body as JSON, with the header "
                    "'Content-Type: application/json'.",
                    code="unsupported_media_type",
                )
            chat = parse_request(await _read_body(request))
            if self._open >= self._max_open:
                raise APIError(
                    429,
                    "The assistant is busy with other questions; try again shortly.",
                    code="rate_limit_exceeded",
                    kind="rate_limit_error",
                    retry_after_s=5,
                )
        except APIError as e:
            return e.response()
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if chat.stream:
            return StreamingResponse(
                self._events(chat, cid, created),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        stop = threading.Event()
        task = self._start(chat, stop)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if not task.done() and await request.is_disconnected():
                    log.info("api: the client left; its answer is stopped")
                    return Response(status_code=499)
            answer = task.result()
        except Exception as e:  # noqa: BLE001 - one OpenAI error; a bug's traceback to the log
            return _failure(e).response()
        finally:
            stop.set()
            task.cancel()
        assert answer is not None
        return JSONResponse(completion(answer, cid, created, self._usage(answer)))

    async def _events(self, chat: ChatRequest, cid: str, created: int) -> AsyncIterator[str]:
        """The stream: comments while answering, then citations, the text, the end."""
        stop = threading.Event()
        task = self._start(chat, stop)
        try:
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_S)
                if not done:
                    yield ": the answer is being worked on\n\n"
            try:
                answer = task.result()
            except Exception as e:  # noqa: BLE001 - the stream has begun: an error event
                yield _event(_failure(e).body())
                yield "data: [DONE]\n\n"
                return
            assert answer is not None
            yield chunk(
                cid,
                created,
                {"role": "assistant", "content": ""},
                citations=citations_of(answer),
                abstained=answer.abstained,
            )
            yield chunk(cid, created, {"content": content_of(answer)})
            yield chunk(cid, created, {}, "stop")
            if chat.include_usage:
                yield chunk(cid, created, None, usage=self._usage(answer))
            yield "data: [DONE]\n\n"
        finally:
            # Also when the client disconnects: the stream is cancelled here, and the model
            # stops at its next token.
            stop.set()
            task.cancel()

    # --- answering ---------------------------------------------------------------------

    def _start(self, chat: ChatRequest, stop: threading.Event) -> asyncio.Task:
        """Answer chat in a worker thread, at most `concurrency` at once; the task's result."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        limiter = self._limiter
        task = asyncio.ensure_future(
            anyio.to_thread.run_sync(
                self._answer, chat, stop, limiter=limiter, abandon_on_cancel=True
            )
        )
        self._open += 1
        task.add_done_callback(self._closed)  # also for a task cancelled before it ran
        return task

    def _closed(self, task: asyncio.Task) -> None:
        self._open -= 1

    def _answer(self, chat: ChatRequest, stop: threading.Event) -> Answer | None:
        """The final Answer, or None when stopped first (the client left)."""
        if stop.is_set():
            return None
        started = time.perf_counter()
        # In the same line as the window's questions, so a waiting chat counts this one ahead.
        line = self.assistant.line
        ticket = line.join()
        answer = None
        try:
            if not line.wait(ticket, stop):
                return None
            answers = self.assistant.stream(chat.question, chat.history, stop=stop)
            try:
                for update in answers:
                    if stop.is_set():
                        return None
                    answer = update
            finally:
                close = getattr(answers, "close", None)
                if close is not None:
                    close()  # the model's stream ends here, not when the generator is collected
        finally:
            line.leave(ticket)
        if answer is None:
            raise AssistantError("the assistant gave no answer")
        log.info(
            "api: answered in %.0f ms (abstained: %s)",
            (time.perf_counter() - started) * 1000,
            answer.abstained,
        )
        return answer

    def _usage(self, answer: Answer) -> dict[str, int]:
        """Token counts in the model's tokens (the prompt's is 0 when the model was not asked)."""
        text, generator = content_of(answer), self.assistant.generator
        prompt = int(answer.timings.get("prompt_tokens", 0))
        completion_tokens = generator.count_tokens(text) if generator else len(text.split())
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }


def _host_name(header: str) -> str:
    """The name in a Host header: "127.0.0.1:7860" -> 127.0.0.1, "[::1]:7860" -> ::1."""
    header = header.strip()
    if header.startswith("["):
        return header[1 : header.find("]")]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "local"}


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes MAX_REQUEST_BYTES."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise _too_large()
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_REQUEST_BYTES:
            raise _too_large()
    return bytes(body)


def _failure(error: BaseException) -> APIError:
    """The APIError for an exception raised while answering."""
    if isinstance(error, QuestionError):
        return APIError(400, str(error), "messages")
    return APIError(
        500, f"Answering failed: {explain(error, 'api: answering')}", kind="server_error"
    )
