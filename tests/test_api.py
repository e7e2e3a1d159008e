"""The OpenAI-compatible API through the official `openai` client, against the running app.

The server is the real one (server.launch: the window and the API on one app) on 127.0.0.1 and
a free port; the models are fakes (a hashing embedder, a scripted model).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from fakes import HashingEmbedder, ScriptedGenerator, seeded_config

from assistant import api, server, ui
from assistant.citations import REFUSAL
from assistant.config import Config, ConfigError
from assistant.rag import Assistant
from assistant.schema import Answer, Chunk, Citation, Hit

ROOT = Path(__file__).parent.parent
ARTICLE = "rubio-us-mediation-russia-ukraine-talks.txt"
QUESTION = "By what date is the rare earth deal meant to be finalised?"
KEY = "test-key-" + "x" * 24
TICKET = re.compile(r"\btk[a-p]+x[a-p]+\b")


def reply(messages: list[dict[str, str]]) -> str:
    """A scripted model: rewrites follow-ups, answers from the evidence, else "not found"."""
    if messages[-1]["role"] == "assistant":  # made to point after "not found": at no unit
        return "0]"
    user = messages[-1]["content"]
    if "Follow-up" in user:
        return "Who hinted at the rare earth minerals deal?"
    question = user.split("Question:", 1)[1]

    def unit(needle: str) -> int | None:
        for line in user.splitlines():
            if line.startswith("[") and needle in line:
                return int(line[1 : line.index("]")])
        return None

    if "hinted" in question and unit("Trump also hinted"):
        return f"Trump hinted at the deal [{unit('Trump also hinted')}]."
    if "finali" in question and unit("April 26"):
        ticket = TICKET.search(question)
        tail = f" for ticket {ticket.group(0)}" if ticket else ""
        return f"The goal is to finalize the deal by April 26{tail} [{unit('April 26')}]."
    return "not found"


class SlowGenerator(ScriptedGenerator):
    """The scripted model taking `delay` per word; records whether a stop ended its stream."""

    def __init__(self, reply, delay: float = 0.0) -> None:
        super().__init__(reply)
        self.delay = delay
        self.words = 0
        self.stopped = threading.Event()
        self.ended = threading.Event()

    def stream(self, messages, max_new_tokens=256, stop=None) -> Iterator[str]:
        try:
            for piece in super().stream(messages, max_new_tokens, stop):
                time.sleep(self.delay)
                self.words += 1
                yield piece
        finally:
            if stop is not None and stop.is_set():
                self.stopped.set()
            self.ended.set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """One running app: its URL, Assistant, model, and OpenAI clients for it."""

    def __init__(self, cfg: Config, generator: ScriptedGenerator, api_key: str | None) -> None:
        self.cfg = Config(**{**cfg.__dict__, "port": _free_port()})
        self.url = f"http://127.0.0.1:{self.cfg.port}"
        self.generator = generator
        self.assistant = Assistant(self.cfg, HashingEmbedder(), generator)
        self.demo = ui.build_app(self.assistant, self.cfg)
        server.launch(
            self.demo,
            self.cfg,
            None,
            assistant=self.assistant,
            api_key=api_key,
            prevent_thread_lock=True,
            quiet=True,
        )

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[Served]:
    """One app for the tests that only ask: the scripted model, no API key."""
    served = Served(seeded_config(tmp_path_factory.mktemp("api")), ScriptedGenerator(reply), None)
    yield served
    served.demo.close()


@pytest.fixture()
def serve(cfg) -> Iterator:
    """serve(generator=..., api_key=...) -> a running Served of its own; closed afterwards."""
    running: list[Served] = []

    def start(generator: ScriptedGenerator | None = None, api_key: str | None = None) -> Served:
        served = Served(cfg, generator or ScriptedGenerator(reply), api_key)
        running.append(served)
        return served

    yield start
    for served in running:
        served.demo.close()


def ask(client: openai.OpenAI, content: str, **kwargs):
    return client.chat.completions.create(
        model=api.MODEL_ID, messages=[{"role": "user", "content": content}], **kwargs
    )


# --- answers -------------------------------------------------------------------------------


def test_models_lists_the_one_model_beside_the_window(shared):
    served = shared
    client = served.client()
    assert [m.id for m in client.models.list()] == [api.MODEL_ID]
    assert client.models.retrieve(api.MODEL_ID).id == api.MODEL_ID
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    window = httpx.get(served.url + "/", timeout=30)  # the same port serves the chat window
    assert window.status_code == 200 and "<html" in window.text.lower()


def test_answer_carries_citations_that_point_into_the_document(shared):
    response = ask(shared.client(), QUESTION)
    message = response.choices[0].message
    assert message.role == "assistant" and response.choices[0].finish_reason == "stop"
    assert re.fullmatch(r"The goal is to finalize the deal by April 26 \[1\]\.", message.content)
    extra = response.model_extra
    assert extra["abstained"] is False
    [citation] = extra["citations"]
    assert citation["n"] == 1 and citation["doc_id"] == ARTICLE and citation["supported"]
    assert "April 26" in citation["quote"] and citation["title"]
    text = (ROOT / "seeds" / ARTICLE).read_text(encoding="utf-8")
    assert text[citation["start"] : citation["end"]] == citation["quote"]
    assert response.usage.completion_tokens > 0 and response.usage.prompt_tokens > 0


def test_a_quote_over_a_line_break_is_found_where_it_stands():
    text = (
        "Intro.\nThe US will abandon attempts to mediate between Russia and\nUkraine within days."
    )
    chunk = Chunk("w.txt#0", "w.txt", text, 100, 100 + len(text), 1, "W")
    quote = "The US will abandon attempts to mediate between Russia and Ukraine within days."
    answer = Answer("q", "a", False, passages=(Hit(chunk, 1.0),))
    answer = dataclasses.replace(answer, citations=(Citation(1, "w.txt", "w.txt#0", True, quote),))
    [found] = api.citations_of(answer)
    assert (found["start"], found["end"]) == (107, 100 + len(text))
    assert text[found["start"] - 100 : found["end"] - 100].split() == quote.split()


def test_stream_sends_citations_first_then_the_answer(shared):
    served = shared
    plain = ask(served.client(), QUESTION)
    chunks = list(
        ask(served.client(), QUESTION, stream=True, stream_options={"include_usage": True})
    )
    first = chunks[0]
    assert first.choices[0].delta.role == "assistant" and not first.choices[0].delta.content
    assert first.model_extra["citations"] == plain.model_extra["citations"]
    assert first.model_extra["abstained"] is False
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and not chunks[-1].choices
    assert len({c.id for c in chunks}) == 1
    # On the wire: server-sent events ending with [DONE].
    body = {
        "model": api.MODEL_ID,
        "stream": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    raw = httpx.post(served.url + "/v1/chat/completions", json=body, timeout=30)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert "citations" in json.loads(events[0][6:])


def test_follow_up_uses_the_earlier_turns(shared):
    served = shared
    client = served.client()
    first = ask(client, QUESTION).choices[0].message.content
    response = client.chat.completions.create(
        model=api.MODEL_ID,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},  # a client's own
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first},
            {"role": "user", "content": "And who hinted at it?"},
        ],
    )
    assert "Trump" in response.choices[0].message.content
    assert any("Trump" in c["quote"] for c in response.model_extra["citations"])
    rewrites = [
        p[-1]["content"] for p in served.generator.prompts if "Follow-up" in p[-1]["content"]
    ]
    assert any(QUESTION in r and "And who hinted at it?" in r for r in rewrites)


def test_refusal_is_an_answer_without_citations(shared):
    client = shared.client()
    question = "What did the memorandum say about the Rubio press budget of Paris?"
    response = ask(client, question)
    assert response.model_extra["citations"] == [] and response.model_extra["abstained"] is True
    content = response.choices[0].message.content
    assert content.startswith(REFUSAL) and "listed below" not in content  # the reason, in words
    chunks = list(ask(client, question, stream=True))
    assert chunks[0].model_extra["abstained"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == content


# --- bad requests --------------------------------------------------------------------------


def _openai_error(error: openai.APIStatusError) -> dict:
    body = error.response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    return body["error"]


@pytest.mark.parametrize(
    ("messages", "status", "param"),
    [
        ([], 400, "messages"),
        ([{"role": "user", "content": 42}], 400, "messages[0].content"),
        ([{"role": "user", "content": {"text": "hi"}}], 400, "messages[0].content"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], 400, "messages[0].content"),
        ([{"role": "wizard", "content": "hi"}], 400, "messages[0].role"),
        ([{"role": "tool", "content": "hi"}], 400, "messages[0].role"),
        ([{"role": "user", "content": "x" * (1 << 20)}], 413, "messages"),
        ([{"role": "user", "content": "x " * 1500}], 400, "messages"),  # over 2,000 characters
        ([{"role": "user", "content": "  "}], 400, "messages"),
        ([{"role": "assistant", "content": "hello"}], 400, "messages"),  # no question last
    ],
)
def test_bad_messages_get_openai_errors(shared, messages, status, param):
    asked = len(shared.generator.prompts)
    with pytest.raises(openai.APIStatusError) as caught:
        shared.client().chat.completions.create(model=api.MODEL_ID, messages=messages)
    assert caught.value.status_code == status
    error = _openai_error(caught.value)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert len(shared.generator.prompts) == asked  # the model never saw it


def test_wrong_model_and_malformed_json_get_openai_errors(shared):
    served = shared
    with pytest.raises(openai.NotFoundError) as caught:
        served.client().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]
        )
    assert _openai_error(caught.value)["code"] == "model_not_found"
    url = served.url + "/v1/chat/completions"
    for body in (b'{"model": "local-doc-assistant", "messages": [', b"\xff\xfe", b"[1, 2]"):
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(url).status_code == 405
    assert (
        httpx.post(served.url + "/v1/embeddings", json={}).json()["error"]["code"] == "unknown_url"
    )


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_stops_the_model(serve, stream):
    words = " ".join(f"w{i}" for i in range(200))
    generator = SlowGenerator(lambda m: words, delay=0.02)
    served = serve(generator)
    body = {
        "model": api.MODEL_ID,
        "stream": stream,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    with httpx.Client(timeout=httpx.Timeout(30, read=0.5)) as client:
        if stream:
            with client.stream("POST", served.url + "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                while generator.words < 5:
                    time.sleep(0.02)
            # leaving the block closes the connection mid-stream
        else:
            with pytest.raises(httpx.ReadTimeout):
                client.post(served.url + "/v1/chat/completions", json=body)
    assert generator.ended.wait(10), "the model kept working for a client that left"
    assert generator.stopped.is_set() and generator.words < 200
    # The server goes on serving.
    generator.reply, generator.delay = reply, 0.0
    assert "April 26" in ask(served.client(), QUESTION).choices[0].message.content


# --- access --------------------------------------------------------------------------------


def test_api_key_is_required_when_set_and_never_logged(serve, caplog):
    served = serve(api_key=KEY)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(served.client("wrong-key-" + "y" * 20), QUESTION)
    assert _openai_error(caught.value)["code"] == "invalid_api_key"
    assert httpx.get(served.url + "/v1/models").status_code == 401  # no header at all
    assert "April 26" in ask(served.client(KEY), QUESTION).choices[0].message.content
    assert KEY not in caplog.text and "wrong-key" not in caplog.text


def test_repeated_wrong_keys_are_throttled(serve):
    served = serve(api_key=KEY)
    for _ in range(5):
        with pytest.raises(openai.AuthenticationError):
            served.client("wrong-key-" + "y" * 20).models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        served.client(KEY).models.list()  # even the right key waits now
    assert int(caught.value.response.headers["retry-after"]) > 0


def test_api_key_comes_from_the_environment_and_is_required_off_loopback(tmp_path):
    assert server.resolve_api_key(Config(host="127.0.0.1"), env={}) is None
    with pytest.raises(ConfigError, match="without an API key.*ASSISTANT_API_KEY"):
        server.resolve_api_key(Config(host="0.0.0.0"), env={})
    assert server.resolve_api_key(Config(host="0.0.0.0"), env={"ASSISTANT_API_KEY": KEY}) == KEY
    with pytest.raises(ConfigError, match="at least 16"):
        server.resolve_api_key(Config(), env={"ASSISTANT_API_KEY": "short"})
    key_file = tmp_path / "key"
    key_file.write_text(f"\n{KEY}\n", encoding="utf-8")
    env = {"ASSISTANT_API_KEY_FILE": str(key_file)}
    assert server.resolve_api_key(Config(host="10.0.0.2"), env=env) == KEY
    key_file.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        server.resolve_api_key(Config(), env=env)
    key_file.write_bytes(b"\xff" + KEY.encode())
    with pytest.raises(ConfigError, match="ASSISTANT_API_KEY_FILE .*not UTF-8 text"):
        server.resolve_api_key(Config(), env=env)
    with pytest.raises(ConfigError, match="ASSISTANT_API_KEY_FILE .*No such file"):
        server.resolve_api_key(Config(), env={"ASSISTANT_API_KEY_FILE": str(tmp_path / "no")})


# --- load ------------------------------------------------------------------------------------


def ticket_of(client: int, q: int) -> str:
    """A ticket of lower-case letters (a-p spell hex digits): a word the documents lack."""
    letters = "abcdefghijklmnop"
    return f"tk{''.join(letters[int(d, 16)] for d in f'{client:x}')}x{letters[q]}"


def test_eight_concurrent_clients_get_their_own_answers(serve):
    served = serve(SlowGenerator(reply, delay=0.01))

    def session(n: int) -> list[tuple[str, str, list]]:
        client, out = served.client(), []
        for q, stream in enumerate((True, False)):
            ticket = ticket_of(n, q)
            question = f"When should the rare earth deal be finalized, ticket {ticket}?"
            if stream:
                chunks = list(ask(client, question, stream=True))
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                citations = chunks[0].model_extra["citations"]
            else:
                response = ask(client, question)
                text, citations = (
                    response.choices[0].message.content,
                    response.model_extra["citations"],
                )
            out.append((ticket, text, citations))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(session, range(8)))
    for n, turns in enumerate(results):
        for ticket, text, citations in turns:
            assert TICKET.findall(text) == [ticket], (n, text)
            assert "April 26" in text and citations and citations[0]["doc_id"] == ARTICLE


# --- request parsing -------------------------------------------------------------------------


def test_history_pairs_each_question_with_its_reply():
    body = {
        "model": api.MODEL_ID,
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "First?"}]},
            {"role": "assistant", "content": "One [1]."},
            {"role": "user", "content": "Second?"},
            {"role": "user", "content": "Third?"},
        ],
    }
    chat = api.parse_request(json.dumps(body).encode())
    assert chat.question == "Third?" and chat.history == (("First?", "One [1]."), ("Second?", ""))
    assert not chat.stream


def test_requests_a_web_page_could_make_are_refused_without_a_key(shared):
    """A page cannot post JSON cross-site without a preflight, nor reach loopback by a name."""
    body = {"model": api.MODEL_ID, "messages": [{"role": "user", "content": QUESTION}]}
    url = shared.url + "/v1/chat/completions"
    form = httpx.post(url, content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"
    # DNS rebinding: evil.example resolved to 127.0.0.1, so the request names it as its host.
    rebound = httpx.post(url, json=body, headers={"Host": "evil.example:7860"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "forbidden_host"
    for host in ("localhost:7860", "127.0.0.1", "[::1]:7860"):
        assert httpx.get(shared.url + "/v1/models", headers={"Host": host}).status_code == 200
