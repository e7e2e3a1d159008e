"""The shipped model through each installed engine: a grounded answer, and stop ending a stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from assistant import generation
from assistant.config import Config
from assistant.generation import Generator, load_generator

pytestmark = pytest.mark.real

ENGINES = [
    "transformers",
    pytest.param(
        "llamacpp",
        marks=pytest.mark.skipif(
            not generation.llamacpp_installed(), reason="llama-cpp-python is not installed"
        ),
    ),
]

PASSAGE = (
    "[1] Acme Corp and Globex Ltd have agreed to merge their logistics divisions. The deal is "
    "to be finalised by April 26, after the competition authority completes its review. The "
    "combined unit will be based in Rotterdam."
)


@pytest.fixture(scope="module", params=ENGINES)
def generator(request: pytest.FixtureRequest) -> Iterator[Generator]:
    """The shipped model, loaded once per engine for the whole module."""
    gen = load_generator(Config.from_env(engine=request.param))
    assert gen.name.startswith(f"{request.param}:")
    yield gen


def test_answers_from_the_passage(generator: Generator) -> None:
    messages = [
        {"role": "system", "content": "Answer in one short sentence using only the passage."},
        {"role": "user", "content": f"{PASSAGE}\n\nQuestion: When is the deal to be finalised?"},
    ]
    reply = "".join(generator.stream(messages, max_new_tokens=24))
    assert "April 26" in reply


def test_stop_ends_the_stream_early(generator: Generator) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 200, separated by commas."}]
    stop = threading.Event()
    pieces = []
    started = time.perf_counter()
    for piece in generator.stream(messages, max_new_tokens=200, stop=stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()  # keep iterating: the stream itself must end
    assert 3 <= len(pieces) <= 6
    assert generator.count_tokens("".join(pieces)) < 20
    assert time.perf_counter() - started < 120


def test_count_tokens(generator: Generator) -> None:
    assert 2 <= generator.count_tokens("April 26") <= 5
    assert generator.count_tokens("") == 0
