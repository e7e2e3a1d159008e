"""The API's overhead over Assistant.ask: the same questions asked directly and through
POST /v1/chat/completions of the app served by this process, plain and streamed; medians.

    python benchmarks/api.py --repeats 3            # the real models on seeds/ (minutes)
    python benchmarks/api.py --fake --repeats 30    # hashing embedder, scripted model: the
                                                    # overhead alone (seconds)

The app is the product's (server.launch: the window and the API on one port, 127.0.0.1) with
the Assistant this process asks directly. The ways take turns question by question (direct,
API, API streamed to `data: [DONE]`, then direct again...), shifted by one each round, so a
slower or busier stretch of the machine falls on all three alike, and no call follows one with
the same prompt (llama.cpp would reuse it); over 3 rounds each way asks each question once.
HTTP goes over one kept-alive connection. Prints each way's median, the API's difference from
the direct call (median over questions of the per-question median differences) and the ratio
of the medians.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from first_token import QUESTIONS  # noqa: E402  (the same six questions, one list)

from assistant import api, server, ui  # noqa: E402
from assistant.config import Config  # noqa: E402
from assistant.rag import Assistant  # noqa: E402


def fake_assistant(tmp: Path) -> Assistant:
    """The shipped article with the test fakes: answers in milliseconds."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes import HashingEmbedder, ScriptedGenerator, seeded_config

    def reply(messages: list[dict[str, str]]) -> str:
        first = next(line for line in messages[-1]["content"].splitlines() if line[:1] == "[")
        return f"{' '.join(first.split()[1:12])} [{first[1 : first.index(']')]}]."

    cfg = seeded_config(tmp, answer_threshold=0.0)
    return Assistant(cfg, HashingEmbedder(), ScriptedGenerator(reply))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fake", action="store_true", help="fake models: the overhead alone")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="api-bench-"))
    if args.fake:
        assistant = fake_assistant(tmp)
    else:
        cfg = Config.from_env(seeds_dir=ROOT / "seeds", index_dir=tmp / "index")
        assistant = Assistant.from_config(cfg)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = Config(**{**assistant.cfg.__dict__, "port": port})
    demo = ui.build_app(assistant, cfg)
    server.launch(demo, cfg, None, assistant=assistant, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    questions = QUESTIONS[: args.questions]

    def body(question: str, stream: bool) -> dict:
        messages = [{"role": "user", "content": question}]
        return {"model": api.MODEL_ID, "messages": messages, "stream": stream}

    with httpx.Client(timeout=600) as client:

        def direct(question: str) -> str:
            return assistant.ask(question).text

        def plain(question: str) -> str:
            response = client.post(url, json=body(question, False))
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"]

        def streamed(question: str) -> str:
            with client.stream("POST", url, json=body(question, True)) as response:
                lines = list(response.iter_lines())
            assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]", lines[-3:]
            return "\n".join(lines)

        ways = {"direct": direct, "api": plain, "api stream": streamed}
        # Warm up (caches, the connection, first-request paths) on the last question, so the
        # first timed call does not follow its own prompt.
        for way in ways.values():
            way(questions[-1])
        print(f"{questions[-1]!r} -> {direct(questions[-1])!r}", flush=True)
        names = list(ways)
        times: dict[str, dict[int, list[float]]] = {name: {} for name in names}
        for round_ in range(args.repeats):
            for i, question in enumerate(questions):
                name = names[(i + round_) % len(names)]
                started = time.perf_counter()
                ways[name](question)
                times[name].setdefault(i, []).append((time.perf_counter() - started) * 1000)
    demo.close()

    models = "fake models" if args.fake else f"{assistant.generator.name}"
    calls = {name: [t for ts in times[name].values() for t in ts] for name in names}
    print(
        f"{models}; {len(questions)} questions x {args.repeats} rounds, "
        f"{len(calls['direct'])} calls per way"
    )
    base = statistics.median(calls["direct"])
    print(f"direct Assistant.ask: {base:9.1f} ms p50")
    for name in ("api", "api stream"):
        median = statistics.median(calls[name])
        diffs = [
            statistics.median(times[name][i]) - statistics.median(times["direct"][i])
            for i in times[name]
            if i in times["direct"]
        ]
        diff = f"difference {statistics.median(diffs):+.1f} ms p50, " if diffs else ""
        print(f"{name + ':':21s} {median:9.1f} ms p50; {diff}ratio {median / base:.3f}")


if __name__ == "__main__":
    main()
